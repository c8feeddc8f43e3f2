"""The embedded default store: one SQLite file in WAL mode, written by the writer thread."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..receipts import Receipt
from .base import Hit, Record
from .buffered import Backend, BufferedSink
from .schema import (
    COLUMNS,
    RECEIPT_COLUMNS,
    RECEIPTS_TABLE,
    SCHEMA_VERSION,
    TABLE,
    migrations,
    receipt_row,
    row,
    utc_text,
)

sqlite3.register_adapter(datetime, lambda d: d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))

# How long a write waits for a lock another process holds (a prune, a backup, another worker).
# Short on purpose: the writer spools a batch it cannot write, it does not sit on it.
BUSY_TIMEOUT = 2.0
# Rows per INSERT statement: SQLite allows 32,766 bound values; 12 columns each.
_ROWS_PER_INSERT = 500


def connect(path: str | os.PathLike[str], *, timeout: float = 30) -> sqlite3.Connection:
    """Open (and create or migrate) the hits database at ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=timeout, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a crash of the process; only a power cut may lose the
    # last transactions, which FULL would cost an fsync per batch to prevent.
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


def _insert(rows: int) -> str:
    # Table and column names are constants of this package, never input.
    values = ", ".join(["(" + ", ".join("?" for _ in COLUMNS) + ")"] * rows)
    return f"INSERT OR IGNORE INTO {TABLE} ({', '.join(COLUMNS)}) VALUES {values}"


_INSERT_RECEIPT = (
    f"INSERT OR IGNORE INTO {RECEIPTS_TABLE} ({', '.join(RECEIPT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in RECEIPT_COLUMNS)})"
)


class SQLiteBackend:
    """Inserts batches in one transaction, many rows per statement; a replayed hit is ignored
    (``hit_id``). Runs in a worker thread: SQLite releases the GIL while it writes."""

    keeps_receipts = True  # the pixel_consents table

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = f"sqlite:{self.path}"
        self._conn: sqlite3.Connection | None = None
        self._full = _insert(_ROWS_PER_INSERT)

    async def check(self) -> None:
        """Open (create, migrate) the database now, so a wrong path fails at start-up."""
        try:
            await asyncio.to_thread(self._open)
        except (sqlite3.Error, OSError) as exc:
            raise RuntimeError(f"the SQLite store {self.path} cannot be opened: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path, timeout=BUSY_TIMEOUT)
        return self._conn

    async def write_batch(self, hits: Sequence[Record]) -> None:
        await asyncio.to_thread(self.write_rows, hits)

    def write_rows(self, hits: Sequence[Record]) -> None:
        """Insert ``hits`` (and receipts among them) in one transaction (blocking)."""
        conn = self._open()
        receipts = [receipt_row(r, utc_text) for r in hits if isinstance(r, Receipt)]
        rows = [row(h, utc_text) for h in hits if isinstance(h, Hit)]
        with conn:
            if receipts:
                # A replayed receipt is ignored, as a replayed hit is (receipt_id).
                conn.executemany(_INSERT_RECEIPT, receipts)
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                part = rows[start : start + _ROWS_PER_INSERT]
                sql = self._full if len(part) == _ROWS_PER_INSERT else _insert(len(part))
                conn.execute(sql, [value for r in part for value in r])

    @staticmethod
    def permanent(exc: BaseException) -> bool:
        """A failure caused by the hits themselves; locks, I/O and a full disk are outages."""
        return isinstance(
            exc,
            sqlite3.IntegrityError
            | sqlite3.DataError
            | sqlite3.InterfaceError
            | ValueError
            | TypeError
            | OverflowError,
        )

    async def reset(self) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.close_now)

    def close_now(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


class SQLiteSink(BufferedSink):
    """Store hits in the SQLite file at ``path`` (created on first use), off the request path.

    Rows are written by a child process (:mod:`.sqlite_writer`) unless ``in_process`` is true,
    for hosts that cannot start one. Unsent hits wait in ``<path>.spool/``. ``options`` are
    those of :class:`BufferedSink`.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, in_process: bool = False, **options: Any
    ) -> None:
        self.path = os.fspath(path)
        backend: Backend
        if in_process:
            backend = SQLiteBackend(path)
        else:
            from .sqlite_writer import SQLiteProcessBackend

            backend = SQLiteProcessBackend(path)
        super().__init__(backend, spool_dir=f"{self.path}.spool", **options)
