"""Over a real uvicorn server: TestClient hides Content-Length, HEAD and streaming mistakes."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from pixel_middleware import PixelMiddleware

from .helpers import set_cookies, settings
from .servers import EDGE_PAGE, STREAM_FIRST, STREAM_SECOND, edge_app, serve

PAGE = "<!doctype html><html><body><h1>Real server</h1></body></html>"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(PixelMiddleware(edge_app(), settings=settings())) as url:
        yield url


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)


def test_injected_page_has_exact_content_length(server: str) -> None:
    conn = connect(server)
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


def test_head_is_not_rewritten(server: str) -> None:
    conn = connect(server)
    conn.request("HEAD", "/page")
    r = conn.getresponse()
    assert r.read() == b""
    assert int(r.getheader("content-length") or -1) == len(EDGE_PAGE)


def test_stream_is_not_held_back(server: str) -> None:
    url = server
    conn = connect(url)
    conn.request("GET", "/stream")
    r = conn.getresponse()
    first = r.read1(65536)
    # The second chunk waits for /release: had the middleware buffered, this read would time out.
    assert first == STREAM_FIRST
    other = connect(url)
    other.request("GET", "/release")
    assert other.getresponse().read() == b"released"
    rest = r.read()
    assert rest == STREAM_SECOND
    assert r.getheader("content-length") is None
