"""The SQLite store's writes, done by a child process so they never compete with the web server.

Building rows and binding them to SQLite costs as much Python work per hit as answering the hit
does, and a thread in the server's process would take that work from the same interpreter lock:
measured in one process, hits into SQLite ran at about half the rate of hits into no store. The
child is a plain ``python -m pixel_middleware.sinks.sqlite_writer <path>`` started by the parent
(never a fork, and never a re-import of the application's main module), fed batches over its
standard input and answering each one on its standard output. It exits when its input closes,
so it cannot outlive the server, even one killed with ``kill -9``.

Frames in both directions: a 4-byte big-endian length, then a pickle. Only this package's own
parent and child read them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from ..receipts import Receipt
from .base import Hit, Record
from .sqlite import SQLiteBackend

logger = logging.getLogger("pixel_middleware.sinks")

_LENGTH = struct.Struct("!I")
# A batch is answered in milliseconds; a child silent this long is stuck and is replaced.
ANSWER_TIMEOUT = 60.0


class StoreRefused(ValueError):
    """The store cannot hold these hits (a data error): they must be split out, not retried."""


class StoreDown(OSError):
    """The store or its writer process cannot write now: the hits are retried later."""


def _write_frame(stream: IO[bytes], payload: Any) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream: IO[bytes]) -> Any:
    (size,) = _LENGTH.unpack(_read_exact(stream, _LENGTH.size))
    return pickle.loads(_read_exact(stream, size))  # noqa: S301 - written by our own parent


class SQLiteProcessBackend:
    """Writes batches through a child process running :class:`SQLiteBackend`."""

    keeps_receipts = True  # the pixel_consents table

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = f"sqlite:{self.path}"
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    async def check(self) -> None:
        """Open (create, migrate) the database now, so a wrong path fails at start-up, and start
        the writer process, so the first hits do not wait for an interpreter to start."""
        await SQLiteBackend(self.path).check()

        def start() -> None:
            with self._lock:
                self._running()

        await asyncio.to_thread(start)

    async def write_batch(self, hits: Sequence[Record]) -> None:
        # Hits go as plain tuples (cheaper to pickle); receipts, rare, as themselves.
        await asyncio.to_thread(
            self._round_trip, [r if isinstance(r, Receipt) else tuple(r) for r in hits]
        )

    def _round_trip(self, rows: list[Any]) -> None:
        with self._lock:
            child = self._running()
            assert child.stdin is not None and child.stdout is not None
            try:
                _write_frame(child.stdin, rows)
                ready, _, _ = select.select([child.stdout], [], [], ANSWER_TIMEOUT)
                if not ready:
                    raise StoreDown(f"the SQLite writer gave no answer in {ANSWER_TIMEOUT:.0f} s")
                status, detail = _read_frame(child.stdout)
            except (OSError, EOFError, pickle.UnpicklingError, struct.error) as exc:
                self._stop(child)
                raise StoreDown(f"the SQLite writer process failed: {exc!r}") from exc
        if status == "refused":
            raise StoreRefused(detail)
        if status != "ok":
            raise StoreDown(detail)

    def _running(self) -> subprocess.Popen[bytes]:
        child = self._child
        if child is None or child.poll() is not None:
            child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", __name__, self.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
            self._child = child
        return child

    def _stop(self, child: subprocess.Popen[bytes]) -> None:
        if self._child is child:
            self._child = None
        try:
            if child.stdin is not None:
                child.stdin.close()  # the child exits when its input ends
            child.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()
            child.wait()

    @staticmethod
    def permanent(exc: BaseException) -> bool:
        return isinstance(exc, StoreRefused)

    async def reset(self) -> None:
        await self.close()

    async def close(self) -> None:
        def stop() -> None:
            with self._lock:
                if self._child is not None:
                    self._stop(self._child)

        await asyncio.to_thread(stop)


def serve(path: str, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The child's loop: a batch in, ``("ok" | "refused" | "down", detail)`` out, until EOF."""
    backend = SQLiteBackend(path)
    try:
        while True:
            try:
                rows = _read_frame(stdin)
            except EOFError:
                return
            try:
                backend.write_rows([row if isinstance(row, Receipt) else Hit(*row) for row in rows])
                answer = ("ok", "")
            except Exception as exc:
                detail = f"{type(exc).__name__}: {exc}"
                answer = ("refused" if SQLiteBackend.permanent(exc) else "down", detail)
                if answer[0] == "down":
                    backend.close_now()  # reconnect for the next batch
            _write_frame(stdout, answer)
    finally:
        backend.close_now()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
