"""Writing hits off the request path, without losing one that was acknowledged.

``write`` only appends to a memory queue and returns, so a request never waits on a database or
on Mapp. A writer thread with its own event loop takes the queue in batches (a batch lingers a
moment to fill, so a busy site writes hundreds of hits per transaction) and hands them to a
backend. The promises, and how they are kept:

- **An acknowledged hit survives a crash.** A hit is in memory for at most ``linger`` plus
  ``patience`` (by default well under a second): if the backend has not confirmed a batch by
  then, the batch is written to the spool on disk while the backend goes on trying, and while a
  backend is down or slow every new batch goes straight to the spool. Spool files are replayed,
  oldest first, once the backend answers again; stores ignore a hit they already hold
  (``hit_id``), so a replay never doubles a row.
- **One bad hit never blocks the rest.** A batch the backend refuses for what it holds (not for
  an outage) is split in halves until the hits it cannot store are found; those go to
  ``dead/`` beside the spool with the reason, logged at ERROR, and the rest are stored.
- **No silent loss.** If neither the backend nor the spool can take hits, ``write`` raises
  :class:`SinkUnavailable` (the collector answers 503 and clients retry) and the hits it already
  holds stay in memory; anything still unsaved at shutdown is logged at ERROR with its count.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
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

# What one queued hit costs besides its query string (the Hit object, ids, strings).
_HIT_OVERHEAD = 400


class SinkUnavailable(Exception):
    """Neither the backend nor the disk spool can take hits now: the client should retry."""


class Backend(Protocol):
    """One destination, written by the writer thread. ``write_batch`` must be all-or-nothing.

    Blocking work belongs in a thread (``asyncio.to_thread``), so that the writer can spool what
    it holds while a backend is slow. A backend may define ``permanent(exc) -> bool`` to say that
    a failure is caused by the hits themselves (they are split out), not by an outage (retried).
    """

    name: str

    async def write_batch(self, hits: Sequence[Hit]) -> None: ...

    async def reset(self) -> None:
        """Forget connections after a failure, so the next try starts afresh."""

    async def close(self) -> None: ...


def _permanent(backend: Backend, exc: BaseException) -> bool:
    check = getattr(backend, "permanent", None)
    if check is not None:
        return bool(check(exc))
    return isinstance(exc, ValueError | TypeError)


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

    def dead_letter(self, hits: Sequence[Hit], reason: str) -> Path:
        """Keep hits no backend can store, with the reason, where a person will look."""
        folder = self.folder / "dead"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"dead-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
        lines = [json.dumps({"reason": reason, "hit": h.to_dict()}, sort_keys=True) for h in hits]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return tmp.replace(path)

    def check_writable(self) -> None:
        """Raise ``OSError`` unless a spool file can be written here now."""
        self.folder.mkdir(parents=True, exist_ok=True)
        probe = self.folder / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"x")
        probe.unlink()

    @staticmethod
    def read(path: Path) -> list[Hit]:
        return [
            Hit.from_dict(json.loads(line))
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]


class BufferedSink:
    """A sink that queues hits and writes them to ``backend`` from a background thread.

    ``batch_size`` bounds a batch; ``max_queue`` and ``max_queue_bytes`` bound memory (beyond
    them hits go to the spool at once); ``linger`` is how long a batch waits to fill;
    ``patience`` how long the backend may take before the batch is spooled anyway;
    ``close_timeout`` bounds shutdown.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        spool_dir: str | os.PathLike[str],
        batch_size: int = 1_000,
        max_queue: int = 100_000,
        max_queue_bytes: int = 64 * 1024 * 1024,
        linger: float = 0.02,
        patience: float = 0.25,
        max_backoff: float = 5.0,
        close_timeout: float = 10.0,
        scan_interval: float = 5.0,
    ) -> None:
        self.backend = backend
        self.spool = Spool(spool_dir)
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.linger = linger
        self.patience = patience
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self.scan_interval = scan_interval
        self._queue: collections.deque[Hit] = collections.deque()
        self._queue_bytes = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._deadline: float | None = None
        # Writer-side state (touched by the writer thread only, read by ``flush``).
        self._in_hand = 0
        self._pending: tuple[asyncio.Future[None], Path | None] | None = None
        self._stuck: list[Hit] = []
        self._refusing = False
        self._down_until = 0.0
        self._backoff = 0.05
        self._spool_pending = True  # a previous run may have left files
        self._next_scan = 0.0
        self.failures = 0  # failed backend writes; for tests and monitoring
        self.dead = 0  # hits set aside as unstorable

    def __repr__(self) -> str:
        return f"<BufferedSink {self.backend.name}>"

    # ------------------------------------------------------------- request side

    async def start(self) -> None:
        """Check at start-up that the spool can be written; raise with the reason if not."""
        try:
            await anyio.to_thread.run_sync(self.spool.check_writable)
        except OSError as exc:
            raise RuntimeError(
                f"{self.backend.name}: the spool folder {self.spool.folder} cannot be written "
                f"({exc}); pixel_middleware would have nowhere to keep hits during an outage"
            ) from exc
        check = getattr(self.backend, "check", None)
        if check is not None:
            await check()

    async def write(self, hits: Sequence[Hit]) -> None:
        if not hits:
            return
        if self._refusing:
            raise SinkUnavailable(f"{self.backend.name}: neither the store nor the spool works")
        size = sum(len(h.query) + _HIT_OVERHEAD for h in hits)
        with self._lock:
            if self._closing:  # a server may run several lifespans: open again
                self._closing, self._deadline = False, None
            self._ensure_writer()
            fits = (
                len(self._queue) + len(hits) <= self.max_queue
                and self._queue_bytes + size <= self.max_queue_bytes
            )
            if fits:
                was_empty = not self._queue
                self._queue.extend(hits)
                self._queue_bytes += size
                wake = was_empty or len(self._queue) >= self.batch_size
        if fits:
            if wake:
                self._signal()
            return
        # The backend is behind and memory is full: the disk keeps these, or the client retries.
        try:
            await anyio.to_thread.run_sync(self.spool.add, list(hits))
        except OSError as exc:
            logger.error("%s: cannot spool %d hit(s): %s", self.backend.name, len(hits), exc)
            raise SinkUnavailable(str(exc)) from exc
        self._spool_pending = True
        self._signal()

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self.close_blocking)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every hit is written to the backend; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._ensure_writer()
        self._spool_pending = True
        self._down_until = 0.0
        self._signal()
        while self._queue or self._in_hand or self._pending or self._stuck or self.spool.files():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close_blocking(self) -> None:
        """Write or spool everything held, within ``close_timeout``; report what could not be."""
        with self._lock:
            self._closing = True
            self._deadline = time.monotonic() + self.close_timeout
            thread = self._thread
        self._signal()
        if thread is not None:
            thread.join(self.close_timeout + 2)
        with self._lock:
            left = list(self._queue) + list(self._stuck)
            self._queue.clear()
            self._queue_bytes = 0
            self._stuck = []
        if not left:
            return
        try:
            path = self.spool.add(left)
        except OSError as exc:
            logger.error(
                "%s: %d acknowledged hit(s) LOST at shutdown: cannot spool them (%s)",
                self.backend.name,
                len(left),
                exc,
            )
            return
        logger.warning("%s: %d unsent hit(s) kept in %s", self.backend.name, len(left), path)

    def _ensure_writer(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._loop = None
            self._thread = threading.Thread(
                target=self._run, name=f"pixel-{self.backend.name}", daemon=True
            )
            self._thread.start()

    def _signal(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            # RuntimeError: the writer is stopping; the next write starts another.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------- writer side

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            # The next write starts a new writer; the queue and the spool keep the hits.
            logger.exception("%s: writer stopped", self.backend.name)

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        try:
            while True:
                await self._settle_pending()
                await self._take_queue()
                await self._retry_stuck()
                await self._drain_spool()
                if self._closing and self._finished():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._idle())
                self._wake.clear()
        finally:
            if self._pending is not None:
                self._pending[0].cancel()  # its batch is on disk already
                self._pending = None
            try:
                await self.backend.close()
            except Exception:
                logger.debug("closing %s failed", self.backend.name, exc_info=True)

    def _finished(self) -> bool:
        if self._deadline is not None and time.monotonic() > self._deadline:
            return True
        if self._queue or self._pending is not None:
            return False
        # A graceful shutdown empties the spool into a working store (within close_timeout):
        # what a slow first write parked on disk is not left behind until the next start.
        return not self._spool_pending or self._down()

    def _idle(self) -> float:
        if self._pending is not None or self._closing:
            return 0.05
        if self._spool_pending:
            return max(0.05, min(self.scan_interval, self._down_until - time.monotonic()))
        return self.scan_interval

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _take(self) -> list[Hit]:
        with self._lock:
            count = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            self._queue_bytes -= sum(len(h.query) + _HIT_OVERHEAD for h in batch)
            self._in_hand = count
            return batch

    async def _take_queue(self) -> None:
        if self._queue and len(self._queue) < self.batch_size and not self._closing:
            await asyncio.sleep(self.linger)  # let the batch fill
        while self._queue:
            batch = self._take()
            try:
                await self._deliver(batch)
            finally:
                self._in_hand = 0

    async def _deliver(self, batch: list[Hit]) -> None:
        if self._pending is not None or self._down() or self._past_deadline():
            self._to_spool(batch)
            return
        outcome = await self._attempt(batch, None)
        if outcome == "down":
            self._to_spool(batch)
        elif isinstance(outcome, BaseException):
            await self._split(batch, outcome)

    async def _attempt(self, hits: list[Hit], path: Path | None) -> str | BaseException:
        """Write ``hits``: "ok", "down", "pending" (spooled, still trying), or the hits' error."""
        task = asyncio.ensure_future(self.backend.write_batch(hits))
        done, _ = await asyncio.wait({task}, timeout=self.patience)
        if not done:
            # Slow or hanging: make the batch durable now and let the backend finish.
            if path is None:
                path = self._to_spool(hits)
            self._pending = (task, path)
            return "pending"
        exc = task.exception()
        if exc is None:
            self._up()
            return "ok"
        if _permanent(self.backend, exc):
            return exc
        await self._went_down(exc)
        return "down"

    async def _settle_pending(self) -> None:
        if self._pending is None:
            return
        task, path = self._pending
        if not task.done():
            if self._past_deadline():
                task.cancel()  # its batch is on disk already
                self._pending = None
            return
        self._pending = None
        exc = task.exception()
        if exc is None:
            self._up()
            if path is not None:
                path.unlink(missing_ok=True)  # stored: the disk copy goes
        else:
            await self._went_down(exc)  # the spool copy is replayed (and split if need be)

    async def _split(self, hits: list[Hit], error: BaseException) -> None:
        """Store what can be stored of a refused batch; set aside the hits that cannot."""
        if len(hits) == 1:
            self._dead_letter(hits, error)
            return
        middle = len(hits) // 2
        for part in (hits[:middle], hits[middle:]):
            if self._pending is not None or self._down():
                self._to_spool(part)
                continue
            outcome = await self._attempt(part, None)
            if outcome == "down":
                self._to_spool(part)
            elif isinstance(outcome, BaseException):
                await self._split(part, outcome)

    def _dead_letter(self, hits: list[Hit], error: BaseException) -> None:
        reason = f"{type(error).__name__}: {error}"
        self.dead += len(hits)
        try:
            path = self.spool.dead_letter(hits, reason)
        except OSError as exc:
            logger.error(
                "%s: %d hit(s) cannot be stored (%s) and not kept either (%s): LOST",
                self.backend.name,
                len(hits),
                reason,
                exc,
            )
            return
        logger.error(
            "%s: %d hit(s) cannot be stored (%s); kept in %s",
            self.backend.name,
            len(hits),
            reason,
            path,
        )

    def _to_spool(self, hits: list[Hit]) -> Path | None:
        try:
            path = self.spool.add(hits)
        except OSError as exc:
            if not self._refusing:
                logger.error(
                    "%s: cannot spool %d hit(s) (%s); holding them in memory and refusing "
                    "new hits until the store or the spool works again",
                    self.backend.name,
                    len(hits),
                    exc,
                )
            self._stuck.extend(hits)
            self._refusing = True
            return None
        self._spool_pending = True
        return path

    async def _retry_stuck(self) -> None:
        if not self._stuck or self._pending is not None:
            return
        hits, self._stuck = self._stuck, []
        outcome = "down" if self._down() else await self._attempt(hits, None)
        if outcome == "down":
            self._to_spool(hits)
        elif isinstance(outcome, BaseException):
            await self._split(hits, outcome)
        if not self._stuck:
            self._refusing = False

    async def _drain_spool(self) -> None:
        """Replay spool files, oldest first, while the backend answers."""
        now = time.monotonic()
        if self._pending is not None or self._down() or self._past_deadline():
            return
        if not self._spool_pending and now < self._next_scan:
            return
        self._next_scan = now + self.scan_interval
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
            outcome = await self._attempt(hits, path)
            if outcome in ("down", "pending"):
                return
            if isinstance(outcome, BaseException):
                await self._split(hits, outcome)
            path.unlink(missing_ok=True)
            if self._queue:
                return  # new hits first; the rest of the spool on the next round
        self._spool_pending = False

    def _down(self) -> bool:
        return time.monotonic() < self._down_until

    def _up(self) -> None:
        if self._down_until:
            logger.info("%s: writing again", self.backend.name)
        self._down_until = 0.0
        self._backoff = 0.05

    async def _went_down(self, exc: BaseException) -> None:
        self.failures += 1
        if not self._down_until:
            logger.warning(
                "%s: write failed (%s); hits are kept in %s until it works again",
                self.backend.name,
                exc,
                self.spool.folder,
            )
        self._down_until = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.max_backoff)
        try:
            await self.backend.reset()
        except Exception:
            logger.debug("reset after failure failed", exc_info=True)
