"""Opt-out / opt-in endpoints: cookies written, forged and cross-site requests refused."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from pixel_middleware.toggles import safe_next, toggle_url

from .conftest import Site
from .helpers import set_cookies

IDS = "wtstp_eid=8123456789012345678; wtstp_sid=1234567890123456789"
EID_RE = re.compile(r"^\d{19}$")
CONFIRM = "__Host-pixel_confirm"


def link(
    site: Site, action: str, next_url: str | None = "/privacy", duration: int | None = None
) -> str:
    return toggle_url(site.settings, action, next_url, duration)  # type: ignore[arg-type]


def test_optout_in_opt_out_mode_writes_cookie_and_drops_identifiers(
    make_site: Callable[..., Site],
) -> None:
    site = make_site(enable_anonymous_function=True)
    r = site.client.get(link(site, "optout"), headers={"cookie": IDS}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/privacy"
    assert r.headers["cache-control"] == "no-store"
    cookies = set_cookies(r.headers.get_list("set-cookie"))
    choice = cookies["miCookieOptOut"]
    assert choice.value == "1"
    assert choice.attrs["max-age"] == str(2_592_000 * 60)
    assert choice.attrs["path"] == "/" and choice.attrs["samesite"] == "Lax"
    assert not choice.has("httponly") and not choice.has("secure")
    assert cookies["wtstp_eid"].expired and cookies["wtstp_sid"].expired


def test_optin_in_opt_out_mode_deletes_cookie_and_starts_new_identity(
    make_site: Callable[..., Site],
) -> None:
    site = make_site(enable_anonymous_function=True)
    r = site.client.get(
        link(site, "optin"), headers={"cookie": "miCookieOptOut=1"}, follow_redirects=False
    )
    cookies = set_cookies(r.headers.get_list("set-cookie"))
    assert cookies["miCookieOptOut"].expired and not cookies["miCookieOptOut"].has("httponly")
    assert EID_RE.match(cookies["wtstp_eid"].value)
    assert EID_RE.match(cookies["wtstp_sid"].value)


def test_opt_in_mode_flips_the_meaning_of_the_cookie(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, anonymous_opt_in=True)
    agree = site.client.get(link(site, "optin"), follow_redirects=False)
    cookies = set_cookies(agree.headers.get_list("set-cookie"))
    assert cookies["miCookieOptOut"].value == "1"
    assert EID_RE.match(cookies["wtstp_eid"].value)
    withdraw = site.client.get(
        link(site, "optout"), headers={"cookie": "miCookieOptOut=1; " + IDS}, follow_redirects=False
    )
    cookies = set_cookies(withdraw.headers.get_list("set-cookie"))
    assert cookies["miCookieOptOut"].expired
    assert cookies["wtstp_eid"].expired and cookies["wtstp_sid"].expired


def test_repeated_optin_keeps_the_identity(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    r = site.client.get(link(site, "optin"), headers={"cookie": IDS}, follow_redirects=False)
    assert set(set_cookies(r.headers.get_list("set-cookie"))) == {"miCookieOptOut"}


def test_duration_sets_lifetime_and_is_clamped(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, anonymous_cookie_minutes=1_440)
    r = site.client.get(link(site, "optout", duration=60), follow_redirects=False)
    assert (
        set_cookies(r.headers.get_list("set-cookie"))["miCookieOptOut"].attrs["max-age"] == "3600"
    )
    r = site.client.get(link(site, "optout", duration=99_999), follow_redirects=False)
    assert set_cookies(r.headers.get_list("set-cookie"))["miCookieOptOut"].attrs["max-age"] == str(
        1_440 * 60
    )


def test_https_choice_cookie_is_secure(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, https=True)
    r = site.client.get(link(site, "optout"), follow_redirects=False)
    assert set_cookies(r.headers.get_list("set-cookie"))["miCookieOptOut"].has("secure")


def test_post_form_works(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    query = parse_qs(urlsplit(link(site, "optout")).query)
    r = site.client.post(
        "/_pixel/optout?next=%2Fprivacy",
        data={"token": query["token"][0]},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert set_cookies(r.headers.get_list("set-cookie"))["miCookieOptOut"].value == "1"


def _tampered(site: Site) -> list[str]:
    good = link(site, "optout", duration=60)
    token = parse_qs(urlsplit(good).query)["token"][0]
    other = parse_qs(urlsplit(link(site, "optin")).query)["token"][0]
    return [
        "/_pixel/optout?next=%2Fprivacy",
        f"/_pixel/optout?next=%2Fprivacy&duration=60&token={token[:-2]}xx",
        f"/_pixel/optout?next=%2Fother&duration=60&token={token}",
        f"/_pixel/optout?next=%2Fprivacy&duration=9999&token={token}",
        f"/_pixel/optout?next=%2Fprivacy&token={token}",
        f"/_pixel/optout?next=%2Fprivacy&duration=abc&token={token}",
        f"/_pixel/optout?next=%2Fprivacy&token={other}",
        "/_pixel/optout?token=" + "A" * 5000,
    ]


def test_missing_or_tampered_token_is_400_and_changes_nothing(
    make_site: Callable[..., Site],
) -> None:
    site = make_site(enable_anonymous_function=True)
    for url in _tampered(site):
        r = site.client.get(url, headers={"cookie": IDS}, follow_redirects=False)
        assert r.status_code == 400, url
        assert r.headers.get_list("set-cookie") == [], url
        assert "toggle refused" in r.text


def test_token_from_another_secret_is_refused(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    forged = toggle_url(site.settings.replace(secret_key="attacker-secret-key"), "optout", "/")
    r = site.client.get(forged, follow_redirects=False)
    assert r.status_code == 400 and r.headers.get_list("set-cookie") == []


def test_expired_token_is_refused(
    make_site: Callable[..., Site], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    site = make_site(enable_anonymous_function=True, toggle_token_max_age=60)
    real = time.time
    # itsdangerous stamps tokens with time.time(): sign one an hour ago.
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    old = link(site, "optout")
    monkeypatch.setattr(time, "time", real)
    r = site.client.get(old, follow_redirects=False)
    assert r.status_code == 400 and "expired" in r.text


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"origin": "https://evil.example"},
        {"referer": "https://evil.example/page"},
        {"referer": "http://shop.example.evil.example/"},
    ],
)
def test_cross_site_requests_are_403(
    make_site: Callable[..., Site], headers: dict[str, str]
) -> None:
    site = make_site(enable_anonymous_function=True)
    r = site.client.get(
        link(site, "optout"), headers={**headers, "cookie": IDS}, follow_redirects=False
    )
    assert r.status_code == 403
    assert r.headers.get_list("set-cookie") == []


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "same-origin", "origin": "http://shop.example"},
        {"sec-fetch-site": "", "referer": "http://shop.example/privacy"},
        {"sec-fetch-site": "", "origin": "http://shop.example"},
    ],
)
def test_same_site_requests_pass(make_site: Callable[..., Site], headers: dict[str, str]) -> None:
    site = make_site(enable_anonymous_function=True)
    r = site.client.get(link(site, "optout"), headers=headers, follow_redirects=False)
    assert r.status_code == 303


def test_disabled_anonymous_function_is_404(make_site: Callable[..., Site]) -> None:
    site = make_site()
    r = site.client.get(link(site, "optout"), follow_redirects=False)
    assert r.status_code == 404 and r.headers.get_list("set-cookie") == []
    assert "not enabled" in r.text


def test_other_methods_are_405(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    r = site.client.put(link(site, "optout"))
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"


@pytest.mark.parametrize(
    "hostile",
    [
        "//evil.example",
        "///evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "/\\evil.example",
        "\\\\evil.example",
        "/%0d%0aSet-Cookie:x=1",
        "/\r\nLocation: https://evil.example",
        "http:/evil.example",
        "evil.example",
        " /ok",
        "/\tevil",
        "",
        None,
    ],
)
def test_hostile_next_redirects_home(make_site: Callable[..., Site], hostile: str | None) -> None:
    site = make_site(enable_anonymous_function=True)
    assert safe_next(hostile) in ("/", "/%0d%0aSet-Cookie:x=1")
    r = site.client.get(link(site, "optout", next_url=hostile), follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/") and not location.startswith("//")
    assert "\\" not in location and "\r" not in location and "\n" not in location


def test_good_next_is_kept() -> None:
    assert safe_next("/shop/a?b=c#d") == "/shop/a?b=c#d"


@pytest.mark.parametrize(
    ("cookie", "headers", "anonymous", "choice", "reason"),
    [
        (None, {}, False, False, "no-cookie"),
        ("miCookieOptOut=1", {}, True, True, "cookie"),
        (None, {"sec-gpc": "1"}, True, False, "gpc"),
    ],
)
def test_status_json(
    make_site: Callable[..., Site],
    cookie: str | None,
    headers: dict[str, str],
    anonymous: bool,
    choice: bool,
    reason: str,
) -> None:
    site = make_site(enable_anonymous_function=True)
    if cookie:
        headers = {**headers, "cookie": cookie}
    r = site.client.get("/_pixel/status", headers=headers)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.json() == {
        "enabled": True,
        "mode": "opt-out",
        "anonymous": anonymous,
        "choiceMade": choice,
        "reason": reason,
        "gpc": "sec-gpc" in headers,
    }
    assert r.headers.get_list("set-cookie") == []


@pytest.mark.parametrize(
    "headers",
    [
        # Plain http under "Referrer-Policy: no-referrer": the browser says nothing at all.
        {"sec-fetch-site": ""},
        {"sec-fetch-site": "", "origin": "null"},
        # A typed or bookmarked URL.
        {"sec-fetch-site": "none"},
    ],
)
def test_without_same_origin_evidence_nothing_changes_until_confirmed(
    make_site: Callable[..., Site], headers: dict[str, str]
) -> None:
    site = make_site(enable_anonymous_function=True, https=True)
    r = site.client.get(
        link(site, "optout"), headers={**headers, "cookie": IDS}, follow_redirects=False
    )
    assert r.status_code == 200 and "Confirm" in r.text
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    # The page's own policy makes its POST carry this site's Origin, whatever the site's is.
    assert '<meta name="referrer" content="same-origin">' in r.text
    cookies = set_cookies(r.headers.get_list("set-cookie"))
    assert set(cookies) == {CONFIRM}  # the choice and the identifiers are untouched
    confirm = cookies[CONFIRM]
    assert confirm.has("httponly") and confirm.has("secure") and "domain" not in confirm.attrs
    assert confirm.attrs["samesite"] == "Strict"
    form = re.search(r'<form method="post" action="([^"]+)">', r.text)
    token = re.search(r'name="confirm" value="([^"]+)"', r.text)
    assert form is not None and token is not None and token.group(1) == confirm.value
    action = form.group(1).replace("&amp;", "&")

    def post(value: str, cookie: str, **extra: str) -> httpx2.Response:
        return site.client.post(
            action,
            data={"confirm": value},
            headers={**headers, **extra, "cookie": cookie},
            follow_redirects=False,
        )

    forged = post("guessed", f"{IDS}; {CONFIRM}={confirm.value}")
    assert forged.status_code == 200 and "miCookieOptOut" not in forged.headers.get(
        "set-cookie", ""
    )
    without_cookie = post(confirm.value, IDS)
    assert "miCookieOptOut" not in without_cookie.headers.get("set-cookie", "")
    # A cookie without the __Host- prefix could have been planted by a sibling subdomain.
    planted = post(confirm.value, f"{IDS}; pixel_confirm={confirm.value}")
    assert "miCookieOptOut" not in planted.headers.get("set-cookie", "")

    done = post(confirm.value, f"{IDS}; {CONFIRM}={confirm.value}")
    assert done.status_code == 303 and done.headers["location"] == "/privacy"
    cookies = set_cookies(done.headers.get_list("set-cookie"))
    assert cookies["miCookieOptOut"].value == "1" and cookies["wtstp_eid"].expired


def test_over_plain_http_only_the_browsers_evidence_confirms(
    make_site: Callable[..., Site],
) -> None:
    """Over http a sibling subdomain can plant any cookie: no double-submit there."""
    site = make_site(enable_anonymous_function=True)
    none = {"sec-fetch-site": "", "cookie": IDS}
    r = site.client.get(link(site, "optout"), headers=none, follow_redirects=False)
    assert r.status_code == 200 and r.headers.get_list("set-cookie") == []
    action = link(site, "optout")
    planted = site.client.post(
        action,
        data={"confirm": "x"},
        headers={**none, "origin": "null", "cookie": f"{IDS}; {CONFIRM}=x; pixel_confirm=x"},
        follow_redirects=False,
    )
    assert planted.status_code == 200 and "miCookieOptOut" not in planted.headers.get(
        "set-cookie", ""
    )
    # The confirmation page's button: its POST carries this site's Origin.
    done = site.client.post(
        action, headers={**none, "origin": "http://shop.example"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert set_cookies(done.headers.get_list("set-cookie"))["miCookieOptOut"].value == "1"


def test_sibling_subdomain_is_cross_site(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    r = site.client.get(
        link(site, "optin"),
        headers={"sec-fetch-site": "same-site", "cookie": "miCookieOptOut=1"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and r.headers.get_list("set-cookie") == []
