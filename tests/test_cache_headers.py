"""A publicly cacheable page never gets a new everID, however its Cache-Control is split."""

from __future__ import annotations

import http.client
from collections.abc import Sequence

import pytest

from pixel_middleware import PixelMiddleware

from .asgi import html_app, request
from .helpers import set_cookies, settings
from .servers import serve

PAGE = b"<html><body><h1>cached</h1></body></html>"
HTML = (b"content-type", b"text/html; charset=utf-8")


def page_with(cache_lines: Sequence[bytes]) -> PixelMiddleware:
    headers = [HTML, *((b"cache-control", line) for line in cache_lines)]
    return PixelMiddleware(html_app(PAGE, headers=headers), settings=settings())


@pytest.mark.parametrize(
    "lines",
    [
        [b"max-age=600", b"public"],
        [b"public", b"max-age=600"],
        [b"max-age=600", b"s-maxage=600"],
        [b"max-age=600", b"", b"PUBLIC"],
        [b"no-transform", b"max-age=60, public"],
    ],
)
def test_public_on_any_line_keeps_new_identifiers_off(lines: list[bytes]) -> None:
    result = request(page_with(lines))
    assert result.status == 200 and b"pixel-middleware-config" in result.body
    written = set_cookies(result.header_values("set-cookie"))
    assert "wtstp_eid" not in written and "wtstp_sid" not in written
    assert result.header_values("cache-control") == [v.decode() for v in lines]  # untouched


@pytest.mark.parametrize(
    "lines", [[b"max-age=600"], [b"max-age=600", b"private"], [b"public", b"private"]]
)
def test_a_private_page_still_gets_the_everid(lines: list[bytes]) -> None:
    written = set_cookies(request(page_with(lines)).header_values("set-cookie"))
    assert "wtstp_eid" in written


def test_split_cache_control_over_a_real_server() -> None:
    with serve(page_with([b"max-age=600", b"public"])) as url:
        conn = http.client.HTTPConnection(
            url.removeprefix("http://").split(":")[0], int(url.rsplit(":", 1)[1])
        )
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
    assert response.status == 200 and b"pixel-middleware-config" in body
    assert response.headers.get_all("cache-control") == ["max-age=600", "public"]
    assert "wtstp_eid" not in set_cookies(response.headers.get_all("set-cookie") or [])
