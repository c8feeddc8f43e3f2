"""Over a real uvicorn server: TestClient hides Content-Length, HEAD and streaming mistakes."""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from pixel_middleware import PixelMiddleware

from .helpers import set_cookies, settings
from .servers import serve

PAGE = "<!doctype html><html><body><h1>Real server</h1></body></html>"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, asyncio.Event]]]:
    events: dict[str, asyncio.Event] = {}

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def stream(request: Request) -> Response:
        release = events["release"] = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield b"<html><body><p>first</p>"
            await release.wait()
            yield b"<p>second</p></body></html>"

        return StreamingResponse(body(), media_type="text/html")

    async def release(request: Request) -> Response:
        events["release"].set()
        return PlainTextResponse("released")

    app = Starlette(
        routes=[
            Route("/page", page, methods=["GET", "HEAD"]),
            Route("/stream", stream),
            Route("/release", release),
        ]
    )
    with serve(PixelMiddleware(app, settings=settings())) as url:
        yield url, events


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)


def test_injected_page_has_exact_content_length(server: tuple[str, object]) -> None:
    conn = connect(server[0])
    conn.request("GET", "/page")
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200
    assert int(r.getheader("content-length") or -1) == len(body)
    assert b"pixel-middleware-config" in body and body.endswith(b"</body></html>")
    assert {"wtstp_eid", "wtstp_sid"} <= set(set_cookies(r.headers.get_all("set-cookie") or []))
    # The connection stays usable: a wrong length would desynchronise the next response.
    conn.request("GET", "/page")
    again = conn.getresponse()
    assert again.read().endswith(b"</body></html>")


def test_head_is_not_rewritten(server: tuple[str, object]) -> None:
    conn = connect(server[0])
    conn.request("HEAD", "/page")
    r = conn.getresponse()
    assert r.read() == b""
    assert int(r.getheader("content-length") or -1) == len(PAGE)


def test_stream_is_not_held_back(server: tuple[str, dict[str, asyncio.Event]]) -> None:
    url, _ = server
    conn = connect(url)
    conn.request("GET", "/stream")
    r = conn.getresponse()
    first = r.read1(65536)
    # The second chunk waits for /release: had the middleware buffered, this read would time out.
    assert first == b"<html><body><p>first</p>"
    other = connect(url)
    other.request("GET", "/release")
    assert other.getresponse().read() == b"released"
    rest = r.read()
    assert rest == b"<p>second</p></body></html>"
    assert r.getheader("content-length") is None
