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
import contextlib
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

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


def _frame(payload: Any) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _write_frame(stream: IO[bytes], payload: Any) -> None:
    stream.write(_frame(payload))
    stream.flush()


# A batch of 1,000 hits pickles to about 150 KB: with a pipe this large it goes in one write.
_PIPE_BYTES = 1024 * 1024


def _widen(fd: int) -> None:
    """Grow a pipe's buffer (Linux); elsewhere, or past the system's limit, it stays as it is."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, set_size, _PIPE_BYTES)


async def _ready(fd: int, *, write: bool) -> None:
    """Wait on the running loop until ``fd`` can be written (or read)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _exchange(child: subprocess.Popen[bytes], frame: bytes) -> Any:
    """Write ``frame`` to the child's non-blocking input; read one answer frame back."""
    assert child.stdin is not None and child.stdout is not None
    out, into = child.stdin.fileno(), child.stdout.fileno()
    view = memoryview(frame)
    while view:
        try:
            view = view[os.write(out, view) :]
        except BlockingIOError:
            await _ready(out, write=True)
    received = bytearray()
    size = None
    while size is None or len(received) < _LENGTH.size + size:
        await _ready(into, write=False)  # the answer takes a while: wait before reading
        try:
            chunk = os.read(into, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            raise EOFError("the SQLite writer closed its output")
        received += chunk
        if size is None and len(received) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(received)
    return pickle.loads(received[_LENGTH.size :])  # noqa: S301 - written by our own child


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
        self._busy = False  # one batch at a time: the frames on the pipes have no ids

    async def check(self) -> None:
        """Open (create, migrate) the database now, so a wrong path fails at start-up, and start
        the writer process, so the first hits do not wait for an interpreter to start."""
        await SQLiteBackend(self.path).check()
        await asyncio.to_thread(self._start)

    async def write_batch(self, hits: Sequence[Record]) -> None:
        """Send ``hits`` to the child and wait for its answer, on the caller's event loop.

        No thread in between: each hand-over between threads costs the server's own thread a
        wake-up and a turn at the interpreter lock, and a round trip through a worker thread took
        a dozen of them per batch. Here a batch is one ``write`` into a pipe large enough to hold
        it, and one wake-up when the answer is readable.
        """
        # Hits go as plain tuples (cheaper to pickle); receipts, rare, as themselves.
        frame = _frame([r if isinstance(r, Receipt) else tuple(r) for r in hits])
        if self._busy:
            raise StoreDown("the SQLite writer is still busy with the previous batch")
        self._busy = True
        try:
            child = self._child
            if child is None or child.poll() is not None:
                child = await asyncio.to_thread(self._start)  # fork and exec: not on the loop
            try:
                status, detail = await asyncio.wait_for(
                    _exchange(child, frame), timeout=ANSWER_TIMEOUT
                )
            except (OSError, EOFError, pickle.UnpicklingError, struct.error, TimeoutError) as exc:
                await asyncio.to_thread(self._stop, child)
                raise StoreDown(f"the SQLite writer process failed: {exc!r}") from exc
            except asyncio.CancelledError:
                # Its answer may still come and would be taken for the next batch's: replace it.
                child.kill()
                self._stop(child)
                raise
        finally:
            self._busy = False
        if status == "refused":
            raise StoreRefused(detail)
        if status != "ok":
            raise StoreDown(detail)

    def _start(self) -> subprocess.Popen[bytes]:
        with self._lock:
            return self._running()

    def _running(self) -> subprocess.Popen[bytes]:
        child = self._child
        if child is None or child.poll() is not None:
            child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", __name__, self.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
            assert child.stdin is not None and child.stdout is not None
            os.set_blocking(child.stdin.fileno(), False)
            os.set_blocking(child.stdout.fileno(), False)
            _widen(child.stdin.fileno())
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
