"""The shared store for sites on several machines: PostgreSQL through psycopg 3 (async).

Needs the ``postgres`` extra (``pip install pixel-middleware[postgres]``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..receipts import Receipt
from .base import Hit, Record
from .buffered import BufferedSink
from .schema import (
    COLUMNS,
    RECEIPT_COLUMNS,
    RECEIPTS_TABLE,
    SCHEMA_VERSION,
    TABLE,
    migrations,
    receipt_row,
    row,
)

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("pixel_middleware.sinks")

# Any constant works; it only has to be the same on every machine migrating the same database.
_MIGRATION_LOCK = 0x70697865


async def migrate(conn: psycopg.AsyncConnection[Any]) -> None:
    """Create or upgrade the schema; safe when several machines start at once."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS pixel_schema_version (version INTEGER)")
        cur = await conn.execute("SELECT max(version) FROM pixel_schema_version")
        found = await cur.fetchone()
        version = int(found[0]) if found and found[0] is not None else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"hits database has schema version {version}; this pixel_middleware knows up to "
                f"{SCHEMA_VERSION}: upgrade the package"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in migrations("postgresql", step):
                await conn.execute(statement)
            await conn.execute("INSERT INTO pixel_schema_version VALUES (%s)", (step,))


class PostgresBackend:
    """Inserts a batch in one transaction; ``ON CONFLICT`` makes a retried batch harmless."""

    keeps_receipts = True  # the pixel_consents table

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.name = "postgresql"
        self._conn: psycopg.AsyncConnection[Any] | None = None
        # Table and column names are constants of this package, never input.
        self._insert = (
            f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('%s' for _ in COLUMNS)}) ON CONFLICT (hit_id) DO NOTHING"
        )
        self._insert_receipt = (
            f"INSERT INTO {RECEIPTS_TABLE} ({', '.join(RECEIPT_COLUMNS)}) "
            f"VALUES ({', '.join('%s' for _ in RECEIPT_COLUMNS)}) "
            "ON CONFLICT (receipt_id) DO NOTHING"
        )

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(self.dsn, connect_timeout=5, autocommit=True)
        await migrate(conn)
        return conn

    async def write_batch(self, hits: Sequence[Record]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = await self._connect()
        if not hits:
            return
        rows = [row(h) for h in hits if isinstance(h, Hit)]
        receipts = [receipt_row(r) for r in hits if isinstance(r, Receipt)]
        async with self._conn.transaction(), self._conn.cursor() as cur:
            if rows:
                await cur.executemany(self._insert, rows)
            if receipts:
                await cur.executemany(self._insert_receipt, receipts)

    async def check(self) -> None:
        """Try the server once at start-up; an outage is logged, not fatal: the spool covers it."""
        try:
            await self.write_batch([])
        except Exception as exc:
            logger.error(
                "PostgreSQL store unreachable at start-up (%s); hits are spooled until it is", exc
            )
            await self.close()

    @staticmethod
    def permanent(exc: BaseException) -> bool:
        """A failure caused by the hits themselves; connection trouble is an outage."""
        import psycopg

        return isinstance(exc, psycopg.DataError | psycopg.IntegrityError | ValueError | TypeError)

    async def reset(self) -> None:
        await self.close()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class PostgresSink(BufferedSink):
    """Store hits in PostgreSQL at ``dsn``; reconnects after a server restart.

    Unsent hits wait in ``spool_dir``. ``options`` are those of :class:`BufferedSink`.
    """

    def __init__(self, dsn: str, *, spool_dir: str, **options: Any) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "the PostgreSQL store needs psycopg: pip install 'pixel-middleware[postgres]'"
            ) from None
        super().__init__(PostgresBackend(dsn), spool_dir=spool_dir, **options)
