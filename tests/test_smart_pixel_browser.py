"""Mapp's real Smart Pixel (npm, tests/smart_pixel.py) in Debian's Chromium against the collector.

The pixel only speaks https, so the site runs under uvicorn with TLS: the pixel's file and its
pages, wrapped in PixelMiddleware (``inject=False``: the page carries Mapp's pixel, not ours), whose
``/_pixel`` prefix is the collector (``trackDomain: "127.0.0.1:<port>/_pixel"``). One site per
consent mode, since the collector's settings are fixed when it starts; one Chromium per module.

Every test reads three things: the requests the browser sent (its own network events), the cookies
it stored, and the rows the store holds. Each test numbers its hits with ``cp1`` so that tests
sharing a store only read their own rows.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, Route
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route as StarletteRoute

from pixel_middleware import PixelMiddleware, PixelSettings, get_visitor
from pixel_middleware.responses import GIF
from pixel_middleware.sinks import BufferedSink

from . import smart_pixel as sp
from .browser import chromium
from .helpers import SECRET
from .servers import free_port, serve
from .stores import assert_private, read_rows

pytestmark = pytest.mark.browser

TRACK_ID: Final = sp.TRACK_ID
CHOICE: Final = "miCookieOptOut"
IDS: Final = ("wtstp_eid", "wtstp_sid")
SUPPRESSED: Final = ("cd",)
CUSTOMER: Final = "C-4711"
# How the page's pixel sends (SmartPixelConfig keyword arguments).
SEND_MODES: Final[dict[str, dict[str, Any]]] = {
    "image-queue": {},
    "image-no-queue": {"request_queue": {"activated": False}},
    "beacon": {"request_type": "beacon"},
    "obfuscation": {"request_obfuscation": True},
    # The queue as configured by default, retrying a failed hit after 1.5 s instead of 5.
    "image-queue-fast-retry": {"request_queue": {"activated": True, "resendInterval": 1500}},
}
# The truth table: the cookie as the browser holds it before the page loads (None: absent).
# "Present" is any non-empty value; neither the pixel nor the collector compares it with "1".
COOKIE_VALUES: Final[dict[str, str | None]] = {
    "absent": None,
    "empty": "",
    "two-quotes": '""',
    "1": "1",
    "0": "0",
    "other": "no",
}
WT_PATH: Final = re.compile(rf"^/_pixel/{TRACK_ID}/wt$")
OBFUSCATED_PATH: Final = re.compile(rf"^/_pixel/{TRACK_ID}/wt[a-z0-8_-]{{5,14}}$")
BATCH_PATH: Final = f"/_pixel/{TRACK_ID}/batch"


# ------------------------------------------------------------------------------------- the site


@dataclass
class Site:
    base: str
    mode: str  # "opt-out" or "opt-in"
    store: str
    sink: BufferedSink

    def page_url(self, send: str, marker: str, *, server_cookies: bool = False) -> str:
        extra = "&server_cookies=1" if server_cookies else ""
        return f"{self.base}/page/{send}?m={marker}{extra}"

    def rows(self, marker: str) -> list[dict[str, Any]]:
        assert self.sink.flush(20)
        return [r for r in read_rows(self.store) if params(r).get("cp1") == marker]

    def wait_rows(self, marker: str, count: int = 1) -> list[dict[str, Any]]:
        """The rows of hits numbered ``marker``, once ``count`` of them are stored."""
        deadline = time.monotonic() + 20
        while len(rows := self.rows(marker)) < count:
            assert time.monotonic() < deadline, f"{count} hit(s) {marker} never stored: {rows}"
            time.sleep(0.05)
        assert len(rows) == count, [r["query"] for r in rows]
        return rows


def pixel_config(mode: str, track_domain: str, send: str) -> sp.SmartPixelConfig:
    """The page's Smart Pixel configuration for consent ``mode`` and send mode ``send``."""
    return sp.SmartPixelConfig(
        track_domain=track_domain,
        user_identification={
            "enableAnonymousFunction": True,
            "anonymousOptIn": mode == "opt-in",
            "anonymousCookieName": CHOICE,
            "suppressParameter": list(SUPPRESSED),
        },
        advanced={"tabBrowsing": False},  # no resend when a tab comes back
        **SEND_MODES[send],
    )


def site_app(mode: str, track_domain: str, store: str, spool: Path) -> PixelMiddleware:
    """The pixel's file and ``/page/<send mode>?m=<marker>`` behind PixelMiddleware, whose
    settings are the page's own Smart Pixel config, pasted (``from_smart_pixel``).

    ``server_cookies=1``: the page asks for the visitor, so its answer carries the server's
    HttpOnly identifier cookies, before the pixel runs.
    """
    script = sp.smart_pixel_js().read_bytes()

    async def pixel_js(request: StarletteRequest) -> Response:
        return Response(script, media_type="application/javascript")

    async def page(request: StarletteRequest) -> Response:
        send = request.path_params["send"]
        marker = request.query_params["m"]
        if not re.fullmatch(r"[a-z0-9-]+", marker) or send not in SEND_MODES:
            return Response(status_code=404)
        if request.query_params.get("server_cookies"):
            get_visitor(request)
        html = sp.page_html(
            sp.SCRIPT_ROUTE,
            pixel_config(mode, track_domain, send),
            page_name=f"shop/{marker}",
            page={"parameter": {"1": marker}},
            customer={"id": CUSTOMER},
        )
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    app = Starlette(
        routes=[StarletteRoute(sp.SCRIPT_ROUTE, pixel_js), StarletteRoute("/page/{send}", page)]
    )
    pasted = pixel_config(mode, track_domain, "beacon")
    # Without trackDomain: the settings' track_domain is Mapp's own (for relaying), a bare host.
    config = {**pasted.init_object(), **pasted.advanced_object()}
    del config["trackDomain"]
    s = PixelSettings.from_smart_pixel(
        config,
        secret_key=SECRET,
        store=store,
        spool_dir=str(spool),
        inject=False,  # the pages carry Mapp's pixel, not this package's snippet
    )
    assert (s.mode, s.anonymous_cookie_name, s.suppress_parameter) == (mode, CHOICE, SUPPRESSED)
    return PixelMiddleware(app, settings=s)


@contextmanager
def running_site(mode: str, tmp: Path) -> Iterator[Site]:
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    store = f"sqlite:///{tmp}/hits.sqlite3"
    app = site_app(mode, sp.track_domain(base, "/_pixel"), store, tmp / "spool")
    assert isinstance(app.sink, BufferedSink)
    with serve(app, port=port, tls=True):
        yield Site(base, mode, store, app.sink)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    sp.smart_pixel_js()  # installs the package from npm on first use
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def opt_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site("opt-out", tmp_path_factory.mktemp("opt-out")) as site:
        yield site


@pytest.fixture(scope="module")
def opt_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site("opt-in", tmp_path_factory.mktemp("opt-in")) as site:
        yield site


def site_for(request: pytest.FixtureRequest, mode: str) -> Site:
    site: Site = request.getfixturevalue(mode.replace("-", "_"))
    return site


# ------------------------------------------------------------------------------- the browser


def params(row: dict[str, Any]) -> dict[str, str]:
    return dict(json.loads(row["params"]))


@dataclass
class Sent:
    """One request the browser sent to the collector."""

    method: str
    path: str
    params: dict[str, str]
    request: Request

    @classmethod
    def of(cls, request: Request) -> Sent:
        url = urlsplit(request.url)
        post = request.method == "POST"
        query = (request.post_data or "").removeprefix("?") if post else url.query
        params = dict(parse_qsl(query, keep_blank_values=True))
        return cls(request.method, url.path, params, request)

    def answered(self) -> None:
        """Wait for the collector's answer, and with it for the cookies it set."""
        assert self.request.response() is not None, self.request.failure


@dataclass
class Visitor:
    """A fresh browser context (its own cookies and storage) with one page on ``site``."""

    site: Site
    context: BrowserContext
    page: Page
    sent: list[Request] = field(default_factory=list)

    def open(self, send: str, marker: str, *, server_cookies: bool = False) -> None:
        """Load a page that tracks itself as ``marker``; returns once the pixel has run."""
        self.page.goto(self.site.page_url(send, marker, server_cookies=server_cookies))
        self.page.wait_for_function("window.smartPixelDone === true")
        assert self.page.evaluate("window.smartPixelError || null") is None

    def track(self, marker: str) -> None:
        """Track another page view from the page already loaded."""
        self.page.evaluate(
            f"wtSmart.page.data.set('shop/{marker}', {{parameter: {{1: '{marker}'}}}});"
            f"wtSmart.customer.data.set({{id: '{CUSTOMER}'}});"
            "wtSmart.trackPage();"
        )

    def requests(self, marker: str) -> list[Sent]:
        """The hits numbered ``marker`` the browser sent."""
        self.page.evaluate("0")  # every network event before this call has been delivered
        return [s for s in map(Sent.of, self.sent) if s.params.get("cp1") == marker]

    def cookies(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: dict(c) for c in self.context.cookies(self.site.base)}

    def wait_cookie(self, name: str, *, present: bool) -> None:
        """A cookie a page script writes reaches the browser's store a moment later."""
        deadline = time.monotonic() + 10
        while (name in self.cookies()) != present:
            assert time.monotonic() < deadline, f"{name} never became present={present}"
            time.sleep(0.02)

    def user_agent(self) -> str:
        return str(self.page.evaluate("navigator.userAgent"))


@contextmanager
def visitor(browser: Browser, site: Site, choice: str | None = None) -> Iterator[Visitor]:
    """A new visitor; ``choice``: the value of the choice cookie it already has (None: none)."""
    context = browser.new_context(**sp.CONTEXT_OPTIONS)
    try:
        if choice is not None:
            context.add_cookies([{"name": CHOICE, "value": choice, "url": site.base}])
        page = context.new_page()
        v = Visitor(site, context, page)
        page.on("request", lambda r: v.sent.append(r) if "/_pixel/" in r.url else None)
        yield v
    finally:
        context.close()


def check_anonymous(v: Visitor, marker: str, *, secrets: tuple[str, ...] = ()) -> None:
    """The last hit ``marker``: sent with ``nc=1`` and without identifiers, stored anonymous,
    and no identifier cookie left in the browser."""
    (row,) = v.site.wait_rows(marker)
    sent = v.requests(marker)[-1]
    sent.answered()
    assert sent.params["nc"] == "1"
    assert not {"eid", "one", "cd"} & sent.params.keys(), sent.params
    assert row["anonymous"] is True
    assert (row["ever_id"], row["session_id"], row["ip"], row["user_agent"]) == (None,) * 4
    assert row["customer_id"] is None
    assert "nc=1" in row["query"].split("&")
    assert_private([row], SUPPRESSED, [*secrets, v.user_agent(), CUSTOMER])
    assert not set(IDS) & v.cookies().keys(), v.cookies()


def check_identified(v: Visitor, marker: str) -> str:
    """The last hit ``marker``: stored with the everID and session the browser holds; the
    everID."""
    (row,) = v.site.wait_rows(marker)
    sent = v.requests(marker)[-1]
    sent.answered()
    assert "nc" not in sent.params
    cookies = v.cookies()
    ever_id = str(cookies["wtstp_eid"]["value"])
    assert re.fullmatch(r"\d{19}", ever_id)
    assert row["anonymous"] is False
    assert (row["ever_id"], row["session_id"]) == (ever_id, cookies["wtstp_sid"]["value"])
    assert re.fullmatch(r"\d{19}", row["session_id"])
    assert cookies["wtstp_sid"]["httpOnly"]  # the collector's session, not the pixel's "1"
    assert (row["ip"], row["user_agent"]) == ("127.0.0.1", v.user_agent())
    assert row["customer_id"] == CUSTOMER
    assert f"eid={ever_id}" in row["query"].split("&")
    return ever_id


# ---------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("label", COOKIE_VALUES)
@pytest.mark.parametrize("mode", ["opt-out", "opt-in"])
def test_the_truth_table_of_the_choice_cookie(
    mode: str, label: str, browser: Browser, request: pytest.FixtureRequest
) -> None:
    site = site_for(request, mode)
    value = COOKIE_VALUES[label]
    present = bool(value)
    marker = f"table-{mode}-{label}"
    with visitor(browser, site, value) as v:
        v.open("image-queue", marker)
        if present == (mode == "opt-out"):
            check_anonymous(v, marker)
        else:
            ever_id = check_identified(v, marker)
            assert v.requests(marker)[-1].params["eid"] == ever_id  # the pixel's own everID
        if value is not None:  # the pixel and the collector leave the choice as it was
            assert v.cookies()[CHOICE]["value"] == value


@pytest.mark.parametrize("anonymous", [False, True], ids=["identified", "anonymous"])
@pytest.mark.parametrize("send", ["image-queue", "image-no-queue", "beacon", "obfuscation"])
def test_every_send_mode(send: str, anonymous: bool, browser: Browser, opt_out: Site) -> None:
    marker = f"send-{send}-{'anonymous' if anonymous else 'identified'}"
    with visitor(browser, opt_out, "1" if anonymous else None) as v:
        v.open(send, marker)
        if anonymous:
            check_anonymous(v, marker)
        else:
            check_identified(v, marker)
        (sent,) = v.requests(marker)
        if send == "beacon":
            assert (sent.method, sent.path) == ("POST", BATCH_PATH)
        elif send == "obfuscation":
            assert sent.method == "GET" and OBFUSCATED_PATH.match(sent.path), sent.path
        else:
            assert sent.method == "GET" and WT_PATH.match(sent.path), sent.path


@pytest.mark.parametrize("mode", ["opt-out", "opt-in"])
def test_set_and_delete_the_anonymous_cookie(
    mode: str, browser: Browser, request: pytest.FixtureRequest
) -> None:
    # The value written is always "1": in opt-out mode it makes the visitor anonymous, in
    # opt-in mode it records consent. Deleting it does the opposite.
    site = site_for(request, mode)
    first, second, third = (f"choice-{mode}-{n}" for n in (1, 2, 3))
    with visitor(browser, site) as v:
        v.open("image-queue", first)
        if mode == "opt-out":
            ever_id = check_identified(v, first)
        else:
            check_anonymous(v, first)

        v.page.evaluate("wtSmart.utils.optout.setAnonymousCookie(90)")
        v.wait_cookie(CHOICE, present=True)
        choice = v.cookies()[CHOICE]
        assert choice["value"] == "1" and not choice["httpOnly"]
        assert abs(choice["expires"] - (time.time() + 90 * 60)) < 60, choice["expires"]
        v.track(second)
        if mode == "opt-out":
            check_anonymous(v, second, secrets=(ever_id,))
        else:
            ever_id = check_identified(v, second)

        v.page.evaluate("wtSmart.utils.optout.deleteAnonymousCookie()")
        v.wait_cookie(CHOICE, present=False)
        v.track(third)
        if mode == "opt-out":
            # Identified again, with a new everID: the old one went with the choice.
            assert check_identified(v, third) != ever_id
        else:
            check_anonymous(v, third, secrets=(ever_id,))


def test_the_servers_httponly_identifiers(browser: Browser, opt_out: Site) -> None:
    # The page's own answer set wtstp_eid and wtstp_sid, HttpOnly: the pixel can neither read
    # nor overwrite them, so it sends no eid (and one=1, fns=1 on every hit); the collector
    # takes the visitor from the cookies.
    with visitor(browser, opt_out) as v:
        v.open("image-queue", "server-ids-1", server_cookies=True)
        cookies = v.cookies()
        assert all(cookies[name]["httpOnly"] for name in IDS)
        server_ever_id = cookies["wtstp_eid"]["value"]
        assert check_identified(v, "server-ids-1") == server_ever_id
        (sent,) = v.requests("server-ids-1")
        assert "eid" not in sent.params
        assert (sent.params["one"], sent.params["fns"]) == ("1", "1")

        # Anonymous now: the pixel cannot delete HttpOnly cookies; the collector's answer does.
        v.page.evaluate("wtSmart.utils.optout.setAnonymousCookie()")
        v.wait_cookie(CHOICE, present=True)
        v.track("server-ids-2")
        check_anonymous(v, "server-ids-2", secrets=(server_ever_id,))


def test_a_new_visitors_first_hit_is_stored_as_a_new_visitor(
    browser: Browser, opt_out: Site
) -> None:
    # The pixel makes the everID in the browser, writes it (not HttpOnly) and sends it with
    # one=1 on that same hit. Mapp counts new visitors from one=1; the relay forwards the
    # stored query.
    with visitor(browser, opt_out) as v:
        v.open("image-queue", "new-visitor")
        ever_id = check_identified(v, "new-visitor")
        (sent,) = v.requests("new-visitor")
        assert (sent.params["eid"], sent.params["one"]) == (ever_id, "1")
        (row,) = v.site.rows("new-visitor")
        assert "one=1" in row["query"].split("&"), row["query"]


def test_set_tracking_opt_out(browser: Browser, opt_out: Site) -> None:
    with visitor(browser, opt_out) as v:
        v.open("image-queue", "tracking-1", server_cookies=True)
        ever_id = check_identified(v, "tracking-1")

        with v.page.expect_response(lambda r: "/optout?" in r.url) as answer:
            v.page.evaluate("wtSmart.utils.optout.setTrackingOptOut()")
        response = answer.value
        url = urlsplit(response.url)
        assert (url.path, url.query) == (f"/_pixel/{TRACK_ID}/optout", "duration=1800")
        assert response.status == 200 and response.headers["content-type"] == "image/gif"
        assert response.body() == GIF and len(GIF) == 43
        cookies = v.cookies()
        assert cookies["webtrekkOptOut"]["value"] == "1"
        assert not set(IDS) & cookies.keys(), cookies  # the collector expired the HttpOnly ones

        # The pixel sends nothing any more; a hit sent anyway (another script, a stale queue)
        # is answered with the GIF and not stored.
        v.open("image-queue", "tracking-2")
        hit = (
            f"{opt_out.base}/_pixel/{TRACK_ID}/wt?p=600,shop%2Ftracking-3,1,1x1,24,1,"
            f"{int(time.time() * 1000)},0,1x1,0&eid={ever_id}&cp1=tracking-3"
        )
        loaded = v.page.evaluate(
            "url => new Promise(done => { const i = new Image();"
            " i.onload = () => done('load'); i.onerror = () => done('error'); i.src = url; })",
            hit,
        )
        assert loaded == "load"
        assert v.requests("tracking-2") == []
        assert opt_out.rows("tracking-2") == [] and opt_out.rows("tracking-3") == []
        assert not set(IDS) & v.cookies().keys()


def test_a_queued_hit_resent_after_the_visitor_turned_anonymous(
    browser: Browser, opt_out: Site
) -> None:
    # The pixel's queue keeps the full URL (with eid) of a hit that failed, and sends it as it
    # is, even after the visitor chose to be anonymous: the collector must strip it.
    refused: list[str] = []

    def refuse(route: Route) -> None:
        refused.append(route.request.url)
        route.abort()

    with visitor(browser, opt_out) as v:
        is_hit = f"/_pixel/{TRACK_ID}/wt?"
        v.page.route(lambda url: is_hit in url, refuse, times=1)
        with v.page.expect_event("requestfailed", lambda r: is_hit in r.url):
            v.open("image-queue-fast-retry", "queued")
        v.wait_cookie("wtstp_eid", present=True)
        ever_id = v.cookies()["wtstp_eid"]["value"]
        v.page.evaluate("wtSmart.utils.optout.setAnonymousCookie()")
        v.wait_cookie(CHOICE, present=True)
        (row,) = opt_out.wait_rows("queued")
        first, resent = v.requests("queued")
        assert refused == [first.request.url] == [resent.request.url]
        resent.answered()
        assert resent.params["eid"] == ever_id and "nc" not in resent.params
        assert row["anonymous"] is True and row["ever_id"] is None
        assert_private([row], SUPPRESSED, [ever_id, CUSTOMER])
        assert not set(IDS) & v.cookies().keys()  # the pixel's own everID, expired by the answer
