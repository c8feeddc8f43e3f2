"""Nobody else flips a visitor's consent (issue #8, point 10), in Debian's Chromium.

A toggle link or form copied from the site ("harvested") and used from another site must change
nothing; the visitor's own click on the site's link or form must keep working. Over plain http on
a host name that is not potentially trustworthy (``shop.test``: Chromium sends it no
``Sec-Fetch-*``) and over https (where it does), in both consent modes, with the pages under
``Referrer-Policy: no-referrer`` (then no ``Referer``, and ``Origin: null`` on a form POST).
Checked is what the browser really did: the headers it sent, the cookies it keeps, the page
request it sends next.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jinja2
import pytest
from playwright.sync_api import Browser, Request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from example_site.app import demo_settings
from pixel_middleware import JsonLinesSink, PixelMiddleware, PixelSettings, get_visitor
from pixel_middleware.consent import CONFIRM_COOKIE
from pixel_middleware.decision import Action, cookie_write_for
from pixel_middleware.templating import register
from pixel_middleware.toggles import toggle_query, toggle_url

from .browser import Tab, chromium, open_tab
from .servers import serve

pytestmark = pytest.mark.browser

CHOICE, EID = "miCookieOptOut", "wtstp_eid"
SHOP, SIBLING, EVIL = "shop.test", "sub.shop.test", "evil.test"
# The same shop under another name, where every response (the confirmation page included) is
# forced to no-referrer, as a site-wide security middleware outside the pixel one might do.
STRICT = "strict.shop.test"
NEXT = "/choices?policy=no-referrer"
# The site's own page: the template helpers' links and forms.
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Choices</title></head>
<body>
<p id="links">{{ pixel_optout_link("Count me anonymously", next=next) }}
{{ pixel_optin_link("Recognise me", next=next) }}</p>
<div id="forms">{{ pixel_optout_form("Count me anonymously", next=next) }}
{{ pixel_optin_form("Recognise me", next=next) }}</div>
</body></html>"""


@dataclass
class Shop:
    url: str  # http(s)://shop.test:<port>
    settings: PixelSettings

    def at(self, host: str) -> str:
        return self.url.replace(SHOP, host, 1)


def shop_app(settings: PixelSettings, hits: Path) -> Any:
    """``/choices`` (its Referrer-Policy from ``?policy=``) behind the middleware."""
    template = register(jinja2.Environment(autoescape=True), settings).from_string(PAGE)

    async def choices(request: StarletteRequest) -> Response:
        get_visitor(request).page("choices")
        policy = request.query_params.get("policy")
        headers = {"referrer-policy": policy} if policy else {}
        return HTMLResponse(template.render(next=NEXT), headers=headers)

    app = Starlette(routes=[Route("/choices", choices)])
    return strict_host(PixelMiddleware(app, settings=settings, sink=JsonLinesSink(hits)))


def strict_host(app: Any) -> Any:
    """Every response to a request for ``STRICT`` says ``Referrer-Policy: no-referrer``."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        if not headers.get(b"host", b"").startswith(STRICT.encode()):
            await app(scope, receive, send)
            return

        async def forced(message: Any) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message["headers"] if k.lower() != b"referrer-policy"]
                message = {**message, "headers": [*kept, (b"referrer-policy", b"no-referrer")]}
            await send(message)

        await app(scope, receive, forced)

    return wrapped


@dataclass
class Attacker:
    """Another site: pages that use a harvested toggle, under the referrer policy they ask."""

    scheme: str
    port: int = 0
    pages: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def put(self, host: str, name: str, body: str, policy: str | None) -> str:
        self.pages[name] = (body, policy)
        return f"{self.scheme}://{host}:{self.port}/{name}"


@contextmanager
def running_attacker(tls: bool) -> Iterator[Attacker]:
    attacker = Attacker("https" if tls else "http")

    async def page(request: StarletteRequest) -> Response:
        found = attacker.pages.get(request.path_params["name"])
        if found is None:
            return Response(status_code=404)
        body, policy = found
        return HTMLResponse(body, headers={"referrer-policy": policy} if policy else {})

    with serve(Starlette(routes=[Route("/{name}", page)]), tls=tls) as url:
        attacker.port = int(urlsplit(url).port or 0)
        yield attacker


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(hosts=(SHOP, STRICT, SIBLING, EVIL)) as b:
        yield b


@pytest.fixture(scope="module")
def shops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Shop]]:
    """The shop in both modes, over http and over https: ``shops[scheme, mode]``."""
    tmp = tmp_path_factory.mktemp("consent")
    with ExitStack() as stack:
        out = {}
        for scheme in ("http", "https"):
            for mode in ("opt-out", "opt-in"):
                s = demo_settings(mode, store=None, spool_dir=str(tmp / "spool"))
                app = shop_app(s, tmp / f"hits-{scheme}-{mode}.jsonl")
                url = stack.enter_context(serve(app, tls=scheme == "https"))
                out[scheme, mode] = Shop(url.replace("127.0.0.1", SHOP), s)
        yield out


@pytest.fixture(scope="module")
def attackers() -> Iterator[dict[str, Attacker]]:
    with running_attacker(False) as plain, running_attacker(True) as tls:
        yield {"http": plain, "https": tls}


# ---------------------------------------------------------------------------------- helpers


def toggle_requests(tab: Tab) -> list[Request]:
    """Every request the page sends to a toggle endpoint, in order."""
    seen: list[Request] = []
    tab.page.on(
        "request", lambda r: seen.append(r) if "/_pixel/opt" in urlsplit(r.url).path else None
    )
    return seen


def page_request(tab: Tab, count: int) -> dict[str, str]:
    """The page request of the page just loaded (the ``count + 1``-th), once answered."""
    tab.page.wait_for_function(
        "() => window.pixelMiddleware && window.pixelMiddleware.lastRequest", timeout=10_000
    )
    while len(tab.sent) <= count:
        tab.page.wait_for_timeout(20)
    request = tab.sent[-1]
    request.response()
    return dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))


def state(tab: Tab) -> tuple[str | None, str | None]:
    """(choice cookie value, everID) as the browser stores them."""
    cookies = tab.cookies()
    return (
        cookies[CHOICE]["value"] if CHOICE in cookies else None,
        cookies[EID]["value"] if EID in cookies else None,
    )


def on_confirmation_page(tab: Tab) -> bool:
    confirm = tab.page.query_selector("button.pixel-confirm")
    return "/_pixel/opt" in tab.page.url and confirm is not None


def evidence(request: Request) -> dict[str, str | None]:
    headers = request.all_headers()
    return {k: headers.get(k) for k in ("sec-fetch-site", "origin", "referer")}


def no_evidence(request: Request) -> bool:
    """The browser said nothing about where the request came from."""
    e = evidence(request)
    return e["sec-fetch-site"] is None and e["referer"] is None and e["origin"] in (None, "null")


def writes_choice(shop: Shop, action: Action) -> bool:
    return cookie_write_for(shop.settings, action)


# ---------------------------------------------------------------- the visitor's own click


def own_toggle(tab: Tab, action: Action, kind: str) -> tuple[bool, dict[str, str]]:
    """Click the site's own ``action`` link or form, and Confirm if the site asks first.

    Returns whether it asked, and the request of the page the toggle leads to.
    """
    selector = f"#links a.pixel-{action}" if kind == "link" else f"#forms .pixel-{action} button"
    count = len(tab.sent)
    before = state(tab)
    with tab.page.expect_navigation(timeout=10_000):
        tab.page.click(selector)
    asked = on_confirmation_page(tab)
    if asked:
        assert state(tab) == before, "the confirmation page must change nothing"
        assert tab.page.title() == "Confirm your privacy choice"
        # Over https the page also sets a __Host- double-submit cookie; over http no cookie
        # could prove anything (a sibling subdomain can plant one), so none is set.
        assert (CONFIRM_COOKIE in tab.cookies()) == (urlsplit(tab.page.url).scheme == "https")
        with tab.page.expect_navigation(timeout=10_000):
            tab.page.click("button.pixel-confirm")
    assert urlsplit(tab.page.url).path == "/choices"
    return asked, page_request(tab, count)


def away_and_back(mode: str) -> list[tuple[Action, bool]]:
    """The toggles that leave the mode's default state and come back, with the anonymity each
    leads to."""
    if mode == "opt-in":
        return [("optin", False), ("optout", True)]
    return [("optout", True), ("optin", False)]


def assert_applied(
    tab: Tab, shop: Shop, action: Action, anonymous: bool, params: dict[str, str]
) -> None:
    """The toggle took effect: the choice cookie, the everID and the next page request."""
    choice, eid = state(tab)
    assert (choice == "1") == writes_choice(shop, action), (action, choice)
    assert (eid is None) == anonymous, eid
    assert (params.get("nc") == "1") == anonymous, params
    if choice and shop.url.startswith("https:"):
        assert tab.cookies()[CHOICE]["secure"]


@pytest.mark.parametrize("kind", ["link", "form"])
@pytest.mark.parametrize("mode", ["opt-out", "opt-in"])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_own_click_under_no_referrer(
    browser: Browser, shops: dict[tuple[str, str], Shop], scheme: str, mode: str, kind: str
) -> None:
    shop = shops[scheme, mode]
    with open_tab(browser, shop.url, ignore_https_errors=True) as tab:
        sent = toggle_requests(tab)
        first = tab.visit(NEXT)
        assert (first.get("nc") == "1") == (mode == "opt-in")
        for action, anonymous in away_and_back(mode):
            asked, params = own_toggle(tab, action, kind)
            request = sent[-2] if asked else sent[-1]
            assert request.method == ("GET" if kind == "link" else "POST")
            if scheme == "http":
                # No Sec-Fetch-*, no Referer, Origin absent or "null": the site has to ask.
                assert no_evidence(request), evidence(request)
                assert asked, f"{action} by {kind} over http under no-referrer was not asked"
                # The confirmation page's button: a POST with same-origin evidence.
                assert sent[-1].method == "POST"
                assert evidence(sent[-1])["origin"] == shop.url
            else:
                assert evidence(request)["sec-fetch-site"] == "same-origin"
                assert not asked, f"{action} by {kind} over https was not applied at once"
            assert_applied(tab, shop, action, anonymous, params)


@pytest.mark.parametrize("kind", ["link", "form"])
@pytest.mark.parametrize("mode", ["opt-out", "opt-in"])
def test_own_click_when_every_response_is_no_referrer(
    browser: Browser, shops: dict[tuple[str, str], Shop], mode: str, kind: str
) -> None:
    """Every page of the site is served with no-referrer, even the confirmation page gets the
    header: its own <meta name="referrer"> still makes its button's POST carry the Origin."""
    shop = shops["http", mode]
    with open_tab(browser, shop.at(STRICT)) as tab:
        sent = toggle_requests(tab)
        tab.visit("/choices")
        for action, anonymous in away_and_back(mode):
            asked, params = own_toggle(tab, action, kind)
            assert asked
            assert no_evidence(sent[-2]), evidence(sent[-2])
            assert evidence(sent[-1])["origin"] == shop.at(STRICT), evidence(sent[-1])
            assert_applied(tab, Shop(shop.at(STRICT), shop.settings), action, anonymous, params)


@pytest.mark.parametrize("kind", ["link", "form"])
def test_own_click_with_a_referrer_over_http_needs_no_confirmation(
    browser: Browser, shops: dict[tuple[str, str], Shop], kind: str
) -> None:
    shop = shops["http", "opt-out"]
    with open_tab(browser, shop.url) as tab:
        sent = toggle_requests(tab)
        tab.visit("/choices")  # the browser's default policy: a same-origin Referer in full
        asked, params = own_toggle(tab, "optout", kind)
        assert not asked
        e = evidence(sent[-1])
        assert e["sec-fetch-site"] is None  # not a trustworthy origin: the Referer told
        assert (e["referer"] or "").startswith(shop.url + "/choices")
        assert_applied(tab, shop, "optout", True, params)


# ------------------------------------------------------------------- harvested toggles

# (mode, the visitor's choice cookie before, the toggle another site tries)
CASES: list[tuple[str, str | None, Action]] = [
    ("opt-out", None, "optout"),  # make an identified visitor anonymous
    ("opt-out", "1", "optin"),  # identify a visitor who opted out
    ("opt-in", None, "optin"),  # identify a visitor who never agreed
]
# (scheme, attacker host, its referrer policy, expected answer), the cases tried with each
ATTACKS: list[tuple[str, str, str | None, str | int, list[int]]] = [
    ("http", EVIL, "no-referrer", "confirm", [0, 1, 2]),
    ("https", SIBLING, "no-referrer", 403, [0, 1, 2]),
    ("http", EVIL, None, 403, [0]),  # the Referer names the other site
    ("https", EVIL, "no-referrer", 403, [2]),
]
HARVESTED = [
    pytest.param(
        scheme, host, policy, expected, *CASES[case], kind,
        id=f"{scheme}-{host}-{policy or 'default'}-{CASES[case][0]}-{CASES[case][2]}-{kind}",
    )
    for scheme, host, policy, expected, cases in ATTACKS
    for case in cases
    for kind in ("link", "form")
]  # fmt: skip


def harvested_page(shop: Shop, action: Action, kind: str, script: str = "") -> str:
    """Another site's page with a copy of the site's toggle: a link to click, or a form that
    submits itself (with a guessed confirmation value)."""
    if kind == "link":
        href = html.escape(shop.url + toggle_url(shop.settings, action, "/choices"))
        return f'<!doctype html><html><body><a id="go" href="{href}">Win a prize</a></body></html>'
    token = html.escape(toggle_query(shop.settings, action, "/choices", None)["token"])
    target = html.escape(f"{shop.url}/_pixel/{action}?next=/choices")
    return (
        f'<!doctype html><html><body><form id="go" method="post" action="{target}">'
        f'<input type="hidden" name="token" value="{token}">'
        '<input type="hidden" name="confirm" value="guessed"></form>'
        f"<script>{script}addEventListener('load', () => document.forms.go.submit())</script>"
        "</body></html>"
    )


def follow_harvested(tab: Tab, url: str, action: Action, kind: str) -> Any:
    """Open another site's page and follow its toggle; returns the toggle's response once the
    browser shows the shop's answer (or where it redirected)."""
    with tab.page.expect_response(lambda r: f"/_pixel/{action}" in r.url, timeout=10_000) as info:
        tab.page.goto(url, wait_until="commit")
        if kind == "link":
            tab.page.click("#go")
    tab.page.wait_for_url(lambda u: u.startswith(tab.base), timeout=10_000)
    tab.page.wait_for_load_state()
    return info.value


@pytest.mark.parametrize(
    ("scheme", "host", "policy", "expected", "mode", "choice", "action", "kind"), HARVESTED
)
def test_harvested_toggle_changes_nothing(
    browser: Browser,
    shops: dict[tuple[str, str], Shop],
    attackers: dict[str, Attacker],
    scheme: str,
    host: str,
    policy: str | None,
    expected: str | int,
    mode: str,
    choice: str | None,
    action: Action,
    kind: str,
) -> None:
    shop = shops[scheme, mode]
    with open_tab(browser, shop.url, ignore_https_errors=True) as tab:
        if choice:
            tab.context.add_cookies([{"name": CHOICE, "value": choice, "url": shop.url}])
        anonymous = tab.visit("/choices").get("nc") == "1"
        before = state(tab)
        page = harvested_page(shop, action, kind)
        url = attackers[scheme].put(host, f"{mode}-{action}-{kind}-{host}-{policy}", page, policy)
        response = follow_harvested(tab, url, action, kind)
        sent = evidence(response.request)
        if scheme == "http" and policy == "no-referrer":
            assert no_evidence(response.request), sent
        elif scheme == "http":
            assert (sent["referer"] or sent["origin"] or "").startswith(f"http://{EVIL}:")
        else:
            assert sent["sec-fetch-site"] == ("same-site" if host == SIBLING else "cross-site")
        if expected == "confirm":
            assert response.status == 200 and on_confirmation_page(tab)
        else:
            assert response.status == expected, (response.status, response.text())
        assert state(tab) == before  # the choice and the everID as they were
        again = tab.visit("/choices")
        assert (again.get("nc") == "1") == anonymous
        assert state(tab) == before


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_toggle_link_pasted_into_the_address_bar_asks_first(
    browser: Browser, shops: dict[tuple[str, str], Shop], scheme: str
) -> None:
    shop = shops[scheme, "opt-in"]
    with open_tab(browser, shop.url, ignore_https_errors=True) as tab:
        tab.visit("/choices")
        before = state(tab)
        response = tab.page.goto(shop.url + toggle_url(shop.settings, "optin", "/choices"))
        assert response is not None and response.status == 200
        assert evidence(response.request)["sec-fetch-site"] in (None, "none")
        assert on_confirmation_page(tab) and state(tab) == before == (None, None)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_sibling_subdomain_cannot_plant_the_confirmation_cookie(
    browser: Browser,
    shops: dict[tuple[str, str], Shop],
    attackers: dict[str, Attacker],
    scheme: str,
) -> None:
    """A sibling subdomain can write a cookie for the parent domain ("cookie tossing"): it plants
    a double-submit value (the real ``__Host-`` name, which the browser refuses with a Domain,
    and the same name without the prefix) and posts the harvested form with that value, under
    no-referrer. The visitor's choice must stay as it was: over https ``Sec-Fetch-Site:
    same-site`` stops it, over http no cookie counts without the browser's own evidence."""
    shop = shops[scheme, "opt-in"]
    secure = "; secure" if scheme == "https" else ""
    plant = "".join(
        f'document.cookie = "{name}=planted; domain={SHOP}; path=/{secure}"; '
        for name in (CONFIRM_COOKIE, CONFIRM_COOKIE.removeprefix("__Host-"))
    )
    page = harvested_page(shop, "optin", "form", plant).replace('"guessed"', '"planted"')
    url = attackers[scheme].put(SIBLING, f"plant-{scheme}", page, "no-referrer")
    with open_tab(browser, shop.url, ignore_https_errors=True) as tab:
        assert tab.visit("/choices")["nc"] == "1"
        response = follow_harvested(tab, url, "optin", "form")
        sent_cookies = response.request.all_headers().get("cookie") or ""
        assert f"{CONFIRM_COOKIE}=" not in sent_cookies  # the browser refused the plant
        assert "pixel_confirm=planted" in sent_cookies  # the lookalike got through
        assert state(tab) == (None, None), (response.status, evidence(response.request))
        assert tab.visit("/choices")["nc"] == "1"
