"""The embedded default store: one SQLite file in WAL mode, written by the writer thread."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .base import Hit
from .buffered import BufferedSink
from .schema import COLUMNS, SCHEMA_VERSION, TABLE, migrations, row

sqlite3.register_adapter(datetime, lambda d: d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (and create or migrate) the hits database at ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    migrate(conn)
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"hits database has schema version {version}; this pixel_middleware knows up to "
            f"{SCHEMA_VERSION}: upgrade the package"
        )
    for step in range(version + 1, SCHEMA_VERSION + 1):
        with conn:
            for statement in migrations("sqlite", step):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step}")


class SQLiteBackend:
    """Inserts batches in one transaction; a retried batch is ignored row by row (``hit_id``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = f"sqlite:{self.path}"
        self._conn: sqlite3.Connection | None = None
        # Table and column names are constants of this package, never input.
        self._insert = (
            f"INSERT OR IGNORE INTO {TABLE} ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in COLUMNS)})"
        )

    async def write_batch(self, hits: Sequence[Hit]) -> None:
        if self._conn is None:
            self._conn = connect(self.path)
        with self._conn:
            self._conn.executemany(self._insert, [row(h) for h in hits])

    async def reset(self) -> None:
        await self.close()

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class SQLiteSink(BufferedSink):
    """Store hits in the SQLite file at ``path`` (created on first use), off the request path.

    Unsent hits wait in ``<path>.spool/``. ``options`` are those of :class:`BufferedSink`.
    """

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        self.path = os.fspath(path)
        super().__init__(SQLiteBackend(path), spool_dir=f"{self.path}.spool", **options)
