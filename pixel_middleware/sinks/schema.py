"""The hits and receipts tables, shared by the SQLite and PostgreSQL stores, and their migrations.

Hit columns are what a privacy officer asks about: who (everID, session, customer, IP, user
agent), whether anonymous, what page, when. Receipt columns say what was chosen, when and how,
never by whom. ``schema_version`` records which migrations ran.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from ..receipts import Receipt
from .base import COLUMN_PARAMS, Hit

SCHEMA_VERSION = 2
TABLE = "pixel_hits"
# Named as the audit reads it (pixel_middleware.audit.receipts.RECEIPTS_TABLE).
RECEIPTS_TABLE = "pixel_consents"
RECEIPT_COLUMNS = (
    "receipt_id",
    "received_at",
    "action",
    "mode",
    "source",
    "policy_version",
    "gpc",
)
COLUMNS = (
    "hit_id",
    "received_at",
    "track_id",
    "page_name",
    "anonymous",
    "ever_id",
    "session_id",
    "customer_id",
    "params",
    "ip",
    "user_agent",
    "query",
)

# One list per version; each step runs once, in order. ``{timestamp}`` differs per engine.
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        f"""CREATE TABLE {TABLE} (
            hit_id TEXT PRIMARY KEY,
            received_at {{timestamp}} NOT NULL,
            track_id TEXT NOT NULL,
            page_name TEXT NOT NULL,
            anonymous BOOLEAN NOT NULL,
            ever_id TEXT,
            session_id TEXT,
            customer_id TEXT,
            params TEXT NOT NULL,
            ip TEXT,
            user_agent TEXT,
            query TEXT NOT NULL
        )""",
        f"CREATE INDEX {TABLE}_received_at ON {TABLE} (received_at)",
    ],
    2: [
        f"""CREATE TABLE {RECEIPTS_TABLE} (
            receipt_id TEXT PRIMARY KEY,
            received_at {{timestamp}} NOT NULL,
            action TEXT NOT NULL,
            mode TEXT NOT NULL,
            source TEXT NOT NULL,
            policy_version TEXT NOT NULL,
            gpc BOOLEAN NOT NULL
        )""",
        f"CREATE INDEX {RECEIPTS_TABLE}_received_at ON {RECEIPTS_TABLE} (received_at)",
    ],
}
_TIMESTAMP = {"sqlite": "TIMESTAMP", "postgresql": "TIMESTAMPTZ"}


def migrations(dialect: str, step: int) -> list[str]:
    """The statements of migration ``step`` for ``dialect`` ("sqlite" or "postgresql")."""
    return [sql.replace("{timestamp}", _TIMESTAMP[dialect]) for sql in _MIGRATIONS[step]]


def utc_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@lru_cache(maxsize=8)
def _second(epoch_seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_seconds))


def utc_text(epoch: float) -> str:
    """``epoch`` as SQLite's text timestamp in UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    seconds = int(epoch)
    return f"{_second(seconds)}.{int((epoch - seconds) * 1_000_000):06d}"


def receipt_row(receipt: Receipt, stamp: Callable[[float], Any] = utc_datetime) -> tuple[Any, ...]:
    """The column values of ``receipt``, in ``RECEIPT_COLUMNS`` order."""
    return (
        receipt.receipt_id,
        stamp(receipt.received_at),
        receipt.action,
        receipt.mode,
        clean_text(receipt.source),
        clean_text(receipt.policy_version),
        receipt.gpc,
    )


def row(hit: Hit, stamp: Callable[[float], Any] = utc_datetime) -> tuple[Any, ...]:
    """The column values of ``hit``, in ``COLUMNS`` order; ``received_at`` through ``stamp``.

    The query is parsed once here for the columns that come from it. Decoded text is cleaned of
    control characters (NUL among them, which PostgreSQL cannot store at all).
    """
    # Control characters can only come from escapes like %00 (or a raw byte a spool file holds):
    # one search of the query spares a search of every value.
    query = hit.query
    clean = _same if query.isprintable() and not _CONTROL_ESCAPE.search(query) else clean_text
    page_name = ""
    customer_id = None
    others: list[tuple[str, str]] = []
    for part in query.split("&"):
        name, _, raw = part.partition("=")
        if name == "p":
            fields = raw.split(",")
            if len(fields) > 1:
                page_name = clean(_unquote(fields[1]))
            continue
        value = clean(_unquote(raw)) if "%" in raw else clean(raw)
        if name == "cd":
            if customer_id is None:
                customer_id = value
        elif name not in COLUMN_PARAMS:
            others.append((clean(name), value))
    user_agent = hit.user_agent
    return (
        hit.hit_id,
        stamp(hit.received_at),
        hit.track_id,
        page_name,
        hit.anonymous,
        hit.ever_id,
        hit.session_id,
        customer_id,
        _JSON.encode(others),
        hit.ip,
        None if user_agent is None else clean_text(user_agent),
        clean(query),
    )


_CONTROL = re.compile("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]")
# Escapes that decode to a control character: C0, DEL, or C1 (UTF-8 C2 80-9F).
_CONTROL_ESCAPE = re.compile("%(?:[01][0-9A-Fa-f]|7[Ff]|[Cc]2%[89][0-9A-Fa-f])")
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=1024)
def _unquote_short(raw: str) -> str:
    return unquote(raw, errors="replace")


def _unquote(raw: str) -> str:
    # Page names and most values repeat from hit to hit: decode each once.
    return _unquote_short(raw) if len(raw) <= 256 else unquote(raw, errors="replace")


def _same(text: str) -> str:
    return text


def clean_text(text: str) -> str:
    """``text`` with control characters (other than tab and line breaks) replaced by U+FFFD."""
    return _CONTROL.sub("\ufffd", text) if _CONTROL.search(text) else text
