"""Benchmarks: ``python3 dev.py bench``. Everything is measured in one run, on this machine, as a
ratio against a baseline measured in the same run, so the numbers compare across machines.

1. Page requests: a bare Starlette app against the same app behind PixelMiddleware (snippet
   injected, identifier cookies written), for an identified and an anonymous visitor.
2. Memory: peak Python allocation while serving one large page, bare against wrapped.
3. Hits per second through ``/_pixel/<trackId>/wt`` until every hit is stored: no sink against
   SQLite and PostgreSQL (a throwaway server from Debian's postgresql package).

Requests are driven straight through ASGI in one event loop, without a network in between, so
the numbers show the middleware's and the sinks' own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pixel_middleware import PixelMiddleware, PixelSettings, get_visitor
from pixel_middleware.sinks import BufferedSink, Hit, Sink, build_sink

TRACK_ID = "123451234512345"
PAGE = (
    "<!doctype html><html><head><title>b</title></head><body>"
    + "<p>text</p>" * 400
    + "</body></html>"
)
BIG_PAGE = "<html><body>" + "x" * 2_000_000 + "</body></html>"
QUERY = b"p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0&cp1=teapot&cd=C-1&uc5=f"
App = Callable[[Any, Any, Any], Awaitable[None]]


def settings(**overrides: Any) -> PixelSettings:
    values: dict[str, Any] = {
        "track_id": TRACK_ID,
        "secret_key": "bench",
        "enable_anonymous_function": True,
        "suppress_parameter": ("cd", "uc5", "uc7"),
        "store": None,
    }
    values.update(overrides)
    return PixelSettings(**values)


def bare_app(body: str) -> Starlette:
    async def page(request: Request) -> Response:
        if "pixel" in request.scope.get("state", {}):
            get_visitor(request).page("shop/home", cp1="teapot")
        return HTMLResponse(body)

    return Starlette(routes=[Route("/", page)])


async def call(app: App, path: str, query: bytes = b"", cookie: bytes = b"") -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"bench.example"), (b"cookie", cookie)],
        "client": ("127.0.0.1", 1),
        "server": ("bench.example", 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def rate(app: App, n: int, path: str, query: bytes = b"", cookie: bytes = b"") -> float:
    """Requests per second for ``n`` sequential requests (best of three rounds)."""
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            assert await call(app, path, query, cookie) == 200
        rounds.append(n / (time.perf_counter() - start))
    return max(rounds)


class NullSink:
    async def write(self, hits: Sequence[Hit]) -> None:
        return None

    async def close(self) -> None:
        return None


async def hit_rate(sink: Sink, n: int) -> float:
    """Hits per second through the wt endpoint, counting until the sink has written them all."""
    app = PixelMiddleware(bare_app(PAGE), settings=settings(), sink=sink)
    start = time.perf_counter()
    for i in range(n):
        cookie = b"miCookieOptOut=1" if i % 2 else b""
        assert await call(app, f"/_pixel/{TRACK_ID}/wt", QUERY, cookie) == 200
    if isinstance(sink, BufferedSink):
        await asyncio.to_thread(sink.flush, 120)
    elapsed = time.perf_counter() - start
    await sink.close()
    return n / elapsed


def peak_memory(app: App) -> int:
    tracemalloc.start()
    asyncio.run(call(app, "/"))
    tracemalloc.reset_peak()
    asyncio.run(call(app, "/"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--requests", type=int, default=2_000, help="page requests per round")
    parser.add_argument("--hits", type=int, default=5_000, help="hits per sink")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}

    bare = bare_app(PAGE)
    wrapped = PixelMiddleware(bare_app(PAGE), settings=settings())
    base = asyncio.run(rate(bare, args.requests, "/"))
    ident = asyncio.run(
        rate(
            wrapped,
            args.requests,
            "/",
            cookie=b"wtstp_eid=8123456789012345678; wtstp_sid=1234567890123456789",
        )
    )
    new = asyncio.run(rate(wrapped, args.requests, "/"))
    anon = asyncio.run(rate(wrapped, args.requests, "/", cookie=b"miCookieOptOut=1"))
    results["pages"] = {"bare": base, "identified": ident, "new visitor": new, "anonymous": anon}
    print(
        f"page requests per second ({len(PAGE)} bytes of HTML, {args.requests} requests, best of 3)"
    )
    for name, value in results["pages"].items():
        print(f"  {name:<14} {value:>9.0f}/s   ratio to bare {value / base:5.2f}")

    mem_bare = peak_memory(bare_app(BIG_PAGE))
    mem_wrapped = peak_memory(PixelMiddleware(bare_app(BIG_PAGE), settings=settings()))
    results["memory"] = {"bare": mem_bare, "wrapped": mem_wrapped}
    print(f"\npeak memory serving a {len(BIG_PAGE) / 1e6:.0f} MB page")
    print(
        f"  bare {mem_bare / 1e6:6.1f} MB   wrapped {mem_wrapped / 1e6:6.1f} MB"
        f"   ratio {mem_wrapped / mem_bare:4.2f}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        sinks: dict[str, Callable[[], Sink]] = {
            "no sink": NullSink,
            "SQLite": lambda: build_sink(
                settings(store=f"sqlite:{tmp}/bench.sqlite3", spool_dir=tmp)
            ),
        }
        server = None
        if not args.no_postgres:
            from tests.postgres import PostgresServer

            server = PostgresServer()
            server.start()
            sinks["PostgreSQL"] = lambda: build_sink(settings(store=server.dsn, spool_dir=tmp))
        try:
            hits = {name: asyncio.run(hit_rate(make(), args.hits)) for name, make in sinks.items()}
        finally:
            if server is not None:
                server.destroy()
    results["hits"] = hits
    print(
        f"\nhits per second through /_pixel/{TRACK_ID}/wt until stored "
        f"({args.hits} hits, half anonymous)"
    )
    for name, value in hits.items():
        print(f"  {name:<14} {value:>9.0f}/s   ratio to no sink {value / hits['no sink']:5.2f}")

    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"\nraw numbers in {out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
