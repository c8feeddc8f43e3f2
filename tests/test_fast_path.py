"""Responses that never needed the visitor pass through untouched: no cookie, no header, no copy.

The visitor is made when the app reads it, or when an HTML page gets the snippet; only then are
identifier cookies written.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from pixel_middleware import PixelMiddleware, get_visitor

from .asgi import html_app, request
from .helpers import TRACK_ID, set_cookies, settings

JSON = [(b"content-type", b"application/json")]
HTML = [(b"content-type", b"text/html; charset=utf-8")]
PAGE = b"<html><body>x</body></html>"


def wrap(app: ASGIApp, **overrides: Any) -> PixelMiddleware:
    return PixelMiddleware(app, settings=settings(**overrides))


def test_json_the_app_did_not_track_passes_through_unchanged() -> None:
    app = html_app(b'{"a": 1}', headers=JSON)
    bare = request(app)
    wrapped = request(wrap(app))
    assert wrapped.messages == bare.messages
    assert wrapped.header_values("set-cookie") == []


def test_redirect_and_html_error_pages_get_no_cookie() -> None:
    for status, headers in ((303, [(b"location", b"/x")]), (404, HTML), (500, HTML)):
        r = request(wrap(html_app(PAGE, status=status, headers=headers)))
        assert r.status == status and r.header_values("set-cookie") == []
        assert r.body == PAGE


def test_html_page_without_body_tag_makes_no_visitor() -> None:
    r = request(wrap(html_app(b"<p>fragment</p>", headers=HTML)))
    assert r.body == b"<p>fragment</p>" and r.header_values("set-cookie") == []


def test_injected_page_writes_identifier_cookies() -> None:
    r = request(wrap(html_app(PAGE, headers=HTML)))
    assert b"pixel-middleware-config" in r.body
    # The identifiers, and the marker that tells the first hit it is a new visit.
    cookies = set_cookies(r.header_values("set-cookie"))
    assert set(cookies) == {"wtstp_eid", "wtstp_sid", "wtstp_sid_new"}
    assert cookies["wtstp_sid_new"].value == "vs" and cookies["wtstp_sid_new"].has("httponly")


def test_json_for_which_the_app_used_the_visitor_writes_its_cookies() -> None:
    inner = html_app(b"{}", headers=JSON)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        get_visitor(scope).customer(id="C-1")
        await inner(scope, receive, send)

    r = request(wrap(app))
    assert set(set_cookies(r.header_values("set-cookie"))) == {
        "wtstp_eid",
        "wtstp_sid",
        "wtstp_sid_new",
    }
    assert r.body == b"{}"


def test_json_of_an_anonymous_visitor_who_used_the_visitor_expires_identifiers() -> None:
    inner = html_app(b"{}", headers=JSON)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["state"]["pixel"].anonymous
        await inner(scope, receive, send)

    r = request(
        wrap(app, enable_anonymous_function=True),
        headers=[(b"cookie", b"miCookieOptOut=1; wtstp_eid=8123456789012345678")],
    )
    cookies = set_cookies(r.header_values("set-cookie"))
    assert set(cookies) == {"wtstp_eid"} and cookies["wtstp_eid"].expired


def test_state_reads_the_same_way_as_a_dict() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        state = scope["state"]
        seen["in"] = "pixel" in state
        seen["get"] = state.get("pixel")
        seen["item"] = state["pixel"]
        seen["other"] = state.get("other", "default")
        await html_app(b"{}", headers=JSON)(scope, receive, send)

    request(wrap(app))
    assert seen["in"] is True and seen["get"] is seen["item"] and seen["other"] == "default"


def test_lifespan_state_from_the_server_stays_visible() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["db"] = scope["state"]["db"]
        await html_app(b"{}", headers=JSON)(scope, receive, send)

    mw = wrap(app)

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        scope["state"] = {"db": "pool"}
        await mw(scope, receive, send)

    request(outer)
    assert seen["db"] == "pool"


def test_excluded_paths_get_no_visitor_cookie_or_snippet() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen[scope["path"]] = "pixel" in scope.get("state", {})
        await html_app(PAGE, headers=HTML)(scope, receive, send)

    mw = wrap(app, exclude_paths=("/admin/", "/docs"))
    for path in ("/admin/users", "/docs", "/docs/oauth2-redirect"):
        r = request(mw, path)
        assert r.body == PAGE and r.header_values("set-cookie") == []
        assert seen[path] is False
    assert b"pixel-middleware-config" in request(mw, "/admin").body


def _garbage_after(app: Any, paths: list[str], rounds: int = 50) -> int:
    """How many objects only the cycle collector could free after ``rounds`` of requests."""
    import asyncio
    import gc

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    class Cycle:
        """As a server's request cycle: its ``send`` is a method of an object that holds the
        scope (uvicorn's ``RequestResponseCycle`` does)."""

        def __init__(self, scope: dict[str, Any]) -> None:
            self.scope = scope

        async def send(self, message: dict[str, Any]) -> None:
            pass

    async def requests() -> None:
        for _ in range(rounds):
            for path in paths:
                scope: dict[str, Any] = {
                    "type": "http",
                    "method": "GET",
                    "scheme": "http",
                    "path": path,
                    "query_string": b"p=600,home,0,0,0,0,1700000000000,0,0,0&cp1=x",
                    "headers": [(b"host", b"shop.example"), (b"cookie", b"wtstp_eid=1")],
                    "client": ("127.0.0.1", 1),
                }
                await app(scope, receive, Cycle(scope).send)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(requests())  # warm-up: lazy caches fill here
        gc.collect()
        gc.disable()
        try:
            loop.run_until_complete(requests())
            return gc.collect()
        finally:
            gc.enable()
    finally:
        loop.close()


def test_a_request_leaves_nothing_for_the_garbage_collector() -> None:
    """The scope holds the state and the state the scope; the pair is broken when the request
    ends, so that a busy server does not run the cycle collector for every few requests."""
    page = html_app(PAGE, headers=HTML)
    api = html_app(b"{}", headers=JSON)

    async def site(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/tracked" and "state" in scope:
            get_visitor(scope).page("tracked")
        await (page if scope["path"] != "/api" else api)(scope, receive, send)

    paths = ["/", "/api", "/tracked", "/_pixel/status", f"/_pixel/{TRACK_ID}/wt"]
    assert _garbage_after(wrap(site), paths) <= _garbage_after(site, paths)
