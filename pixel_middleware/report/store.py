"""Read access to the hits store (SQLite or PostgreSQL), for reports and retention."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote

from ..sinks.schema import RECEIPT_COLUMNS, RECEIPTS_TABLE, TABLE
from ..store_url import StoreLocation, parse_store
from .summary import ReportRow

# What a report needs of a row, in this order; the event name is read from the stored query.
REPORT_COLUMNS = ("received_at", "anonymous", "ever_id", "page_name", "query", "session_id")
RECENT_COLUMNS = ("received_at", "anonymous", "page_name", "query")


class StoreMissing(Exception):
    """The store named by the settings does not exist, or holds no hits table."""


def _recent_sql(placeholder: str, ever_id: str | None) -> str:
    where = f"ever_id = {placeholder}" if ever_id else "anonymous"
    return (
        f"SELECT {', '.join(RECENT_COLUMNS)} FROM {TABLE} WHERE {where} "
        f"ORDER BY received_at DESC LIMIT {placeholder}"
    )


def event_name(query: str) -> str | None:
    """The ``ct`` value of a stored query (an event), or None (a page view)."""
    if query.startswith("ct="):
        start = 3
    else:
        at = query.find("&ct=")
        if at < 0:
            return None
        start = at + 4
    value = query[start:].split("&", 1)[0]
    return unquote(value, errors="replace") if value else None


class StoreReader(Protocol):
    location: StoreLocation

    def count(self, since: datetime) -> int: ...

    def rows(self, since: datetime, chunk: int = 5_000) -> Iterator[ReportRow]: ...

    def prune(self, before: datetime) -> int: ...

    def recent(self, limit: int, *, ever_id: str | None = None) -> list[dict[str, Any]]:
        """The latest hits of one everID (a visitor's own data), or the latest anonymous ones."""
        ...

    def receipts(self, since: datetime) -> Iterator[dict[str, Any]]:
        """The consent receipts received since ``since``, oldest first (``received_at`` an
        aware UTC datetime); none when the store holds no receipts table."""
        ...

    def prune_receipts(self, before: datetime) -> int:
        """Delete the receipts received before ``before``; how many were."""
        ...

    def close(self) -> None: ...


def _receipts_sql(placeholder: str) -> str:
    return (
        f"SELECT {', '.join(RECEIPT_COLUMNS)} FROM {RECEIPTS_TABLE} "
        f"WHERE received_at >= {placeholder} ORDER BY received_at, receipt_id"
    )


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SQLiteReader:
    def __init__(self, location: StoreLocation, *, must_exist: bool = False) -> None:
        self.location = location
        path = location.target
        # Reading must not create the database as a side effect.
        if not os.path.exists(path):
            if must_exist:
                raise StoreMissing(f"no store at {location.describe()}: the file does not exist")
            self.conn = sqlite3.connect(":memory:")
            self._exists = self._receipts = False
            return
        self.conn = sqlite3.connect(path, timeout=30)
        try:
            found = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise StoreMissing(f"{location.describe()} is not a SQLite database ({exc})") from None
        self._exists = bool(found)
        if must_exist and not self._exists:
            self.conn.close()
            raise StoreMissing(
                f"{location.describe()} holds no {TABLE} table: no hit was stored there yet"
            )
        # A store written before receipts existed has no such table until the app migrates it.
        self._receipts = bool(
            self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (RECEIPTS_TABLE,)
            ).fetchone()
        )

    def receipts(self, since: datetime) -> Iterator[dict[str, Any]]:
        if not self._receipts:
            return
        cur = self.conn.execute(_receipts_sql("?"), (_utc_text(since),))
        while batch := cur.fetchmany(5_000):
            for values in batch:
                receipt = dict(zip(RECEIPT_COLUMNS, values, strict=True))
                received = datetime.fromisoformat(receipt["received_at"])
                receipt["received_at"] = received.replace(tzinfo=UTC)
                receipt["gpc"] = bool(receipt["gpc"])
                yield receipt

    def prune_receipts(self, before: datetime) -> int:
        if not self._receipts:
            return 0
        with self.conn:
            cur = self.conn.execute(
                f"DELETE FROM {RECEIPTS_TABLE} WHERE received_at < ?",
                (_utc_text(before),),
            )
        return cur.rowcount

    def count(self, since: datetime) -> int:
        if not self._exists:
            return 0
        sql = f"SELECT count(*) FROM {TABLE} WHERE received_at >= ?"
        return int(self.conn.execute(sql, (_utc_text(since),)).fetchone()[0])

    def rows(self, since: datetime, chunk: int = 5_000) -> Iterator[ReportRow]:
        if not self._exists:
            return
        sql = f"SELECT {', '.join(REPORT_COLUMNS)} FROM {TABLE} WHERE received_at >= ?"
        cur = self.conn.execute(sql, (_utc_text(since),))
        while batch := cur.fetchmany(chunk):
            for received, anonymous, ever_id, page, query, session in batch:
                yield ReportRow(
                    datetime.fromisoformat(received).replace(tzinfo=UTC),
                    bool(anonymous),
                    ever_id,
                    page,
                    event_name(query),
                    session,
                )

    def prune(self, before: datetime) -> int:
        if not self._exists:
            return 0
        with self.conn:
            cur = self.conn.execute(
                f"DELETE FROM {TABLE} WHERE received_at < ?", (_utc_text(before),)
            )
        return cur.rowcount

    def recent(self, limit: int, *, ever_id: str | None = None) -> list[dict[str, Any]]:
        if not self._exists:
            return []
        args: tuple[Any, ...] = (ever_id, limit) if ever_id else (limit,)
        rows = self.conn.execute(_recent_sql("?", ever_id), args).fetchall()
        return [dict(zip(RECENT_COLUMNS, r, strict=True)) | {"anonymous": bool(r[1])} for r in rows]

    def close(self) -> None:
        self.conn.close()


class PostgresReader:
    def __init__(self, location: StoreLocation, *, must_exist: bool = False) -> None:
        import psycopg

        self.location = location
        # Autocommit: each statement stands alone; explicit transactions where one is needed.
        self.conn = psycopg.connect(location.target, connect_timeout=10, autocommit=True)
        # Timestamps come back in UTC; the report turns them into days of its own time zone.
        self.conn.execute("SET TIME ZONE 'UTC'")
        found = self.conn.execute(
            "SELECT to_regclass(%s), to_regclass(%s)", (TABLE, RECEIPTS_TABLE)
        ).fetchone()
        self._exists = bool(found and found[0])
        self._receipts = bool(found and found[1])
        if must_exist and not self._exists:
            self.conn.close()
            raise StoreMissing(
                f"{location.describe()} holds no {TABLE} table: no hit was stored there yet"
            )

    def count(self, since: datetime) -> int:
        if not self._exists:
            return 0
        found = self.conn.execute(
            f"SELECT count(*) FROM {TABLE} WHERE received_at >= %s", (since,)
        ).fetchone()
        return int(found[0]) if found else 0

    def rows(self, since: datetime, chunk: int = 5_000) -> Iterator[ReportRow]:
        if not self._exists:
            return
        # A named (server-side) cursor streams a large table instead of loading it whole.
        with self.conn.transaction(), self.conn.cursor(name="pixel_report") as cur:
            cur.itersize = chunk
            cur.execute(
                f"SELECT {', '.join(REPORT_COLUMNS)} FROM {TABLE} WHERE received_at >= %s",
                (since,),
            )
            for received, anonymous, ever_id, page, query, session in cur:
                yield ReportRow(received, anonymous, ever_id, page, event_name(query), session)

    def prune(self, before: datetime) -> int:
        if not self._exists:
            return 0
        with self.conn.transaction():
            cur = self.conn.execute(f"DELETE FROM {TABLE} WHERE received_at < %s", (before,))
        return cur.rowcount

    def recent(self, limit: int, *, ever_id: str | None = None) -> list[dict[str, Any]]:
        if not self._exists:
            return []
        args: tuple[Any, ...] = (ever_id, limit) if ever_id else (limit,)
        rows = self.conn.execute(_recent_sql("%s", ever_id), args).fetchall()
        return [dict(zip(RECENT_COLUMNS, r, strict=True)) for r in rows]

    def receipts(self, since: datetime) -> Iterator[dict[str, Any]]:
        if not self._receipts:
            return
        with self.conn.transaction(), self.conn.cursor(name="pixel_receipts") as cur:
            cur.itersize = 5_000
            cur.execute(_receipts_sql("%s"), (since,))
            for values in cur:
                yield dict(zip(RECEIPT_COLUMNS, values, strict=True))

    def prune_receipts(self, before: datetime) -> int:
        if not self._receipts:
            return 0
        with self.conn.transaction():
            cur = self.conn.execute(
                f"DELETE FROM {RECEIPTS_TABLE} WHERE received_at < %s",
                (before,),
            )
        return cur.rowcount

    def close(self) -> None:
        self.conn.close()


def open_store(store: str, *, must_exist: bool = False) -> StoreReader:
    """A reader for a ``store`` setting (see :mod:`pixel_middleware.store_url`).

    With ``must_exist``, a store that does not exist yet is :class:`StoreMissing` (the command
    line: a wrong path must not look like an empty report); without it, it reads as empty (the
    HTML report of a site that has stored nothing yet).
    """
    location = parse_store(store)
    if location.kind == "sqlite":
        return SQLiteReader(location, must_exist=must_exist)
    return PostgresReader(location, must_exist=must_exist)
