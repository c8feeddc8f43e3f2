"""Reading what the audit checks: the store's rows and receipts, and the spool folders' lines.

Reading changes nothing: the SQLite connection is ``query_only`` (a missing file is an error,
never a new store), PostgreSQL's transactions are read-only. Rows come in chunks, so a large
table is never held whole; identified rows are read with only the columns their one check
needs.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..sinks.schema import COLUMNS, TABLE
from ..store_url import StoreLocation, parse_store
from .config import AuditSettings
from .receipts import RECEIPTS_TABLE

CHUNK = 5_000
_SLIM = ("hit_id", "received_at", "anonymous")


class Unreadable(Exception):
    """The store (or a spool folder) cannot be read: the audit cannot vouch for anything."""


class HitsSource(Protocol):
    location: StoreLocation

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row: anonymous ones with all columns, identified ones with ``_SLIM``."""
        ...

    def receipts(self) -> Iterator[dict[str, Any]] | None:
        """The consent receipts, or None when the store holds no receipts table."""
        ...

    def close(self) -> None: ...


def _select(columns: tuple[str, ...], where: str) -> str:
    # Table and column names are this package's constants, never input.
    return f"SELECT {', '.join(columns)} FROM {TABLE} WHERE {where}"  # noqa: S608


def _timestamp(value: Any) -> datetime | None:
    """``received_at`` as an aware UTC datetime; None when it is not a timestamp at all."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        # The SQLite store writes UTC text without an offset.
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class SQLiteSource:
    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        path = Path(location.target)
        if not path.is_file():
            raise Unreadable(f"no store at {location.describe()}: the file does not exist")
        # query_only: this connection cannot write. Not mode=ro: a read-only connection to a
        # WAL database leaves -wal and -shm files behind, owned by whoever ran the audit (root,
        # in a cron job), which the app may then be unable to open; as the last connection,
        # this one removes them as the app's own would.
        self.conn = sqlite3.connect(path, timeout=30)
        try:
            self.conn.execute("PRAGMA query_only = ON")
            tables = {
                name
                for (name,) in self.conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                )
            }
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise Unreadable(f"{location.describe()} is not a SQLite database ({exc})") from None
        if TABLE not in tables:
            self.conn.close()
            raise Unreadable(f"{location.describe()} holds no {TABLE} table: no hit was stored")
        self._receipts = RECEIPTS_TABLE in tables

    def rows(self) -> Iterator[dict[str, Any]]:
        for columns, where in ((COLUMNS, "anonymous"), (_SLIM, "NOT anonymous")):
            cur = self.conn.execute(_select(columns, where))
            while batch := cur.fetchmany(CHUNK):
                for values in batch:
                    row = dict(zip(columns, values, strict=True))
                    row["anonymous"] = bool(row["anonymous"])
                    row["received_at"] = _timestamp(row["received_at"])
                    yield row

    def receipts(self) -> Iterator[dict[str, Any]] | None:
        if not self._receipts:
            return None
        return self._receipt_rows()

    def _receipt_rows(self) -> Iterator[dict[str, Any]]:
        cur = self.conn.execute(f"SELECT * FROM {RECEIPTS_TABLE}")  # noqa: S608
        names = [d[0] for d in cur.description]
        while batch := cur.fetchmany(CHUNK):
            for values in batch:
                yield dict(zip(names, values, strict=True))

    def close(self) -> None:
        self.conn.close()


class PostgresSource:
    def __init__(self, location: StoreLocation) -> None:
        import psycopg

        self.location = location
        self.conn = psycopg.connect(location.target, connect_timeout=10, autocommit=True)
        self.conn.read_only = True
        self.conn.execute("SET TIME ZONE 'UTC'")
        found = self.conn.execute(
            "SELECT to_regclass(%s), to_regclass(%s)", (TABLE, RECEIPTS_TABLE)
        ).fetchone()
        if not found or found[0] is None:
            self.conn.close()
            raise Unreadable(f"{location.describe()} holds no {TABLE} table: no hit was stored")
        self._receipts = found[1] is not None

    def _stream(self, sql: str, name: str) -> Iterator[dict[str, Any]]:
        # A named (server-side) cursor streams a large table instead of loading it whole.
        with self.conn.transaction(), self.conn.cursor(name=name) as cur:
            cur.itersize = CHUNK
            cur.execute(sql)
            names: list[str] | None = None
            for values in cur:
                if names is None:
                    names = [d.name for d in cur.description or ()]
                yield dict(zip(names, values, strict=True))

    def rows(self) -> Iterator[dict[str, Any]]:
        for columns, where in ((COLUMNS, "anonymous"), (_SLIM, "NOT anonymous")):
            for row in self._stream(_select(columns, where), "pixel_audit"):
                row["received_at"] = _timestamp(row["received_at"])
                yield row

    def receipts(self) -> Iterator[dict[str, Any]] | None:
        if not self._receipts:
            return None
        return self._stream(f"SELECT * FROM {RECEIPTS_TABLE}", "pixel_audit_receipts")  # noqa: S608

    def close(self) -> None:
        self.conn.close()


def read_errors() -> tuple[type[Exception], ...]:
    """The errors a store can raise while it is read (psycopg's only when it is installed)."""
    errors: tuple[type[Exception], ...] = (sqlite3.Error, OSError)
    try:
        import psycopg
    except ImportError:
        return errors
    return (*errors, psycopg.Error)


def open_source(store: str) -> HitsSource:
    """The rows of a ``store`` setting; :class:`Unreadable` with the reason if it cannot be."""
    try:
        location = parse_store(store)
    except ValueError as exc:
        raise Unreadable(str(exc)) from None
    try:
        if location.kind == "sqlite":
            return SQLiteSource(location)
        return PostgresSource(location)
    except Unreadable:
        raise
    except Exception as exc:
        raise Unreadable(f"cannot open store {location.describe()}: {exc}") from None


# ------------------------------------------------------------------------- spool folders


@dataclass(frozen=True, slots=True)
class SpoolLine:
    """One line of a spool, dead-letter or rejected file: its place, and the hit if readable
    (or, for a consent receipt waiting to be stored, the receipt)."""

    where: str
    row: dict[str, Any] | None
    receipt: dict[str, Any] | None = None


def spool_folders(settings: AuditSettings) -> list[Path]:
    """Where the app keeps hits not yet stored or sent, each with its ``dead/`` folder: the
    SQLite store's ``<file>.spool/``, ``spool_dir`` and its ``postgresql/`` and ``relay/``, and
    the relay's ``rejected/``. Relative paths are relative to the working directory, as for
    the app."""
    folders: list[Path] = []
    if settings.store is not None:
        try:
            location = parse_store(settings.store)
        except ValueError:
            location = None
        if location is not None and location.kind == "sqlite":
            folders.append(Path(f"{location.target}.spool"))
    base = Path(settings.spool_dir)
    folders += [base, base / "postgresql", base / "relay"]
    folders += [folder / "dead" for folder in list(folders)]
    folders.append(base / "relay" / "rejected")
    return list(dict.fromkeys(folders))


def spool_lines(folders: list[Path]) -> Iterator[SpoolLine]:
    """Every line of every ``*.jsonl`` file in ``folders`` (``Unreadable`` if one cannot be
    listed or read); a line that is no hit comes with ``row=None``."""
    for folder in folders:
        try:
            files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
        except OSError as exc:
            raise Unreadable(f"cannot list {folder}: {exc}") from None
        for path in files:
            try:
                with path.open(encoding="utf-8", errors="replace") as lines:
                    for number, line in enumerate(lines, 1):
                        if line.strip():
                            where = f"{path}:{number}"
                            receipt = spool_receipt(line)
                            if receipt is not None:
                                yield SpoolLine(where, None, receipt)
                            else:
                                yield SpoolLine(where, spool_row(line))
            except FileNotFoundError:
                continue  # the running app sent it meanwhile
            except OSError as exc:
                raise Unreadable(f"cannot read {path}: {exc}") from None


def spool_receipt(line: str) -> dict[str, Any] | None:
    """A spool line holding a consent receipt (``"kind": "receipt"``, or a dead letter's
    ``receipt``), as a row without ``kind``; None for anything else."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("receipt"), dict):
        data = data["receipt"]
    if not isinstance(data, dict) or data.get("kind") != "receipt":
        return None
    return {k: v for k, v in data.items() if k != "kind"}


def spool_row(line: str) -> dict[str, Any] | None:
    """A spool line as a row (a dead letter's ``hit``); None if it is no hit at all.

    Read as plain JSON, never through ``Hit``: its constructor refuses exactly the anonymous
    hits with identifiers this audit is looking for.
    """
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("hit"), dict):
        data = data["hit"]  # a dead letter: {"reason": …, "hit": {…}}
    if not isinstance(data, dict) or "anonymous" not in data or "query" not in data:
        return None
    row = dict(data)
    row["anonymous"] = bool(row["anonymous"])
    row["received_at"] = _epoch(row.get("received_at"))
    return row


def _epoch(value: Any) -> datetime | None:
    """A spool line's ``received_at`` (seconds since the epoch) as a datetime, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def existing(folders: list[Path]) -> list[str]:
    """The folders that exist, as the report lists them."""
    return [os.fspath(folder) for folder in folders if folder.is_dir()]
