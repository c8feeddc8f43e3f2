"""The benchmark's scenario: the apps, the page, the JSON response and the visitor.

One Starlette app serves a 20 KB HTML page at ``/`` (which names itself through the visitor API
when PixelMiddleware is there, as a real page would) and a small JSON response at ``/api``. It is
served bare, behind the reference injector, or behind PixelMiddleware; the factories at the end
are what ``uvicorn --factory`` loads for the end-to-end benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from pixel_middleware import PixelMiddleware, PixelSettings, get_visitor

from .reference import ReferenceInjector

App = Callable[[Any, Any, Any], Awaitable[None]]

TRACK_ID = "123451234512345"
# A returning, identified visitor: everID and session id cookies from an earlier visit.
IDENTIFIED_COOKIE = "wtstp_eid=8123456789012345678; wtstp_sid=1234567890123456789"
ANONYMOUS_COOKIE = "miCookieOptOut=1"
PAGE_BYTES = 20_000
BIG_PAGE_BYTES = 2 * 1024 * 1024
CHUNK_BYTES = 64 * 1024


def make_page(size: int) -> str:
    """An ASCII HTML page of exactly ``size`` bytes, its ``</body>`` near the end as usual."""
    head = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Teapots</title>'
        '<link rel="stylesheet" href="/static/site.css"></head>\n<body>\n<main>\n'
    )
    tail = "</main>\n<footer><p>&copy; Teapot shop</p></footer>\n</body>\n</html>\n"
    row = '<article class="item"><h2>Teapot</h2><p>Porcelain, 1.2 l, hand-painted.</p></article>\n'
    room = size - len(head) - len(tail)
    if room < 0:
        raise ValueError(f"a page needs at least {len(head) + len(tail)} bytes")
    body = row * (room // len(row))
    body += " " * (room - len(body))
    page = head + body + tail
    assert len(page.encode()) == size
    return page


PAGE = make_page(PAGE_BYTES)
JSON_DATA: dict[str, Any] = {
    "items": [{"id": i, "name": f"Teapot {i}", "price": 1999 + i} for i in range(5)],
    "next": None,
}
JSON_BYTES = len(json.dumps(JSON_DATA, separators=(",", ":")))


def settings(**overrides: Any) -> PixelSettings:
    values: dict[str, Any] = {
        "track_id": TRACK_ID,
        "secret_key": "bench-secret-key-0123456789",
        "enable_anonymous_function": True,
        "suppress_parameter": ("cd", "uc5", "uc7"),
        "store": None,
    }
    values.update(overrides)
    return PixelSettings(**values)


def site() -> Starlette:
    async def page(request: Request) -> Response:
        if "pixel" in request.scope.get("state", {}):
            get_visitor(request).page("shop/home", cp1="teapot")
        return HTMLResponse(PAGE)

    async def api(request: Request) -> Response:
        return JSONResponse(JSON_DATA)

    return Starlette(routes=[Route("/", page), Route("/api", api)])


def big_page_app() -> App:
    """Pure ASGI: a 2 MB page with Content-Length, sent in 64 KB ``more_body`` chunks."""
    page = make_page(BIG_PAGE_BYTES).encode()
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(page)).encode()),
        ],
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start)
        for offset in range(0, len(page), CHUNK_BYTES):
            chunk = page[offset : offset + CHUNK_BYTES]  # a new object, as an app would make
            more = offset + CHUNK_BYTES < len(page)
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


# Factories for ``uvicorn --factory bench.apps:<name>``.


def bare_app() -> App:
    return site()


def reference_app() -> App:
    return ReferenceInjector(site())


def pixel_app() -> App:
    return PixelMiddleware(site(), settings=settings())


FACTORIES: dict[str, Callable[[], App]] = {
    "bare": bare_app,
    "reference": reference_app,
    "pixel": pixel_app,
}
