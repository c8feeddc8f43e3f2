"""Response rewriting, DESIGN §6, checked message by message against a raw ASGI driver."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from pixel_middleware import PixelMiddleware
from pixel_middleware.sinks import Sink

from .asgi import html_app, request
from .helpers import injected_config, settings

PAGE = b"<!doctype html><html><body><h1>Hi</h1></body></html>"
HTML = (b"content-type", b"text/html; charset=utf-8")


def wrap(app: Any, **overrides: Any) -> PixelMiddleware:
    return PixelMiddleware(app, settings=settings(**overrides))


def test_injects_before_body_and_fixes_length_etag_vary() -> None:
    app = html_app(PAGE, headers=[HTML, (b"etag", b'"abc"'), (b"vary", b"Accept-Encoding")])
    r = request(wrap(app))
    assert r.body.startswith(b"<!doctype html><html><body><h1>Hi</h1>")
    assert r.body.endswith(b"</noscript></body></html>")
    assert r.body.count(b'<script src="/_pixel/pixel.js" defer></script>') == 1
    assert r.header_values("content-length") == [str(len(r.body))]
    assert r.header("etag") == 'W/"abc"'
    assert r.header_values("vary") == ["Accept-Encoding, Cookie, Sec-GPC"]


def test_django_style_small_page_without_length_is_injected() -> None:
    app = html_app(PAGE, headers=[(b"Content-Type", b"text/html")], content_length=False)
    r = request(wrap(app))
    assert b"pixel-middleware-config" in r.body
    assert r.header("content-length") is None
    assert len(r.bodies) == 1 and not r.bodies[0].get("more_body")


def test_header_names_in_any_case() -> None:
    app = html_app(
        PAGE,
        headers=[(b"Content-Type", b"TEXT/HTML; charset=utf-8"), (b"ETag", b'"x"')],
        content_length=False,
    )
    app_with_length = html_app(PAGE, headers=[(b"Content-Type", b"text/html")])
    r = request(wrap(app))
    assert b"pixel-middleware-config" in r.body and r.header("etag") == 'W/"x"'
    r2 = request(wrap(app_with_length))
    assert r2.header_values("content-length") == [str(len(r2.body))]


def test_body_in_several_chunks_with_length_is_buffered_and_injected() -> None:
    app = html_app([b"<html><body>", b"<p>x</p>", b"</bo", b"dy></html>"], headers=[HTML])
    r = request(wrap(app))
    # Bytes on the wire, however many messages carry them: the snippet sits right before the
    # </body> that was cut between two chunks, and the last message ends the body.
    assert r.body.startswith(b'<html><body><p>x</p><script type="application/json"')
    assert r.body.endswith(b"</noscript></body></html>")
    assert [bool(m.get("more_body")) for m in r.bodies][-1] is False
    assert all(m.get("more_body") for m in r.bodies[:-1])
    assert r.header_values("content-length") == [str(len(r.body))]


def test_stream_without_length_passes_message_by_message() -> None:
    chunks = [b"<html><body>", b"<p>1</p>", b"</body></html>"]
    r = request(wrap(html_app(chunks, headers=[HTML], content_length=False)))
    assert [m["body"] for m in r.bodies] == chunks
    assert [m["more_body"] for m in r.bodies] == [True, True, False]


def test_app_headers_are_not_mutated_and_duplicates_kept() -> None:
    headers = [HTML, (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    copy = list(headers)
    r = request(wrap(html_app(PAGE, headers=headers)))
    assert headers == copy
    assert r.header_values("set-cookie")[:2] == ["a=1", "b=2"]


@pytest.mark.parametrize(
    ("status", "headers", "method"),
    [
        (404, [HTML], "GET"),
        (204, [HTML], "GET"),
        (206, [HTML], "GET"),
        (304, [HTML], "GET"),
        (200, [HTML], "HEAD"),
        (200, [(b"content-type", b"application/json")], "GET"),
        (200, [(b"content-type", b"text/event-stream")], "GET"),
        (200, [(b"content-type", b"text/plain")], "GET"),
        (200, [HTML, (b"content-disposition", b"attachment; filename=a.html")], "GET"),
        (200, [HTML, (b"content-encoding", b"br")], "GET"),
        (200, [], "GET"),
    ],
)
def test_ineligible_responses_pass_untouched(
    status: int, headers: list[tuple[bytes, bytes]], method: str
) -> None:
    app = html_app(PAGE, status=status, headers=headers)
    r = request(wrap(app), method=method)
    assert r.body == PAGE
    assert r.header_values("content-length") == [str(len(PAGE))]
    assert r.header("vary") is None


def test_xhtml_is_injected() -> None:
    r = request(wrap(html_app(PAGE, headers=[(b"content-type", b"application/xhtml+xml")])))
    assert b"pixel-middleware-config" in r.body


def test_page_without_body_close_is_left_alone() -> None:
    broken = b"<html><body><p>unclosed <div"
    r = request(wrap(html_app(broken, headers=[HTML])))
    assert r.body == broken
    assert r.header_values("content-length") == [str(len(broken))]


def test_gzip_page_is_injected_and_still_valid_gzip() -> None:
    packed = gzip.compress(PAGE)
    app = html_app(packed, headers=[HTML, (b"content-encoding", b"gzip")])
    r = request(wrap(app))
    page = gzip.decompress(r.body)
    assert b"pixel-middleware-config" in page and page.endswith(b"</body></html>")
    assert r.header_values("content-length") == [str(len(r.body))]


def test_broken_gzip_passes_untouched() -> None:
    app = html_app(b"\x1f\x8bnot really", headers=[HTML, (b"content-encoding", b"gzip")])
    r = request(wrap(app))
    assert r.body == b"\x1f\x8bnot really"


def test_oversized_page_passes_untouched() -> None:
    big = b"<html><body>" + b"x" * 5000 + b"</body></html>"
    r = request(wrap(html_app([big[:3000], big[3000:]], headers=[HTML]), max_inject_bytes=4096))
    assert r.body == big
    assert r.bodies[-1].get("more_body") is False


def test_csp_nonce_from_response_is_reused() -> None:
    csp = (b"content-security-policy", b"script-src 'self' 'nonce-Zm9v'")
    r = request(wrap(html_app(PAGE, headers=[HTML, csp])))
    assert b'<script src="/_pixel/pixel.js" defer nonce="Zm9v"></script>' in r.body


def test_no_nonce_is_invented() -> None:
    r = request(wrap(html_app(PAGE, headers=[HTML])))
    assert b"nonce" not in r.body


def test_unknown_messages_are_forwarded() -> None:
    debug = {"type": "http.response.debug", "info": {}}
    trailers = {"type": "http.response.trailers", "headers": [], "more_trailers": False}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(debug)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [HTML], "trailers": True}
        )
        await send({"type": "http.response.body", "body": PAGE})
        await send(trailers)

    r = request(wrap(app))
    assert r.messages[0] == debug
    assert r.messages[-1] == trailers
    assert b"pixel-middleware-config" in r.body


def test_pathsend_while_held_releases_the_start() -> None:
    pathsend = {"type": "http.response.pathsend", "path": "/tmp/page.html"}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [HTML]})
        await send(pathsend)

    r = request(wrap(app))
    assert [m["type"] for m in r.messages] == ["http.response.start", "http.response.pathsend"]


def test_app_error_after_start_leaves_nothing_half_sent() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [HTML]})
        await send({"type": "http.response.body", "body": b"<html>", "more_body": True})
        raise RuntimeError("boom")

    sent: list[Any] = []
    with pytest.raises(RuntimeError):
        import asyncio

        async def run() -> None:
            async def receive() -> Any:
                return {"type": "http.request"}

            async def send(m: Any) -> None:
                sent.append(m)

            scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
            await wrap(app)(scope, receive, send)

        asyncio.run(run())
    # With no Content-Length the first chunk says more follows: a stream, forwarded as it came.
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


def test_app_error_while_buffering_sends_nothing() -> None:
    import asyncio

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [HTML, (b"content-length", b"100")],
            }
        )
        await send({"type": "http.response.body", "body": b"<html>", "more_body": True})
        raise RuntimeError("boom")

    sent: list[Any] = []

    async def run() -> None:
        async def receive() -> Any:
            return {"type": "http.request"}

        async def send(m: Any) -> None:
            sent.append(m)

        await wrap(app)(
            {"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send
        )

    with pytest.raises(RuntimeError):
        asyncio.run(run())
    assert sent == []


def test_lifespan_and_websocket_pass_through_and_sink_is_closed() -> None:
    import asyncio

    closed: list[bool] = []

    class Recorder:
        async def write(self, hits: Any) -> None:
            return None

        async def close(self) -> None:
            closed.append(True)

    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        else:
            assert "state" not in scope or "pixel" not in scope.get("state", {})

    sink: Sink = Recorder()
    middleware = PixelMiddleware(app, settings=settings(), sink=sink)
    sent: list[str] = []

    async def run() -> None:
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> Any:
            return next(messages)

        async def send(m: Any) -> None:
            sent.append(m["type"])

        await middleware({"type": "lifespan"}, receive, send)
        await middleware({"type": "websocket", "path": "/ws", "headers": []}, receive, send)

    asyncio.run(run())
    assert seen == ["lifespan", "websocket"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert closed == [True]


def test_inject_can_be_switched_off() -> None:
    r = request(wrap(html_app(PAGE, headers=[HTML]), inject=False))
    assert r.body == PAGE


def test_config_is_filtered_for_an_anonymous_visitor() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        visitor = scope["state"]["pixel"]
        visitor.page("shop/teapot", cp1="teapot")
        visitor.customer(id="C-1", uc5="f", uc50="kept")
        await html_app(PAGE, headers=[HTML])(scope, receive, send)

    s = {"enable_anonymous_function": True, "suppress_parameter": ("cd", "uc5")}
    identified = injected_config(request(wrap(app, **s)).body.decode())
    anonymous = injected_config(
        request(wrap(app, **s), headers=[(b"cookie", b"miCookieOptOut=1")]).body.decode()
    )
    assert identified is not None and anonymous is not None
    assert identified["page"]["params"] == [
        ["cp1", "teapot"],
        ["cd", "C-1"],
        ["uc5", "f"],
        ["uc50", "kept"],
    ]
    assert anonymous["page"]["params"] == [["cp1", "teapot"], ["uc50", "kept"]]
    assert anonymous["anonymous"] is True and identified["anonymous"] is False


def test_snippet_fits_a_latin1_page_without_decoding_it() -> None:
    page = "<html><body>Grüße</body></html>".encode("latin-1")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["state"]["pixel"].page("Grüße/straße", cp1="ü")
        headers = [(b"content-type", b"text/html; charset=iso-8859-1")]
        await html_app(page, headers=headers)(scope, receive, send)

    r = request(wrap(app))
    assert r.body.startswith(b"<html><body>Gr\xfc\xdfe<script")
    snippet = r.body[len(b"<html><body>Gr\xfc\xdfe") : -len(b"</body></html>")]
    assert snippet.isascii()
    config = injected_config(r.body.decode("latin-1"))
    assert config is not None and config["page"]["name"] == "Grüße/straße"
