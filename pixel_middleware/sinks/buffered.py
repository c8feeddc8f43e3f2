"""Writing hits off the request path: a memory queue, a writer thread, retries, and a disk spool.

``write`` only appends to a queue, so a request never waits on a database or on Mapp. A writer
thread with its own event loop takes batches and hands them to a backend; a failed batch is kept
and retried with backoff, so a database restart or an outage of the relay target loses nothing.
When the queue is full, or hits are still unsent when the sink closes, they go to spool files on
disk and are sent first the next time the writer runs.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import anyio.to_thread

from .base import Hit

logger = logging.getLogger("pixel_middleware.sinks")


class Backend(Protocol):
    """One destination, written by the writer thread. ``write_batch`` must be all-or-nothing."""

    name: str

    async def write_batch(self, hits: Sequence[Hit]) -> None: ...

    async def reset(self) -> None:
        """Forget connections after a failure, so the next try starts afresh."""

    async def close(self) -> None: ...


class Spool:
    """Hits waiting on disk, one JSON object per line, oldest file first."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("spool-*.jsonl"))

    def add(self, hits: Sequence[Hit]) -> Path:
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"spool-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
            tmp = self.folder / (name + ".tmp")
            tmp.write_text("".join(h.to_json() + "\n" for h in hits), encoding="utf-8")
            # Rename last: a file that exists under its final name is always complete.
            return tmp.replace(self.folder / name)

    @staticmethod
    def read(path: Path) -> list[Hit]:
        return [
            Hit.from_dict(json.loads(line))
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]


class BufferedSink:
    """A sink that queues hits and writes them to ``backend`` from a background thread.

    ``batch_size`` bounds a batch; ``max_queue`` bounds memory (beyond it, hits go to the spool);
    ``close_timeout`` bounds how long shutdown waits before spooling what is left.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        spool_dir: str | os.PathLike[str],
        batch_size: int = 1_000,
        max_queue: int = 100_000,
        flush_interval: float = 0.05,
        max_backoff: float = 5.0,
        close_timeout: float = 10.0,
    ) -> None:
        self.backend = backend
        self.spool = Spool(spool_dir)
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self._queue: collections.deque[Hit] = collections.deque()
        self._in_flight = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.failures = 0  # batches that failed and were retried; for tests and monitoring

    def __repr__(self) -> str:
        return f"<BufferedSink {self.backend.name}>"

    # ------------------------------------------------------------- request side

    async def write(self, hits: Sequence[Hit]) -> None:
        if not hits:
            return
        with self._cond:
            # A closed sink opens again: a test client or server may run several lifespans.
            self._closing = False
            self._start()
            room = self.max_queue - len(self._queue)
            accepted, overflow = hits[: max(room, 0)], hits[max(room, 0) :]
            self._queue.extend(accepted)
            self._cond.notify()
        if overflow:
            # Rare (the backend is down and the queue is full): the disk keeps them.
            await anyio.to_thread.run_sync(self.spool.add, list(overflow))

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self.close_blocking)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued hit is written; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._queue or self.spool.files():
                self._start()
            while self._queue or self._in_flight or self.spool.files():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close_blocking(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(self.close_timeout + 5)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
        if left:
            path = self.spool.add(left)
            logger.warning("%s: %d unsent hit(s) kept in %s", self.backend.name, len(left), path)

    # ------------------------------------------------------------- writer side

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name=f"pixel-{self.backend.name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            # The next write starts a new writer; the queue and the spool keep the hits.
            logger.exception("%s: writer stopped", self.backend.name)

    async def _main(self) -> None:
        deadline: float | None = None
        try:
            while True:
                if self._closing and deadline is None:
                    deadline = time.monotonic() + self.close_timeout
                if deadline is not None and time.monotonic() > deadline:
                    return
                if not await self._drain_spool(deadline):
                    return
                batch = self._take()
                if batch is None:
                    return
                if batch and not await self._write_with_retry(batch, deadline):
                    with self._cond:
                        self._queue.extendleft(reversed(batch))
                    return
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()
            await self.backend.close()

    async def _drain_spool(self, deadline: float | None) -> bool:
        """Write the spool files, oldest first; False if the deadline passed first."""
        for path in self.spool.files():
            try:
                hits = Spool.read(path)
            except FileNotFoundError:
                continue  # another process sharing the spool took it
            except (ValueError, TypeError, KeyError):
                # Not ours to fix, not ours to drop: set it aside where a person will see it.
                bad = path.with_name("bad-" + path.name)
                path.replace(bad)
                logger.error("%s: unreadable spool file moved to %s", self.backend.name, bad)
                continue
            if not await self._write_with_retry(hits, deadline):
                return False
            path.unlink(missing_ok=True)
        return True

    def _take(self) -> list[Hit] | None:
        """The next batch; [] after a quiet interval; None when closing with nothing left."""
        with self._cond:
            if not self._queue:
                if self._closing:
                    return None
                self._cond.wait(self.flush_interval)
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            self._in_flight = len(batch)
            return batch

    async def _write_with_retry(self, batch: list[Hit], deadline: float | None) -> bool:
        backoff = 0.05
        while True:
            try:
                await self.backend.write_batch(batch)
                return True
            except Exception as exc:
                self.failures += 1
                logger.warning(
                    "%s: writing %d hit(s) failed (%s); retrying",
                    self.backend.name,
                    len(batch),
                    exc,
                )
                try:
                    await self.backend.reset()
                except Exception:
                    logger.debug("reset after failure failed", exc_info=True)
            if self._closing and deadline is None:
                deadline = time.monotonic() + self.close_timeout
            if deadline is not None and time.monotonic() + backoff > deadline:
                return False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
