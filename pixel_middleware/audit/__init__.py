"""``python -m pixel_middleware audit``: every privacy promise of the README, checked.

Pure checks over row dicts (:mod:`.rows`, :mod:`.receipts`, :mod:`.settings_checks`), reading at
the edges (:mod:`.sources`, :mod:`.config`), one report in text, JSON or HTML (:mod:`.render`).
"""

from .config import AuditSettings, resolve
from .model import AuditReport, CheckResult, Example
from .render import render
from .rows import ROW_CHECKS, RowRules, is_truncated_to
from .run import run_audit

__all__ = [
    "ROW_CHECKS",
    "AuditReport",
    "AuditSettings",
    "CheckResult",
    "Example",
    "RowRules",
    "is_truncated_to",
    "render",
    "resolve",
    "run_audit",
]
