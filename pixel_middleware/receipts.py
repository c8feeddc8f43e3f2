"""Consent receipts: proof that a choice was made and what it was, never who made it. Pure.

A receipt is written when a choice changes through the middleware: a toggle link or form
(source ``toggle``), the browser API (``browser``), or a consent manager whose answer changed
(its name: ``tcf``, ``onetrust``, …). It holds the time, the action, the mode, the source, the
policy version and the GPC state, and a random id the visitor keeps in a cookie of its own
(``pixel_receipt``) to quote on the privacy page. No everID, session id, IP or user agent: the
``Receipt`` record refuses anything but its own fields, and :mod:`pixel_middleware.audit`
checks the stored rows.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from .cookies import CookieWrite
from .decision import Decision
from .settings import PixelSettings

RECEIPT_COOKIE = "pixel_receipt"
ReceiptAction = Literal["optout", "optin", "identified", "anonymous"]
ACTIONS: tuple[ReceiptAction, ...] = ("optout", "optin", "identified", "anonymous")
# The code a source's answer leaves in the receipt cookie, so a changed answer is noticed.
_ANSWER_CODES = {"anonymous": "a", "identified": "i"}
_COOKIE_VALUE = re.compile(r"^(r[0-9a-f]{32})(?:\.([ai]))?\Z")
# 19 digits in a row read as an everID to the audit (and to a person): an id is drawn again.
_DIGIT_RUN = re.compile(r"\d{19}")


def new_receipt_id() -> str:
    """``r`` and 32 random hex digits; never holding 19 digits in a row, which would look like
    an everID or session id to the audit."""
    while True:
        value = "r" + os.urandom(16).hex()
        if not _DIGIT_RUN.search(value):
            return value


class Receipt(NamedTuple):
    """One change of choice. Immutable; every field is a fact about the choice, none about
    the visitor."""

    receipt_id: str
    received_at: float
    action: ReceiptAction
    mode: str
    source: str
    policy_version: str
    gpc: bool

    def to_dict(self) -> dict[str, Any]:
        """The fields, plus ``kind`` so a spool line says what it holds."""
        return {"kind": "receipt", **self._asdict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Receipt:
        """The receipt of :meth:`to_dict`'s output (a spool line); ``ValueError`` if it is none."""
        action = data["action"]
        if action not in ACTIONS:
            raise ValueError(f"not a receipt action: {action!r}")
        return cls(
            receipt_id=str(data["receipt_id"]),
            received_at=float(data["received_at"]),
            action=action,
            mode=str(data["mode"]),
            source=str(data["source"]),
            policy_version=str(data["policy_version"]),
            gpc=bool(data["gpc"]),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)


def new_receipt(
    settings: PixelSettings,
    action: ReceiptAction,
    source: str,
    *,
    gpc: bool,
    receipt_id: str | None = None,
) -> Receipt:
    """A receipt of ``action`` made now, in the settings' mode and policy version."""
    return Receipt(
        receipt_id=receipt_id or new_receipt_id(),
        received_at=time.time(),
        action=action,
        mode=settings.mode,
        source=source,
        policy_version=settings.consent_policy_version,
        gpc=gpc,
    )


class ReceiptCookie(NamedTuple):
    """What the ``pixel_receipt`` cookie says: the last receipt's id and the source answer
    recorded with it (``a``, ``i``, or None)."""

    receipt_id: str | None
    answer: str | None


_NO_RECEIPT = ReceiptCookie(None, None)


def read_receipt_cookie(value: str | None) -> ReceiptCookie:
    """The receipt cookie's value (``PixelCookies.receipt``); a malformed one reads as absent."""
    if not value:
        return _NO_RECEIPT
    match = _COOKIE_VALUE.match(value)
    if match is None:
        return ReceiptCookie(None, None)
    return ReceiptCookie(match.group(1), match.group(2))


def receipt_cookie(settings: PixelSettings, receipt_id: str, answer: str | None) -> CookieWrite:
    """The cookie that keeps the visitor's receipt id (and a source's answer code): HttpOnly,
    since only the server and the privacy page need it, for ``consent_receipt_days``."""
    value = receipt_id if answer is None else f"{receipt_id}.{answer}"
    return CookieWrite(
        RECEIPT_COOKIE, value, settings.consent_receipt_days * 24 * 3600, httponly=True
    )


def source_answer_code(decision: Decision) -> str | None:
    """The code of a consent manager's answer, or None when no source decided."""
    if decision.reason != "consent-source" or decision.source is None:
        return None
    return _ANSWER_CODES["anonymous" if decision.anonymous else "identified"]


def source_receipt(
    settings: PixelSettings, decision: Decision, cookie: ReceiptCookie, *, gpc: bool
) -> Receipt | None:
    """A receipt when a consent manager's answer differs from the one the cookie recorded
    (a first answer included), else None."""
    code = source_answer_code(decision)
    if code is None or code == cookie.answer or decision.source is None:
        return None
    action: ReceiptAction = "anonymous" if decision.anonymous else "identified"
    return new_receipt(settings, action, decision.source, gpc=gpc)
