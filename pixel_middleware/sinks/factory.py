"""Turning settings into sinks, and writing to several at once."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence

from ..receipts import Receipt
from ..settings import PixelSettings
from ..store_url import parse_store, sqlite_file
from .base import Hit, Sink, keeps_receipts, write_durably, write_receipts
from .jsonlines import LoggingSink


class MultiSink:
    """Writes every hit to each sink; one failing sink does not keep hits from the others."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        if not sinks:
            raise ValueError("MultiSink needs at least one sink")
        self.sinks = tuple(sinks)

    async def write(self, hits: Sequence[Hit]) -> None:
        await self._each(lambda sink: sink.write(hits))

    async def write_durably(self, hits: Sequence[Hit]) -> None:
        """Return once every sink has saved ``hits`` (see :func:`write_durably`)."""
        await self._each(lambda sink: write_durably(sink, hits))

    @property
    def keeps_receipts(self) -> bool:
        """Whether one of the sinks keeps consent receipts."""
        return any(keeps_receipts(sink) for sink in self.sinks)

    async def write_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Hand consent receipts to every sink that keeps them (the stores)."""
        await self._each(lambda sink: write_receipts(sink, receipts))

    async def start(self) -> None:
        for sink in self.sinks:
            start = getattr(sink, "start", None)
            if start is not None:
                await start()

    async def close(self) -> None:
        await self._each(lambda sink: sink.close())

    async def _each(self, call: Callable[[Sink], Awaitable[object]]) -> None:
        """``call`` every sink, each whatever the others did; then raise the first failure."""
        errors: list[BaseException] = []
        for sink in self.sinks:
            try:
                await call(sink)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def store_sink(store: str, spool_dir: str) -> Sink:
    """The sink for a ``store`` setting (:func:`~pixel_middleware.store_url.parse_store`): a
    SQLite file or a PostgreSQL URL."""
    location = parse_store(store)
    if location.kind == "sqlite":
        from .sqlite import SQLiteSink

        return SQLiteSink(location.target)
    from .postgres import PostgresSink

    return PostgresSink(location.target, spool_dir=os.path.join(spool_dir, "postgresql"))


def sqlite_path(store: str) -> str:
    """The file a SQLite ``store`` names, read as the settings read it (``ValueError`` if the
    setting names none): ``sqlite:///hits.db`` → ``hits.db``, ``sqlite:////abs/hits.db`` →
    ``/abs/hits.db``, a plain path as it is."""
    return sqlite_file(store)


def build_sink(settings: PixelSettings) -> Sink:
    """The sinks the settings ask for: the store, the relay to Mapp, a log; one or several."""
    sinks: list[Sink] = []
    if settings.store is not None:
        sinks.append(store_sink(settings.store, settings.spool_dir))
    if settings.relay:
        from .relay import RelaySink

        base = settings.relay_url or f"https://{settings.track_domain}"
        sinks.append(RelaySink(base, spool_dir=os.path.join(settings.spool_dir, "relay")))
    if settings.log_hits or not sinks:
        sinks.append(LoggingSink())
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)
