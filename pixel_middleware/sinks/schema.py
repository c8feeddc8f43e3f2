"""The hits table, shared by the SQLite and PostgreSQL stores, and its migrations.

Columns are what a privacy officer asks about: who (everID, session, customer, IP, user agent),
whether anonymous, what page, when. ``schema_version`` records which migrations ran.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .base import Hit, first_value, without_columns

SCHEMA_VERSION = 1
TABLE = "pixel_hits"
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
    ]
}
_TIMESTAMP = {"sqlite": "TIMESTAMP", "postgresql": "TIMESTAMPTZ"}


def migrations(dialect: str, step: int) -> list[str]:
    """The statements of migration ``step`` for ``dialect`` ("sqlite" or "postgresql")."""
    return [sql.replace("{timestamp}", _TIMESTAMP[dialect]) for sql in _MIGRATIONS[step]]


def row(hit: Hit) -> tuple[Any, ...]:
    """The column values of ``hit``, in ``COLUMNS`` order; ``received_at`` as UTC datetime."""
    params = hit.params()  # parsed once for the three columns that come from it
    return (
        hit.hit_id,
        datetime.fromtimestamp(hit.received_at, UTC),
        hit.track_id,
        hit.page_name,
        hit.anonymous,
        hit.ever_id,
        hit.session_id,
        first_value(params, "cd"),
        json.dumps(without_columns(params), separators=(",", ":"), ensure_ascii=False),
        hit.ip,
        hit.user_agent,
        hit.query,
    )
