"""Identifier cookies on page responses: created, kept, expired, rotated; every attribute."""

from __future__ import annotations

import re
from collections.abc import Callable

from .conftest import Site
from .helpers import set_cookies

EID_RE = re.compile(r"^\d{19}$")


def test_new_identified_visitor_gets_everid_and_session(make_site: Callable[..., Site]) -> None:
    site = make_site()
    r = site.client.get("/")
    cookies = set_cookies(r.headers.get_list("set-cookie"))
    eid, sid = cookies["wtstp_eid"], cookies["wtstp_sid"]
    assert EID_RE.match(eid.value) and eid.value.startswith("8")
    assert eid.attrs["max-age"] == str(180 * 86_400)
    assert eid.attrs["path"] == "/" and eid.attrs["samesite"] == "Lax"
    assert eid.has("httponly") and not eid.has("secure") and "domain" not in eid.attrs
    assert EID_RE.match(sid.value)
    assert "max-age" not in sid.attrs and "expires" not in sid.attrs  # a session cookie
    assert sid.has("httponly") and sid.attrs["samesite"] == "Lax"
    assert eid.value not in r.text and sid.value not in r.text


def test_https_cookies_are_secure(make_site: Callable[..., Site]) -> None:
    site = make_site(https=True)
    cookies = set_cookies(site.client.get("/").headers.get_list("set-cookie"))
    assert cookies["wtstp_eid"].has("secure") and cookies["wtstp_sid"].has("secure")


def test_lifetime_domain_and_httponly_come_from_settings(make_site: Callable[..., Site]) -> None:
    site = make_site(
        ever_id_days=30, cookie_domain=".shop.example", identifier_cookies_httponly=False
    )
    cookies = set_cookies(site.client.get("/").headers.get_list("set-cookie"))
    assert cookies["wtstp_eid"].attrs["max-age"] == str(30 * 86_400)
    assert cookies["wtstp_eid"].attrs["domain"] == ".shop.example"
    assert not cookies["wtstp_eid"].has("httponly")


def test_returning_visitor_keeps_its_everid(make_site: Callable[..., Site]) -> None:
    site = make_site()
    site.client.get("/")
    r = site.client.get("/")
    assert r.headers.get_list("set-cookie") == []


def test_invalid_everid_is_replaced(make_site: Callable[..., Site]) -> None:
    site = make_site()
    for bad in ("123", "abcdefghijklmnopqrs", "81234567890123456789", ""):
        r = site.client.get(
            "/", headers={"cookie": f"wtstp_eid={bad}; wtstp_sid=1234567890123456789"}
        )
        cookies = set_cookies(r.headers.get_list("set-cookie"))
        assert EID_RE.match(cookies["wtstp_eid"].value)
        assert "wtstp_sid" not in cookies


def test_anonymous_visitor_gets_no_identifier(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    r = site.client.get("/", headers={"cookie": "miCookieOptOut=1"})
    assert r.headers.get_list("set-cookie") == []


def test_anonymous_visitor_loses_identifiers_it_still_has(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, cookie_domain="shop.example")
    r = site.client.get(
        "/",
        headers={
            "cookie": "miCookieOptOut=1; wtstp_eid=8123456789012345678; "
            "wtstp_sid=1234567890123456789"
        },
    )
    cookies = set_cookies(r.headers.get_list("set-cookie"))
    for name in ("wtstp_eid", "wtstp_sid"):
        c = cookies[name]
        assert c.value == "" and c.expired and "1970" in c.attrs["expires"]
        assert c.attrs["path"] == "/" and c.attrs["domain"] == "shop.example"
    assert "8123456789012345678" not in r.text


def test_opt_in_mode_is_anonymous_until_consent(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, anonymous_opt_in=True)
    assert site.client.get("/").headers.get_list("set-cookie") == []
    r = site.client.get("/", headers={"cookie": "miCookieOptOut=1"})
    assert {"wtstp_eid", "wtstp_sid"} <= set(set_cookies(r.headers.get_list("set-cookie")))


def test_gpc_visitor_gets_no_identifier(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    r = site.client.get("/", headers={"sec-gpc": "1"})
    assert r.headers.get_list("set-cookie") == []
    assert '"anonymous":true' in r.text


def test_publicly_cached_page_does_not_hand_out_an_everid(make_site: Callable[..., Site]) -> None:
    site = make_site()
    r = site.client.get("/cached")
    assert r.headers.get_list("set-cookie") == []


def test_logout_rotates_identity(make_site: Callable[..., Site]) -> None:
    site = make_site()
    first = set_cookies(site.client.get("/").headers.get_list("set-cookie"))
    old_eid = first["wtstp_eid"].value
    r = site.client.post("/logout", follow_redirects=False)
    new = set_cookies(r.headers.get_list("set-cookie"))
    assert EID_RE.match(new["wtstp_eid"].value) and new["wtstp_eid"].value != old_eid
    assert new["wtstp_sid"].value != first["wtstp_sid"].value
    # What was built before anonymize() keeps the old identity; after it, the new one, no customer.
    assert f"eid={old_eid}" in site.urls["before"] and "cd=C-42" in site.urls["before"]
    assert f"eid={new['wtstp_eid'].value}" in site.urls["after"]
    assert "cd=" not in site.urls["after"]


def test_pixel_url_holds_no_everid_by_default(make_site: Callable[..., Site]) -> None:
    site = make_site()
    r = site.client.get("/?login=1")
    eid = set_cookies(r.headers.get_list("set-cookie"))["wtstp_eid"].value
    assert eid not in r.text
    assert "cd=C-42" in r.text  # identified: customer data is sent


def test_oversized_cookie_header_fails_closed(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, max_cookie_header_bytes=1024)
    r = site.client.get(
        "/", headers={"cookie": "junk=" + "x" * 5000 + "; wtstp_eid=8123456789012345678"}
    )
    assert r.status_code == 200
    assert r.headers.get_list("set-cookie") == []
    assert '"anonymous":true' in r.text and "8123456789012345678" not in r.text
