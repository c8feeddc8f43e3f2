"""Anonymity levels, logout from the browser and the Smart Pixel's opt-out names (issue #10), in
Debian's Chromium: the cookies the browser keeps, the requests it sends, the rows the store holds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Request
from playwright.sync_api import Response as PlaywrightResponse
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from .browser import Site, Tab, chromium, demo_site, open_tab
from .helpers import query_pairs
from .servers import serve

pytestmark = pytest.mark.browser

CHOICE, EID, SID, ASID = "miCookieOptOut", "wtstp_eid", "wtstp_sid", "wtstp_asid"
TEMP_COOKIE_RE = re.compile(r"^(t[0-9a-f]{32})\.(\d+)$")
SHOP, EVIL = "shop.test", "evil.test"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(hosts=(SHOP, EVIL)) as b:
        yield b


@pytest.fixture(scope="module")
def session_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Opt-out mode with anonymous_session on, at 127.0.0.1 (a trustworthy origin)."""
    with demo_site(tmp_path_factory.mktemp("asid"), "opt-out", anonymous_session=True) as site:
        yield site


@pytest.fixture(scope="module")
def plain_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Opt-out mode, anonymous_session off, on plain http at a host name that is not potentially
    trustworthy (no Sec-Fetch-* from Chromium), every page under Referrer-Policy: no-referrer."""
    with demo_site(
        tmp_path_factory.mktemp("plain"),
        "opt-out",
        host=SHOP,
        headers={"Referrer-Policy": "no-referrer"},
    ) as site:
        yield site


@contextmanager
def other_site() -> Iterator[int]:
    """Another origin: a blank page on another port. Yields the port."""

    async def blank(request: StarletteRequest) -> Response:
        return HTMLResponse("<!doctype html><html><body><h1>Elsewhere</h1></body></html>")

    with serve(Starlette(routes=[Route("/", blank)])) as url:
        yield int(urlsplit(url).port or 0)


# ---------------------------------------------------------------------------------- helpers


def row_of(rows: list[dict[str, Any]], **match: str) -> dict[str, Any]:
    """The one stored row whose query has all of ``match`` (name=value, as stored)."""
    found = [r for r in rows if set(match.items()) <= set(query_pairs(r["query"]))]
    assert len(found) == 1, (match, [r["query"] for r in rows])
    return found[0]


def temporary_cookie(tab: Tab) -> str:
    """The temporary session id the browser keeps: an HttpOnly session cookie ``<id>.<time>``."""
    cookie = tab.cookies()[ASID]
    assert cookie["httpOnly"] and cookie["expires"] == -1, cookie  # gone with the session
    match = TEMP_COOKIE_RE.match(cookie["value"])
    assert match, cookie["value"]
    assert abs(int(match.group(2)) - time.time()) < 60
    return match.group(1)


def assert_no_identifier(tab: Tab) -> None:
    cookies = tab.cookies()
    assert EID not in cookies and SID not in cookies, sorted(cookies)


def anonymous_page(tab: Tab, path: str) -> str:
    """Visit ``path`` as an anonymous visitor; returns the temporary id the browser then holds."""
    params = tab.visit(path)
    assert params["nc"] == "1" and "eid" not in params
    assert "fpv" not in params  # the browser cannot read the HttpOnly cookie: the server adds it
    assert_no_identifier(tab)
    return temporary_cookie(tab)


def login(tab: Tab) -> None:
    tab.page.goto(tab.base + "/login")
    with tab.page.expect_navigation():
        tab.page.click("button[type=submit]")


def is_event(name: str) -> Any:
    return lambda r: "/wt?" in r.url and f"ct={name}" in r.url


# ------------------------------------------------------------------ anonymous_session


def test_anonymous_session_lives_as_long_as_the_browser_session(
    browser: Browser, session_site: Site
) -> None:
    base = session_site.url
    start = len(session_site.hits())  # the module's other tests share this store
    with open_tab(browser, base) as tab:
        # A visitor who chose to be anonymous on an earlier visit: a persistent choice cookie.
        tab.context.add_cookies(
            [{"name": CHOICE, "value": "1", "url": base, "expires": time.time() + 86_400}]
        )
        answers: list[PlaywrightResponse] = []
        tab.context.on("response", lambda r: answers.append(r))
        ids = [anonymous_page(tab, p) for p in ("/", "/product/teapot", "/product/kettle")]
        first = ids[0]
        assert ids == [first] * 3
        # Not even for a moment: no answer (page, script, hit) ever wrote an identifier.
        written = [
            header["value"]
            for answer in answers
            for header in answer.headers_array()
            if header["name"].lower() == "set-cookie"
        ]
        assert any(line.startswith(f"{ASID}=") for line in written), written
        assert not [line for line in written if re.match(r"(wtstp_eid|wtstp_sid)=[^;]", line)]
        rows = session_site.hits()[start:]
        assert [r["session_id"] for r in rows] == [first] * 3
        for r in rows:
            assert r["anonymous"] and r["ever_id"] is None and r["user_agent"] is None
            assert ("fpv", first) in query_pairs(r["query"])
        # Closing the browser: session cookies go, the persistent choice stays.
        kept = [c for c in tab.context.storage_state()["cookies"] if c["expires"] != -1]
    assert CHOICE in {c["name"] for c in kept} and ASID not in {c["name"] for c in kept}
    with open_tab(browser, base, storage_state={"cookies": kept, "origins": []}) as tab:
        second = anonymous_page(tab, "/")
        assert second != first
        assert session_site.hits()[-1]["session_id"] == second

        # A consent change starts a new session: anonymous -> identified ...
        tab.visit("/privacy")
        identified = tab.click("#optin-now a")
        cookies = tab.cookies()
        assert "nc" not in identified and CHOICE not in cookies and ASID not in cookies
        eid, sid = cookies[EID]["value"], cookies[SID]["value"]
        row = session_site.hits()[-1]
        assert not row["anonymous"] and (row["ever_id"], row["session_id"]) == (eid, sid)
        # ... and identified -> anonymous: a new temporary id, and the everID is gone.
        tab.visit("/privacy")
        tab.click("#optout-longest a")
        assert_no_identifier(tab)
        third = temporary_cookie(tab)
        assert third not in (first, second)
        row = session_site.hits()[-1]
        assert row["anonymous"] and row["session_id"] == third and row["ever_id"] is None

        # A restored session cookie 31 minutes after the last page view: the server's timeout.
        stale = f"{third}.{int(time.time()) - 31 * 60}"
        tab.context.add_cookies([{"name": ASID, "value": stale, "url": base, "httpOnly": True}])
        assert [c["value"] for c in tab.context.cookies(base) if c["name"] == ASID] == [stale]
        fourth = anonymous_page(tab, "/")
        assert fourth != third
        assert session_site.hits()[-1]["session_id"] == fourth
        # No anonymous row holds the everID of the identified stretch, anywhere.
        anonymous_rows = [r for r in session_site.hits()[start:] if r["anonymous"]]
        assert len(anonymous_rows) == 7  # 3, then "/" and "/privacy", "/privacy", "/"
        assert not any(eid in repr(r) or sid in repr(r) for r in anonymous_rows)


def test_without_anonymous_session_rows_hold_no_session_id(
    browser: Browser, plain_site: Site
) -> None:
    start = len(plain_site.hits())
    with open_tab(browser, plain_site.url) as tab:
        tab.context.add_cookies([{"name": CHOICE, "value": "1", "url": plain_site.url}])
        for path in ("/", "/product/teapot"):
            params = tab.visit(path)
            assert params["nc"] == "1"
            cookies = tab.cookies()
            assert not {EID, SID, ASID} & set(cookies), sorted(cookies)
        rows = plain_site.hits()[start:]
        assert len(rows) == 2
        for r in rows:
            assert r["anonymous"] and r["session_id"] is None and r["ever_id"] is None
            assert "fpv" not in dict(query_pairs(r["query"]))


# ---------------------------------------------------------------- logout from the browser

ANONYMIZE_BETWEEN = """async () => {
    pixelMiddleware.track("%s");
    const done = pixelMiddleware.anonymize();
    pixelMiddleware.track("%s");
    return await done;
}"""


def anonymize_between(tab: Tab, before: str, after: str) -> Request:
    """Track ``before``, call anonymize(), track ``after`` without waiting; returns the
    anonymize request. The call's Promise must resolve to true."""
    calls: list[Request] = []
    tab.page.on("request", lambda r: calls.append(r) if r.url.endswith("/anonymize") else None)
    with tab.page.expect_request(is_event(after), timeout=10_000) as later:
        assert tab.page.evaluate(ANONYMIZE_BETWEEN % (before, after)) is True
    later.value.response()
    (call,) = calls
    return call


def test_anonymize_gives_a_new_identity_from_the_next_event_on(
    browser: Browser, session_site: Site
) -> None:
    with open_tab(browser, session_site.url) as tab:
        login(tab)
        tab.visit("/product/teapot")
        old = tab.cookies()
        old_eid, old_sid = old[EID]["value"], old[SID]["value"]
        call = anonymize_between(tab, "event-a", "event-b")
        assert call.method == "POST"
        response = call.response()
        assert response is not None and response.status == 204
        new = tab.cookies()
        assert new[EID]["value"] != old_eid and new[SID]["value"] != old_sid
        assert new[EID]["httpOnly"] and CHOICE not in new
        rows = session_site.hits()
        a, b = row_of(rows, ct="event-a"), row_of(rows, ct="event-b")
        assert (a["ever_id"], a["session_id"]) == (old_eid, old_sid)
        assert (b["ever_id"], b["session_id"]) == (new[EID]["value"], new[SID]["value"])
        assert not a["anonymous"] and not b["anonymous"]

        # An anonymous visitor with anonymous_session: a new temporary session.
        tab.change_cookie("pixelMiddleware.optout.setAnonymousCookie()", CHOICE, present=True)
        tab.run("pixelMiddleware.track('event-c')")
        assert_no_identifier(tab)
        temporary = temporary_cookie(tab)
        anonymize_between(tab, "event-d", "event-e")
        assert_no_identifier(tab)
        renewed = temporary_cookie(tab)
        assert renewed != temporary
        rows = session_site.hits()
        assert row_of(rows, ct="event-d")["session_id"] == temporary
        e = row_of(rows, ct="event-e")
        assert e["anonymous"] and e["session_id"] == renewed and e["ever_id"] is None


@pytest.mark.parametrize("other_host", ["127.0.0.1", EVIL], ids=["same-site", "cross-site"])
def test_anonymize_from_another_origin_changes_nothing(
    browser: Browser, session_site: Site, other_host: str
) -> None:
    target = session_site.url + "/_pixel/anonymize"
    with other_site() as port, open_tab(browser, session_site.url) as tab:
        tab.visit("/")
        before = {n: tab.cookies()[n]["value"] for n in (EID, SID)}
        tab.page.goto(f"http://{other_host}:{port}/")
        with tab.page.expect_response(lambda r: r.url == target) as fetched:
            tab.page.evaluate(
                "url => fetch(url, {method: 'POST', credentials: 'include', mode: 'no-cors'})"
                ".then(() => true, () => false)",
                target,
            )
        assert fetched.value.status == 403
        sent = fetched.value.request.all_headers()
        if other_host == EVIL:
            assert sent.get("sec-fetch-site") == "cross-site"
        else:
            # Same site, other origin: the browser sends the visitor's cookies along.
            assert sent.get("sec-fetch-site") == "same-site"
            assert f"{EID}={before[EID]}" in (sent.get("cookie") or "")
        # And a form on that page, posted by the visitor's click.
        tab.page.set_content(f'<form method="post" action="{target}"><button>Go</button></form>')
        with tab.page.expect_response(lambda r: r.url == target) as posted:
            tab.page.click("button")
        assert posted.value.status == 403
        assert {n: tab.cookies()[n]["value"] for n in (EID, SID)} == before
        params = tab.visit("/product/kettle")
        assert "nc" not in params
        assert session_site.hits()[-1]["ever_id"] == before[EID]


def test_anonymize_on_a_plain_http_page_under_no_referrer(
    browser: Browser, plain_site: Site
) -> None:
    """The site's own logout button on an http site whose pages send no Referer."""
    with open_tab(browser, plain_site.url) as tab:
        tab.visit("/")
        old = tab.cookies()[EID]["value"]
        call = anonymize_between(tab, "before-logout", "after-logout")
        sent = call.all_headers()
        assert "sec-fetch-site" not in sent and "referer" not in sent  # no-referrer, over http
        # A fetch POST in cors mode names its origin whatever the referrer policy says.
        assert sent.get("origin") == plain_site.url
        response = call.response()
        assert response is not None
        assert response.status == 204, sent
        assert tab.cookies()[EID]["value"] != old


# ------------------------------------------------------------- Smart Pixel's opt-out names


def test_smart_pixel_optout_names_work_without_mapps_pixel(
    browser: Browser, plain_site: Site
) -> None:
    with open_tab(browser, plain_site.url) as tab:
        first = tab.visit("/")
        assert "nc" not in first and EID in tab.cookies()
        assert tab.page.evaluate("wtSmart.utils.optout.getAnonymousCookie()") is False
        tab.change_cookie("wtSmart.utils.optout.setAnonymousCookie()", CHOICE, present=True)
        choice = tab.cookies()[CHOICE]
        assert choice["value"] == "1" and choice["path"] == "/" and not choice["httpOnly"]
        assert tab.page.evaluate("wtSmart.utils.optout.getAnonymousCookie()") is True
        anonymous = tab.visit("/product/teapot")
        assert anonymous["nc"] == "1" and "eid" not in anonymous
        assert_no_identifier(tab)
        tab.change_cookie("wtSmart.utils.optout.deleteAnonymousCookie()", CHOICE, present=False)
        assert tab.page.evaluate("wtSmart.utils.optout.getAnonymousCookie()") is False
        identified = tab.visit("/product/kettle")
        assert "nc" not in identified
        assert EID in tab.cookies()
        rows = plain_site.hits()
        assert [r["anonymous"] for r in rows[-3:]] == [False, True, False]


def test_mapps_own_pixel_keeps_its_names(browser: Browser, plain_site: Site) -> None:
    with open_tab(browser, plain_site.url) as tab:
        tab.context.add_init_script("window.wtSmart = {utils: {optout: {mapp: true}}}")
        tab.visit("/")
        assert tab.page.evaluate("wtSmart.utils.optout.mapp") is True
        assert tab.page.evaluate("typeof wtSmart.utils.optout.setAnonymousCookie") == "undefined"
