"""Read access to the hits store (SQLite or PostgreSQL), for reports and retention."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ..sinks.factory import sqlite_path
from ..sinks.schema import TABLE

# What a report needs of a row, in this order.
REPORT_COLUMNS = ("received_at", "anonymous", "ever_id", "page_name")
RECENT_COLUMNS = ("received_at", "anonymous", "page_name", "query")


def _recent_sql(placeholder: str, ever_id: str | None) -> str:
    where = f"ever_id = {placeholder}" if ever_id else "anonymous"
    return (
        f"SELECT {', '.join(RECENT_COLUMNS)} FROM {TABLE} WHERE {where} "
        f"ORDER BY received_at DESC LIMIT {placeholder}"
    )


class StoreReader(Protocol):
    def count(self, since: datetime) -> int: ...

    def rows(self, since: datetime, chunk: int = 5_000) -> Iterator[tuple[Any, ...]]: ...

    def prune(self, before: datetime) -> int: ...

    def recent(self, limit: int, *, ever_id: str | None = None) -> list[dict[str, Any]]:
        """The latest hits of one everID (a visitor's own data), or the latest anonymous ones."""
        ...

    def close(self) -> None: ...


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SQLiteReader:
    def __init__(self, path: str) -> None:
        # Reading must not create the database as a side effect.
        if not os.path.exists(path):
            self.conn = sqlite3.connect(":memory:")
            self._exists = False
            return
        self.conn = sqlite3.connect(path, timeout=30)
        self._exists = bool(
            self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)
            ).fetchone()
        )

    def count(self, since: datetime) -> int:
        if not self._exists:
            return 0
        sql = f"SELECT count(*) FROM {TABLE} WHERE received_at >= ?"
        return int(self.conn.execute(sql, (_utc_text(since),)).fetchone()[0])

    def rows(self, since: datetime, chunk: int = 5_000) -> Iterator[tuple[Any, ...]]:
        if not self._exists:
            return
        sql = f"SELECT {', '.join(REPORT_COLUMNS)} FROM {TABLE} WHERE received_at >= ?"
        cur = self.conn.execute(sql, (_utc_text(since),))
        while batch := cur.fetchmany(chunk):
            for received, anonymous, ever_id, page in batch:
                yield (
                    datetime.fromisoformat(received).replace(tzinfo=UTC),
                    bool(anonymous),
                    ever_id,
                    page,
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
    def __init__(self, dsn: str) -> None:
        import psycopg

        # Autocommit: each statement stands alone; explicit transactions where one is needed.
        self.conn = psycopg.connect(dsn, connect_timeout=10, autocommit=True)
        # Days are UTC days, as in the SQLite store.
        self.conn.execute("SET TIME ZONE 'UTC'")
        found = self.conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()
        self._exists = bool(found and found[0])

    def count(self, since: datetime) -> int:
        if not self._exists:
            return 0
        found = self.conn.execute(
            f"SELECT count(*) FROM {TABLE} WHERE received_at >= %s", (since,)
        ).fetchone()
        return int(found[0]) if found else 0

    def rows(self, since: datetime, chunk: int = 5_000) -> Iterator[tuple[Any, ...]]:
        if not self._exists:
            return
        # A named (server-side) cursor streams a large table instead of loading it whole.
        with self.conn.transaction(), self.conn.cursor(name="pixel_report") as cur:
            cur.itersize = chunk
            cur.execute(
                f"SELECT {', '.join(REPORT_COLUMNS)} FROM {TABLE} WHERE received_at >= %s",
                (since,),
            )
            yield from cur

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

    def close(self) -> None:
        self.conn.close()


def open_store(store: str) -> StoreReader:
    """A reader for a ``store`` URL as in the settings (``sqlite:…`` or ``postgresql://…``)."""
    if store.startswith("sqlite:"):
        return SQLiteReader(sqlite_path(store))
    return PostgresReader(store)


def days_ago(days: int, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
