"""Hits per second through ``/_pixel/<trackId>/wt``, counted until every hit is stored.

No sink (hits dropped) against SQLite and, unless skipped, PostgreSQL (a throwaway server from
Debian's postgresql package, as the tests use). Half the hits come from opted-out visitors. Each
round makes a fresh sink (and a fresh SQLite file) for every store, in an order that reverses from
one round to the next; the clock starts once the store is set up (a few hits already stored) and
stops when the sink reports every hit written.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from pixel_middleware import PixelMiddleware
from pixel_middleware.sinks import BufferedSink, Hit, Sink, build_sink

from . import apps
from .asgi import call
from .stats import Spread

QUERY = b"p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0&cp1=teapot&cd=C-1&uc5=f"
FLUSH_TIMEOUT = 300.0
WARMUP_HITS = 20


class NullSink:
    async def write(self, hits: Sequence[Hit]) -> None:
        return None

    async def close(self) -> None:
        return None


async def _send_hits(app: apps.App, hits: int) -> None:
    path = f"/_pixel/{apps.TRACK_ID}/wt"
    anonymous = apps.ANONYMOUS_COOKIE.encode()
    for i in range(hits):
        if await call(app, path, QUERY, anonymous if i % 2 else b"") != 200:
            raise RuntimeError(f"{path} did not answer 200")
        # A server's loop runs its other tasks between requests (the sink's writer among them);
        # a loop that never yields would starve them as no server does.
        await asyncio.sleep(0)


async def _stored(sink: Sink) -> None:
    """Return once every hit written to ``sink`` so far is stored."""
    if isinstance(sink, BufferedSink):
        if not await asyncio.to_thread(sink.flush, FLUSH_TIMEOUT):
            raise RuntimeError(f"{sink!r} did not store its hits within {FLUSH_TIMEOUT} s")
    elif not isinstance(sink, NullSink):
        await sink.close()  # a sink that is not buffered has stored them once closed


async def hit_rate(sink: Sink, hits: int) -> float:
    """Hits per second through the wt endpoint, counting until the sink has written them all.

    The sink is started as a server's lifespan starts it. A few hits go through first,
    uncounted, so that the store's one-time setup (a new SQLite file and its schema, a
    connection) is not part of the rate.
    """
    app = PixelMiddleware(apps.site(), settings=apps.settings(), sink=sink)
    start = getattr(sink, "start", None)
    if start is not None:
        await start()  # as a server's lifespan does: the writer then runs on this loop
    try:
        await _send_hits(app, WARMUP_HITS)
        await _stored(sink)
        start = time.perf_counter()
        await _send_hits(app, hits)
        await _stored(sink)
        elapsed = time.perf_counter() - start
    finally:
        await sink.close()
    return hits / elapsed


def run(hits: int, rounds: int, postgres: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pixel-bench-") as tmp:
        counter = iter(range(1_000_000))

        def sqlite() -> Sink:
            n = next(counter)
            return build_sink(
                apps.settings(
                    store=f"sqlite:///{tmp}/hits-{n}.sqlite3", spool_dir=f"{tmp}/spool-{n}"
                )
            )

        stores: dict[str, Callable[[], Sink]] = {"no sink": NullSink, "SQLite": sqlite}
        server = None
        skipped = None if postgres else "asked to skip"
        if postgres:
            from tests.postgres import PostgresServer

            try:
                server = PostgresServer()
                server.start()
            except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
                skipped = f"{type(error).__name__}: {error}"
                if server is not None:
                    server.destroy()
                    server = None
        if server is not None:
            dsn = server.dsn
            stores["PostgreSQL"] = lambda: build_sink(
                apps.settings(store=dsn, spool_dir=f"{tmp}/spool-pg-{next(counter)}")
            )
        try:
            rates: dict[str, list[float]] = {name: [] for name in stores}
            names = list(stores)
            asyncio.run(hit_rate(NullSink(), min(hits, 500)))  # warm-up
            for number in range(rounds):
                for name in names if number % 2 == 0 else names[::-1]:
                    rates[name].append(asyncio.run(hit_rate(stores[name](), hits)))
        finally:
            if server is not None:
                server.destroy()
    ratios = {
        name: [r / base for r, base in zip(values, rates["no sink"], strict=True)]
        for name, values in rates.items()
        if name != "no sink"
    }
    return {
        "hits_per_round": hits,
        "rounds": rounds,
        "per_second": {name: Spread.of(v).as_dict() for name, v in rates.items()},
        "ratio_to_no_sink": {name: Spread.of(v).as_dict() for name, v in ratios.items()},
        "raw_per_second": rates,
        "postgres_skipped": skipped,
    }
