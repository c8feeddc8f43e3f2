"""The seed checklist (DESIGN §3) and more, in Debian's Chromium: cookies read from the browser,
pixel requests read from the browser's own network events, hits read back from the server."""

from __future__ import annotations

import gzip
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from .browser import ARTIFACTS, Site, Tab, chromium, demo_site, open_tab
from .servers import edge_app, serve

pytestmark = pytest.mark.browser

SUPPRESSED = ("cd", "uc5", "uc7")
IDS = ("wtstp_eid", "wtstp_sid")
DEFAULT_MINUTES = 2_592_000
CHROME_CAP_DAYS = 400  # Chromium stores no cookie for longer than 400 days


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def opt_out_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with demo_site(tmp_path_factory.mktemp("opt-out"), "opt-out") as site:
        yield site


@pytest.fixture(scope="module")
def opt_in_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with demo_site(tmp_path_factory.mktemp("opt-in"), "opt-in") as site:
        yield site


@pytest.fixture
def tab(browser: Browser, opt_out_site: Site) -> Iterator[Tab]:
    with open_tab(browser, opt_out_site.url) as t:
        yield t


def assert_anonymous_request(params: dict[str, str]) -> None:
    assert params["nc"] == "1"
    assert "eid" not in params and "one" not in params
    for name in SUPPRESSED:
        assert name not in params


def assert_expires_in(cookie: dict[str, Any], minutes: float) -> None:
    expected = time.time() + minutes * 60
    assert abs(cookie["expires"] - expected) < 60, (cookie["expires"], expected)


def login(tab: Tab) -> None:
    tab.page.goto(tab.base + "/login")
    with tab.page.expect_navigation():
        tab.page.click("button[type=submit]")


def test_opt_out_mode_story(tab: Tab, opt_out_site: Site) -> None:
    # 1. First visit: identified, with an everID, customer data sent, no nc.
    first = tab.visit("/")
    assert "nc" not in first and "eid" not in first  # the server adds eid from the HttpOnly cookie
    assert len(tab.sent) == 1  # one page request per page view
    assert re.fullmatch(r"600,home,1,\d+x\d+,\d+,1,\d{13},0,\d+x\d+,0", first["p"]), first["p"]
    assert first["pu"] == tab.base + "/" and first["la"]
    cookies = tab.cookies()
    eid = cookies["wtstp_eid"]
    sid = cookies["wtstp_sid"]
    assert re.fullmatch(r"\d{19}", eid["value"]) and eid["httpOnly"] and eid["sameSite"] == "Lax"
    # The request carries the everID in its Cookie header; the collector turns it into eid.
    assert f"wtstp_eid={eid['value']}" in (tab.sent[0].all_headers().get("cookie") or "")
    assert "miCookieOptOut" not in cookies
    login(tab)
    product = tab.visit("/product/teapot")
    assert product["cd"] == "C-1001" and product["uc5"] == "f" and product["uc7"] == "1815"
    assert "nc" not in product
    stored = opt_out_site.hits()[-1]
    assert stored["ever_id"] == eid["value"] and f"eid={eid['value']}" in stored["query"]
    assert "cd=C-1001" in stored["query"]

    # 2. The opt-out link (default lifetime): cookie "1", identifiers gone, nc=1 from now on.
    tab.page.goto(tab.base + "/privacy")
    after = tab.click("#optout-longest a")
    cookies = tab.cookies()
    choice = cookies["miCookieOptOut"]
    assert choice["value"] == "1" and not choice["httpOnly"] and choice["sameSite"] == "Lax"
    assert_expires_in(choice, min(DEFAULT_MINUTES, CHROME_CAP_DAYS * 1440))
    assert not set(IDS) & set(cookies)
    assert_anonymous_request(after)
    assert "wtstp_eid" not in (tab.sent[-1].all_headers().get("cookie") or "")
    for path in ("/product/teapot", "/sent", "/product/kettle"):
        assert_anonymous_request(tab.visit(path))
    event = tab.click("#buy")  # the shop's own script sends an event request
    assert_anonymous_request(event)
    assert event["ct"] == "add-to-basket" and event["ck1"] == "kettle"
    anonymous_hits = [h for h in opt_out_site.hits() if h["anonymous"]]
    assert anonymous_hits and all(h["ever_id"] is None and h["ip"] is None for h in anonymous_hits)
    assert not any(re.search(r"(^|&)(eid|cd|uc5|uc7)=", h["query"]) for h in anonymous_hits)

    # 3. The opt-in link: identified again, with a new everID and a new session.
    tab.page.goto(tab.base + "/privacy")
    back = tab.click("#optin-now a")
    cookies = tab.cookies()
    assert "miCookieOptOut" not in cookies
    assert cookies["wtstp_eid"]["value"] != eid["value"]
    assert cookies["wtstp_sid"]["value"] != sid["value"]
    assert "nc" not in back and back["cd"] == "C-1001"
    # Referrer field of p: 1 for a page of the same site.
    assert back["p"].split(",")[7] == "1"


def test_opt_out_link_with_duration(tab: Tab) -> None:
    tab.visit("/privacy")
    tab.click("#optout-1-day a")
    assert_expires_in(tab.cookies()["miCookieOptOut"], 1_440)


def test_opt_in_mode_story(browser: Browser, opt_in_site: Site) -> None:
    with open_tab(browser, opt_in_site.url) as tab:
        assert_anonymous_request(tab.visit("/"))
        login(tab)
        assert_anonymous_request(tab.visit("/product/teapot"))
        assert not set(IDS) & set(tab.cookies())

        tab.page.goto(tab.base + "/privacy")
        agreed = tab.click("#optin-longest a")
        cookies = tab.cookies()
        assert cookies["miCookieOptOut"]["value"] == "1"
        assert re.fullmatch(r"\d{19}", cookies["wtstp_eid"]["value"])
        assert "nc" not in agreed and agreed["cd"] == "C-1001"

        withdrawn = tab.click("#optout-now a")
        cookies = tab.cookies()
        assert "miCookieOptOut" not in cookies and not set(IDS) & set(cookies)
        assert_anonymous_request(withdrawn)
        assert all(h["ever_id"] is None for h in opt_in_site.hits() if h["anonymous"])


def test_javascript_api_in_opt_out_mode(tab: Tab) -> None:
    tab.visit("/product/teapot")
    assert "wtstp_eid" in tab.cookies()
    assert tab.page.evaluate("pixelMiddleware.optout.getAnonymousCookie()") is False
    tab.change_cookie(
        "pixelMiddleware.optout.setAnonymousCookie(90)", "miCookieOptOut", present=True
    )
    assert tab.page.evaluate("pixelMiddleware.optout.getAnonymousCookie()") is True
    choice = tab.cookies()["miCookieOptOut"]
    assert choice["value"] == "1" and choice["path"] == "/" and choice["sameSite"] == "Lax"
    assert_expires_in(choice, 90)
    # The very next request follows the new state, and its answer drops the identifiers.
    event = tab.run("pixelMiddleware.track('add-to-basket', {ck1: 'teapot'})")
    assert_anonymous_request(event)
    assert event["ct"] == "add-to-basket" and event["ck1"] == "teapot"
    assert not set(IDS) & set(tab.cookies())

    big = tab.run("pixelMiddleware.track('big', {ck1: 'x'.repeat(40000), ck2: 'kept'})")
    assert len(tab.sent[-1].url) <= 30_720  # Mapp's limit: the oversized parameter is dropped
    assert "ck1" not in big and big["ck2"] == "kept" and big["nc"] == "1"

    tab.change_cookie(
        "pixelMiddleware.optout.deleteAnonymousCookie()", "miCookieOptOut", present=False
    )
    assert "miCookieOptOut" not in tab.cookies()
    again = tab.run("pixelMiddleware.track('add-to-basket', {ck1: 'kettle'})")
    assert "nc" not in again
    assert "wtstp_eid" in tab.cookies()  # a new everID, made by the hit's answer


def test_javascript_api_in_opt_in_mode_with_default_lifetime(
    browser: Browser, opt_in_site: Site
) -> None:
    with open_tab(browser, opt_in_site.url) as tab:
        assert_anonymous_request(tab.visit("/"))
        tab.change_cookie(
            "pixelMiddleware.optout.setAnonymousCookie()", "miCookieOptOut", present=True
        )
        assert_expires_in(tab.cookies()["miCookieOptOut"], CHROME_CAP_DAYS * 1440)
        agreed = tab.run("pixelMiddleware.track('agree')")
        assert "nc" not in agreed
        assert "wtstp_eid" in tab.cookies()
        tab.change_cookie(
            "pixelMiddleware.optout.deleteAnonymousCookie()", "miCookieOptOut", present=False
        )
        assert_anonymous_request(tab.run("pixelMiddleware.track('withdraw')"))
        assert not set(IDS) & set(tab.cookies())


def test_global_privacy_control(browser: Browser, opt_out_site: Site) -> None:
    with open_tab(browser, opt_out_site.url, extra_http_headers={"Sec-GPC": "1"}) as tab:
        login(tab)
        assert_anonymous_request(tab.visit("/product/teapot"))
        assert not set(IDS) & set(tab.cookies())
        assert "anonymously" in tab.page.inner_text("#state")


def test_strict_csp_page_still_tracks(tab: Tab) -> None:
    violations: list[str] = []
    tab.page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    response = tab.page.goto(tab.base + "/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    tab.page.wait_for_function("window.pixelMiddleware && window.pixelMiddleware.lastRequest")
    assert tab.pixel_requests()
    assert violations == []


def test_shared_vectors_in_the_browser(tab: Tab) -> None:
    tab.visit("/")
    cases = json.loads((Path(__file__).parent / "vectors.json").read_text())["cases"]
    results = tab.page.evaluate(
        """cases => cases.map(c => {
            const rules = window.pixelMiddleware.rules;
            const anonymous = rules.isAnonymous(c.settings, c.cookie, c.gpc, true);
            return {anonymous, params: rules.enforce(c.params, c.settings, anonymous)};
        })""",
        cases,
    )
    for case, result in zip(cases, results, strict=True):
        assert result == case["expected"], case["name"]


def test_image_request_when_there_is_no_beacon(browser: Browser, opt_out_site: Site) -> None:
    with open_tab(browser, opt_out_site.url) as tab:
        tab.context.add_init_script("delete Navigator.prototype.sendBeacon")
        params = tab.visit("/product/teapot")
        assert tab.sent[-1].resource_type == "image" and tab.sent[-1].method == "GET"
        assert params["p"].startswith("600,product/teapot,1,")


def test_beacon_is_used_where_available(tab: Tab) -> None:
    tab.visit("/")
    assert tab.sent[-1].method == "POST"  # navigator.sendBeacon


def test_script_is_small() -> None:
    script = (Path(__file__).parents[1] / "static" / "pixel.js").read_bytes()
    assert len(gzip.compress(script, 9)) <= 4096


def test_screenshots_of_privacy_page(tab: Tab) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    tab.visit("/privacy")
    tab.page.screenshot(path=str(ARTIFACTS / "privacy-identified.png"), full_page=True)
    tab.click("#optout-longest a")
    tab.page.screenshot(path=str(ARTIFACTS / "privacy-anonymous.png"), full_page=True)
    assert (ARTIFACTS / "privacy-identified.png").stat().st_size > 1000
    assert "anonymously" in tab.page.inner_text("#state")


@pytest.fixture(scope="module")
def edge_site() -> Iterator[str]:
    from pixel_middleware import PixelMiddleware

    from .helpers import settings

    with serve(PixelMiddleware(edge_app(), settings=settings())) as url:
        yield url


def test_page_without_body_close_still_renders(browser: Browser, edge_site: str) -> None:
    with open_tab(browser, edge_site) as tab:
        tab.page.goto(tab.base + "/nobody")
        assert tab.page.inner_text("#title") == "Unclosed"
        assert tab.page.query_selector("#pixel-middleware-config") is None


def test_streamed_page_is_not_held_back(browser: Browser, edge_site: str) -> None:
    with open_tab(browser, edge_site) as tab:
        tab.page.goto(tab.base + "/stream", wait_until="commit")
        # The rest of the page waits for /release: a buffering middleware would show nothing.
        tab.page.wait_for_selector("#first", timeout=10_000)
        assert tab.page.query_selector("#second") is None
        with urllib.request.urlopen(tab.base + "/release", timeout=10) as r:  # noqa: S310
            assert r.read() == b"released"
        tab.page.wait_for_selector("#second", timeout=10_000)


def test_server_side_page_views_are_not_counted_twice(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with (
        demo_site(tmp_path_factory.mktemp("ssr"), "opt-out", server_side_page_views=True) as site,
        open_tab(browser, site.url) as tab,
    ):
        for path in ("/", "/product/teapot", "/privacy"):
            tab.page.goto(tab.base + path)
            tab.page.wait_for_function("window.pixelMiddleware !== undefined")
        tab.page.goto(tab.base + "/product/kettle")
        tab.page.wait_for_function("window.pixelMiddleware !== undefined")
        clicked = tab.run("document.querySelector('#buy').click()")
        assert clicked["ct"] == "add-to-basket"
        page_requests = [p for p in tab.pixel_requests() if "ct" not in dict(p)]
        assert page_requests == []  # the browser sent events only
        rows = site.hits()
        pages = [r["page_name"] for r in rows if "ct=" not in r["query"]]
        assert pages == ["home", "product/teapot", "privacy", "product/kettle"]
        assert len(rows) == 5


def test_https_cookies_are_secure(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with (
        demo_site(tmp_path_factory.mktemp("tls"), "opt-out", tls=True) as site,
        open_tab(browser, site.url, ignore_https_errors=True) as tab,
    ):
        tab.visit("/privacy")
        cookies = tab.cookies()
        assert cookies["wtstp_eid"]["secure"] and cookies["wtstp_sid"]["secure"]
        tab.click("#optout-1-day a")
        assert tab.cookies()["miCookieOptOut"]["secure"]  # written by the server
        tab.change_cookie(
            "pixelMiddleware.optout.deleteAnonymousCookie()", "miCookieOptOut", present=False
        )
        assert "miCookieOptOut" not in tab.cookies()
        tab.change_cookie(
            "pixelMiddleware.optout.setAnonymousCookie(5)", "miCookieOptOut", present=True
        )
        choice = tab.cookies()["miCookieOptOut"]
        assert choice["secure"] and choice["sameSite"] == "Lax"  # written by the script
        assert_expires_in(choice, 5)
