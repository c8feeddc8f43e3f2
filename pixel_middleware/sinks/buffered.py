"""Writing hits off the request path, without losing one that was acknowledged.

Consent receipts (:class:`~pixel_middleware.receipts.Receipt`) travel the same way, in the same
queue and spool files (a spool line's ``kind`` says which it is): every promise below holds for
them too.

``write`` only appends to a memory queue and returns, so a request never waits on a database or
on Mapp. A writer takes the queue in batches (a batch lingers a moment to fill, so a busy site
writes hundreds of hits per transaction) and hands them to a backend. Under a server (``start``
called from its lifespan) the writer is a task on the server's own event loop: a writer thread
would have to win the interpreter lock from the server's thread for every step of every batch,
and a busy server's thread keeps winning it, so batches fell behind and the server lost a third
of its hit rate to the hand-overs. Without ``start`` (a script, a test, a server without
lifespan) the writer is a thread with its own event loop. The promises, and how they are kept:

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
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import anyio.to_thread

from ..receipts import Receipt
from .base import Hit, Record

logger = logging.getLogger("pixel_middleware.sinks")

# Writes this close together share one timestamp (see ``_put``).
_STAMP_SHARED = 0.002
# What one queued hit costs besides its query string (the Hit object, ids, strings).
_HIT_OVERHEAD = 400


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _cost(record: Record) -> int:
    """The memory one queued record is counted at."""
    return len(record.query) + _HIT_OVERHEAD if isinstance(record, Hit) else _HIT_OVERHEAD


class SinkUnavailable(Exception):
    """Neither the backend nor the disk spool can take hits now: the client should retry."""


class Backend(Protocol):
    """One destination, written by the writer thread. ``write_batch`` must be all-or-nothing.

    Blocking work belongs in a thread (``asyncio.to_thread``), so that the writer can spool what
    it holds while a backend is slow. A backend may define ``permanent(exc) -> bool`` to say that
    a failure is caused by the hits themselves (they are split out), not by an outage (retried).
    """

    name: str

    async def write_batch(self, hits: Sequence[Hit]) -> None:
        """Store ``hits`` all at once, or raise.

        A backend that also stores consent receipts says so with ``keeps_receipts = True``; it
        then gets them in its batches too. Any other backend only ever sees hits.
        """

    async def reset(self) -> None:
        """Forget connections after a failure, so the next try starts afresh."""

    async def close(self) -> None: ...


def _permanent(backend: Backend, exc: BaseException) -> bool:
    check = getattr(backend, "permanent", None)
    if check is not None:
        return bool(check(exc))
    return isinstance(exc, ValueError | TypeError)


@dataclass
class _Pending:
    """A batch the backend is still working on after ``patience``."""

    task: asyncio.Future[None]
    hits: list[Record]
    # Its copy in the spool; None when the spool could not take it (the hits are then held in
    # ``_stuck`` until the backend confirms them).
    path: Path | None


class _Waiter:
    """A ``write_durably`` call waiting for hits ``start`` to ``end`` (queue order) to be saved."""

    __slots__ = ("done", "end", "saved", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end
        self.saved = True  # until one of its hits ends up held in memory only
        self.done = threading.Event()


class Spool:
    """Hits (and receipts) waiting on disk, one JSON object per line, oldest file first."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("spool-*.jsonl"))

    def add(self, hits: Sequence[Record]) -> Path:
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"spool-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
            tmp = self.folder / (name + ".tmp")
            try:
                tmp.write_text("".join(h.to_json() + "\n" for h in hits), encoding="utf-8")
                # Rename last: a file that exists under its final name is always complete.
                return tmp.replace(self.folder / name)
            except OSError:
                # A full disk leaves a partial file: remove it so it frees what it took.
                tmp.unlink(missing_ok=True)
                raise

    def dead_letter(self, hits: Sequence[Record], reason: str) -> Path:
        """Keep hits no backend can store, with the reason, where a person will look."""
        folder = self.folder / "dead"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"dead-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
        lines = [
            json.dumps(
                {"reason": reason, ("hit" if isinstance(h, Hit) else "receipt"): h.to_dict()},
                sort_keys=True,
            )
            for h in hits
        ]
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            return tmp.replace(path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def check_writable(self) -> None:
        """Raise ``OSError`` unless a spool file can be written here now."""
        self.folder.mkdir(parents=True, exist_ok=True)
        probe = self.folder / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"x")
        probe.unlink()

    @staticmethod
    def read(path: Path) -> list[Record]:
        """The records of a spool file: a line with ``"kind": "receipt"`` is a receipt."""
        records: list[Record] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            data = json.loads(line)
            if data.get("kind") == "receipt":
                records.append(Receipt.from_dict(data))
            else:
                records.append(Hit.from_dict(data))
        return records


class BufferedSink:
    """A sink that queues hits and writes them to ``backend`` from a background thread.

    ``batch_size`` bounds a batch; ``max_queue`` and ``max_queue_bytes`` bound memory (beyond
    them hits go to the spool at once); ``linger`` is how long a batch waits to fill;
    ``patience`` how long the backend may take before the batch is spooled anyway;
    ``close_timeout`` bounds shutdown.
    """

    @property
    def keeps_receipts(self) -> bool:
        """Consent receipts go through the same queue and spool, for a backend that keeps them
        (the stores); any other backend never sees one (see :meth:`write_receipts`)."""
        return bool(getattr(self.backend, "keeps_receipts", False))

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
        self._queue: collections.deque[Record] = collections.deque()
        self._waiting = False  # the writer is waiting for a wake-up (see _main)
        self._queue_bytes = 0
        # [time queued, hits of that write still queued], oldest first: how long the oldest
        # queued hit has been waiting, without a timestamp per hit.
        self._stamps: collections.deque[list[float]] = collections.deque()
        # Hits ever queued, and ever taken and dealt with, in queue order: how ``write_durably``
        # learns that its hits are stored or on disk.
        self._queued_count = 0
        self._settled_count = 0
        self._waiters: list[_Waiter] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # The writer as a task on the server's loop (``start``), and that loop.
        self._task: asyncio.Task[None] | None = None
        self._home: asyncio.AbstractEventLoop | None = None
        self._task_stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._flushing = 0  # flush calls under way: batches do not linger for them
        self._deadline: float | None = None
        # Writer-side state (touched by the writer thread only, read by ``flush``).
        self._in_hand = 0
        self._pending: _Pending | None = None
        self._stuck: list[Record] = []
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
        # The writer runs on this (the server's) loop from now on, started here: a previous run
        # may have left hits on disk (a crash, an outage at shutdown) to send now.
        self._home = asyncio.get_running_loop()
        with self._lock:
            self._ensure_writer()

    async def write(self, hits: Sequence[Hit]) -> None:
        """Queue ``hits`` and return: they are stored or on disk within ``linger`` plus
        ``patience`` (a fraction of a second), or, failing that, the sink refuses new hits."""
        await self._put(hits, durable=False)

    async def write_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Queue consent ``receipts`` exactly as :meth:`write` queues hits: same batches, same
        spool, same refusal (:class:`SinkUnavailable`) when neither store nor spool works."""
        await self._put(receipts, durable=False)

    async def write_durably(self, hits: Sequence[Hit]) -> None:
        """Return only once ``hits`` are stored or in the spool on disk.

        For senders that delete their copy when answered (a relay, a server library's batch):
        a crash right after the answer must not lose what they handed over. Raises
        :class:`SinkUnavailable` if the hits could only be held in memory.
        """
        if not hits:
            return
        waiter = await self._put(hits, durable=True)
        if waiter is None:
            return  # spooled on the way in
        if not await anyio.to_thread.run_sync(waiter.done.wait, self.close_timeout):
            raise SinkUnavailable(f"{self.backend.name}: hits not saved in time")
        if not waiter.saved:
            raise SinkUnavailable(f"{self.backend.name}: hits are held in memory only")

    async def _put(self, hits: Sequence[Record], *, durable: bool) -> _Waiter | None:
        """Queue ``hits`` (or spool them if memory is full); a waiter for them if ``durable``
        and they were queued."""
        if not hits:
            return None
        queued, waiter = self._enqueue(hits, durable)
        if queued:
            return waiter
        # The backend is behind and memory is full: the disk keeps these, or the client retries.
        try:
            await anyio.to_thread.run_sync(self.spool.add, list(hits))
        except OSError as exc:
            logger.error("%s: cannot spool %d hit(s): %s", self.backend.name, len(hits), exc)
            raise SinkUnavailable(str(exc)) from exc
        self._spool_pending = True
        self._signal()
        return None

    def _enqueue(self, hits: Sequence[Record], durable: bool) -> tuple[bool, _Waiter | None]:
        """Append ``hits`` to the memory queue if it has room: (queued, waiter if durable).

        Plain, not a coroutine: this runs for every hit, on the request path.
        """
        waiter = None
        count = len(hits)
        size = _cost(hits[0]) if count == 1 else sum(map(_cost, hits))
        with self._lock:
            if self._closing:  # a server may run several lifespans: open again
                self._closing, self._deadline = False, None
            # Before refusing: a writer that stopped would never end the refusal.
            self._ensure_writer()
            if self._refusing:
                raise SinkUnavailable(
                    f"{self.backend.name}: neither the store nor the spool can take hits"
                )
            queue = self._queue
            before = len(queue)
            if before + count > self.max_queue or self._queue_bytes + size > self.max_queue_bytes:
                return False, None
            queue.extend(hits)
            self._queue_bytes += size
            now = time.monotonic()
            stamps = self._stamps
            if stamps and now - stamps[-1][0] < _STAMP_SHARED:
                # Counted with the write just before: as old as that one, a little older than
                # they are, which only ever spools them a moment early.
                stamps[-1][1] += count
            else:
                stamps.append([now, count])
            start = self._queued_count
            self._queued_count += count
            if durable:
                waiter = _Waiter(start, self._queued_count)
                self._waiters.append(waiter)
            # A durable write wakes the writer at once: it is waiting for the answer. Once when
            # a batch is full, not on every write after: each wake-up of a writer thread is a
            # syscall and a thread switch that the request path pays for.
            wake = (
                (not before and self._waiting)
                or before < self.batch_size <= before + count
                or waiter is not None
            )
        if wake:
            self._signal()
        return True, waiter

    async def close(self) -> None:
        task = self._task
        if task is not None and not task.done() and task.get_loop() is _running_loop():
            # The writer is a task on this loop: it finishes here, then what is left is kept.
            self._begin_closing()
            try:
                await asyncio.wait_for(asyncio.shield(task), self.close_timeout + 2)
            except TimeoutError:
                self._report_unfinished()
        await anyio.to_thread.run_sync(self.close_blocking)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every hit is written to the backend; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._ensure_writer()
            self._flushing += 1
        try:
            self._spool_pending = True
            self._down_until = 0.0
            self._signal()
            pause = 0.001  # a flush usually ends within milliseconds: look often, then less
            while (
                self._queue or self._in_hand or self._pending or self._stuck or self.spool.files()
            ):
                if time.monotonic() > deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
            return True
        finally:
            with self._lock:
                self._flushing -= 1

    def close_blocking(self) -> None:
        """Write or spool everything held, within ``close_timeout``; report what could not be."""
        thread, task = self._begin_closing()
        if thread is not None:
            thread.join(self.close_timeout + 2)
            if thread.is_alive():
                self._report_unfinished()
        elif self._task_elsewhere(task) and not self._task_stopped.wait(self.close_timeout + 2):
            self._report_unfinished()
        with self._lock:
            left = list(self._queue) + list(self._stuck)
            self._queue.clear()
            self._queue_bytes = 0
            self._stamps.clear()
            self._stuck = []
            waiters, self._waiters = self._waiters, []
            self._settled_count = self._queued_count
        saved = True
        if left:
            try:
                path = self.spool.add(left)
            except OSError as exc:
                saved = False
                logger.error(
                    "%s: %d acknowledged hit(s) LOST at shutdown: cannot spool them (%s)",
                    self.backend.name,
                    len(left),
                    exc,
                )
            else:
                logger.warning(
                    "%s: %d unsent hit(s) kept in %s", self.backend.name, len(left), path
                )
        for waiter in waiters:
            waiter.saved = waiter.saved and saved
            waiter.done.set()

    @staticmethod
    def _task_elsewhere(task: asyncio.Task[None] | None) -> bool:
        """Whether ``task`` still runs on a loop other than this thread's: one to wait for
        (never wait for a task of one's own loop: it could not run meanwhile)."""
        if task is None or task.done():
            return False
        loop = task.get_loop()
        return loop.is_running() and loop is not _running_loop()

    def _begin_closing(self) -> tuple[threading.Thread | None, asyncio.Task[None] | None]:
        with self._lock:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + self.close_timeout
            thread, task = self._thread, self._task
        self._signal()
        return thread, task

    def _report_unfinished(self) -> None:
        if self._in_hand:
            logger.error(
                "%s: the writer did not stop in time; %d hit(s) it was writing may be LOST",
                self.backend.name,
                self._in_hand,
            )

    def _writer_alive(self) -> bool:
        task = self._task
        if task is not None and not task.done() and task.get_loop().is_running():
            return True
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _ensure_writer(self) -> None:
        """Start the writer if none runs: a task on the server's loop when called on that loop
        (after ``start``), else a thread. Called with ``_lock`` held."""
        if self._writer_alive():
            return
        self._loop = None
        self._thread = None
        home = self._home
        if home is not None and home is _running_loop():
            stopped = self._task_stopped = threading.Event()
            task = self._task = home.create_task(self._main())
            task.add_done_callback(lambda done: self._writer_ended(done, stopped))
            return
        self._task = None
        self._thread = threading.Thread(
            target=self._run, name=f"pixel-{self.backend.name}", daemon=True
        )
        self._thread.start()

    def _signal(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        if loop is _running_loop():
            wake.set()  # the writer shares this loop: no wake-up through its self-pipe
            return
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

    def _writer_ended(self, task: asyncio.Task[None], stopped: threading.Event) -> None:
        """A writer task ended: say why if it failed; if its loop went away without the
        lifespan's shutdown (hits or spool files still waiting), a thread carries on."""
        stopped.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s: writer stopped", self.backend.name, exc_info=task.exception())
        with self._lock:
            if self._task is not task or self._closing:
                return
            self._task = None
            if self._queue or self._stuck or self._spool_pending:
                self._home = None  # that loop is gone: from now on, a thread
                self._ensure_writer()

    def _still_the_writer(self) -> bool:
        """False once another writer took over (this one's loop stopped for a while)."""
        if self._task is not None:
            return self._task is asyncio.current_task()
        return self._thread is threading.current_thread()

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        try:
            while self._still_the_writer():
                # Cleared before the work, not after the wait: a write signalled while this
                # round runs is then seen by the next wait instead of being wiped out.
                self._wake.clear()
                await self._settle_pending()
                await self._take_queue()
                await self._retry_stuck()
                await self._drain_spool()
                if self._closing and self._finished():
                    return
                # Raised before the queue is looked at again (in _idle): a write either finds
                # the writer waiting and wakes it, or is seen by _idle and not waited for.
                # Writes while the writer works need no wake-up (a syscall and a thread switch
                # each): it takes the queue when it is done.
                self._waiting = True
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self._idle())
                finally:
                    self._waiting = False
        finally:
            if self._pending is not None:
                # Its hits are on disk already, or held in ``_stuck`` for the shutdown to keep.
                self._pending.task.cancel()
                self._pending = None
            try:
                await self.backend.close()
            except Exception:
                logger.debug("closing %s failed", self.backend.name, exc_info=True)

    def _should_linger(self) -> bool:
        """Whether the next batch may wait ``linger`` to fill: not when it is full, not when
        someone waits for it (a durable write, a flush, the shutdown)."""
        return (
            len(self._queue) < self.batch_size
            and not self._closing
            and not self._waiters
            and not self._flushing
        )

    def _wake_event(self) -> asyncio.Event:
        assert self._wake is not None  # made when the writer starts
        return self._wake

    def _finished(self) -> bool:
        if self._deadline is not None and time.monotonic() > self._deadline:
            return True
        if self._queue or self._pending is not None:
            return False
        # A graceful shutdown empties the spool into a working store (within close_timeout):
        # what a slow first write parked on disk is not left behind until the next start.
        return not self._spool_pending or self._down()

    def _idle(self) -> float:
        if self._queue:
            return 0.0
        if self._pending is not None or self._closing:
            return 0.05
        if self._spool_pending or self._stuck:
            return max(0.05, min(self.scan_interval, self._down_until - time.monotonic()))
        return self.scan_interval

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _take(self) -> list[Record]:
        with self._lock:
            count = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            self._queue_bytes -= sum(_cost(h) for h in batch)
            left = count
            while left and self._stamps:
                stamp = self._stamps[0]
                if stamp[1] <= left:
                    left -= int(stamp[1])
                    self._stamps.popleft()
                else:
                    stamp[1] -= left
                    left = 0
            self._in_hand = count
            return batch

    def _requeue(self, batch: list[Record]) -> None:
        """Put a batch the writer held back at the front of the queue, as due at once."""
        with self._lock:
            self._queue.extendleft(reversed(batch))
            self._queue_bytes += sum(map(_cost, batch))
            self._stamps.appendleft([time.monotonic() - self.patience, len(batch)])

    def _settled(self, batch: list[Record], dealt_with: bool) -> None:
        """The queue's next ``len(batch)`` hits are dealt with: wake the writes waiting on them.

        Saved, unless one of them is held in ``_stuck`` (neither stored nor spooled), or the
        writer failed on the batch.
        """
        held = {id(h) for h in self._stuck} if self._stuck else set()
        lost = not dealt_with or (any(id(h) in held for h in batch) if held else False)
        with self._lock:
            start = self._settled_count
            self._settled_count += len(batch)
            if not self._waiters:
                return
            waiting = []
            for waiter in self._waiters:
                if lost and waiter.start < self._settled_count and waiter.end > start:
                    waiter.saved = False
                if waiter.end <= self._settled_count:
                    waiter.done.set()
                else:
                    waiting.append(waiter)
            self._waiters = waiting

    def _overdue(self) -> bool:
        """Whether the oldest queued hit has waited in memory longer than ``patience``."""
        with self._lock:
            oldest = self._stamps[0][0] if self._stamps else None
        return oldest is not None and time.monotonic() - oldest > self.patience

    async def _take_queue(self) -> None:
        while self._queue:
            if self._should_linger():
                # Let the batch fill, before every batch: hits that came in while the last one
                # was written are a handful, and a batch costs the same for one hit or a
                # thousand. A full batch or a flush (both signal) ends the wait early.
                wake = self._wake_event()
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.linger)
            # The backend keeps up but not fast enough for the hits behind: those would wait in
            # memory for the batches ahead of them, so they go to disk now.
            late = self._overdue()
            batch = self._take()
            if not batch:
                return  # the shutdown took them meanwhile
            dealt_with = False
            try:
                if late:
                    self._to_spool(batch)
                else:
                    await self._deliver(batch)
                dealt_with = True
            except asyncio.CancelledError:
                # The loop is going away with the batch in hand: it goes back to the front of
                # the queue for the next writer or the shutdown to keep (a store ignores a hit
                # it may have stored already).
                self._in_hand = 0
                self._requeue(batch)
                raise
            except BaseException:
                self._in_hand = 0
                self._settled(batch, dealt_with)
                raise
            self._in_hand = 0
            self._settled(batch, dealt_with)

    async def _deliver(self, batch: list[Record]) -> None:
        if self._pending is not None or self._down() or self._past_deadline():
            self._to_spool(batch)
            return
        outcome = await self._attempt(batch, None)
        if outcome == "down":
            self._to_spool(batch)
        elif isinstance(outcome, BaseException):
            await self._split(batch, outcome)

    async def _attempt(self, hits: list[Record], path: Path | None) -> str | BaseException:
        """Write ``hits``: "ok", "down", "pending" (spooled, still trying), or the hits' error."""
        # Receipts are only queued for a backend that keeps them (``keeps_receipts``).
        task = asyncio.ensure_future(self.backend.write_batch(cast("list[Hit]", hits)))
        done, _ = await asyncio.wait({task}, timeout=self.patience)
        if not done:
            # Slow or hanging: make the batch durable now and let the backend finish.
            if path is None:
                path = self._to_spool(hits)
            self._pending = _Pending(task, hits, path)
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
        pending = self._pending
        if pending is None:
            return
        if not pending.task.done():
            if self._past_deadline():
                pending.task.cancel()  # its hits are on disk, or in ``_stuck``
                self._pending = None
            return
        self._pending = None
        exc = pending.task.exception()
        if exc is not None and not _permanent(self.backend, exc):
            await self._went_down(exc)  # the spool copy (or ``_stuck``) is tried again
            return
        if pending.path is None:
            # The spool could not take them, so ``_stuck`` holds them: they are settled now.
            settled = {id(h) for h in pending.hits}
            self._stuck = [h for h in self._stuck if id(h) not in settled]
            if not self._stuck:
                self._refusing = False
        if exc is None:
            self._up()
        else:
            # Refused for what they hold, after a slow answer: split them now rather than
            # replaying the whole batch from the spool only to be refused again.
            await self._split(pending.hits, exc)
        if pending.path is not None:
            pending.path.unlink(missing_ok=True)  # stored, split or set aside: the copy goes

    async def _split(self, hits: list[Record], error: BaseException) -> None:
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

    def _dead_letter(self, hits: list[Record], error: BaseException) -> None:
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

    def _to_spool(self, hits: list[Record]) -> Path | None:
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
        try:
            outcome = "down" if self._down() else await self._attempt(hits, None)
        except asyncio.CancelledError:
            self._stuck = hits + self._stuck  # still held; the shutdown keeps them
            raise
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
