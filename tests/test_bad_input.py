"""Hostile and broken input, generated: never a 500, never an identifier of an anonymous visitor."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pixel_middleware import PixelMiddleware, inject, wire
from pixel_middleware.cookies import read_cookies

from .asgi import html_app, request
from .helpers import TRACK_ID, settings

PAGE = b"<html><body>x</body></html>"
S = settings(enable_anonymous_function=True, suppress_parameter=("cd",))
APP = PixelMiddleware(html_app(PAGE, headers=[(b"content-type", b"text/html")]), settings=S)
EID = b"8123456789012345678"
FAST = hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=600))
def test_any_cookie_header_parses(raw: bytes) -> None:
    text = raw.decode("latin-1")
    found = read_cookies(text, ("a", "miCookieOptOut", "wtstp_eid"), max_length=512)
    if len(text) > 512:
        assert found is None
    else:
        assert found is not None
        assert all(isinstance(v, str) and ";" not in v for v in found.values())


@FAST
@given(st.binary(max_size=300), st.sampled_from(["/", "/_pixel/status", f"/_pixel/{TRACK_ID}/wt"]))
def test_any_cookie_bytes_never_500(cookie: bytes, path: str) -> None:
    r = request(APP, path, headers=[(b"cookie", cookie)], query=b"p=600,x")
    assert r.status < 500


@FAST
@given(st.binary(max_size=300))
def test_any_query_bytes_never_500(query: bytes) -> None:
    for path in (f"/_pixel/{TRACK_ID}/wt", "/_pixel/optout", "/_pixel/optin", "/"):
        assert request(APP, path, query=query).status < 500


@FAST
@given(st.binary(max_size=2000))
def test_any_batch_body_never_500(body: bytes) -> None:
    r = request(
        APP,
        f"/_pixel/{TRACK_ID}/batch",
        method="POST",
        headers=[(b"content-type", b"text/plain")],
        body=body,
    )
    assert r.status < 500


@FAST
@given(st.binary(max_size=500))
def test_anonymous_visitor_never_gets_an_identifier(junk: bytes) -> None:
    cookie = b"miCookieOptOut=1; wtstp_eid=" + EID + b"; " + junk.replace(b"miCookieOptOut", b"")
    r = request(APP, "/", headers=[(b"cookie", cookie)])
    assert EID not in r.body
    for line in r.header_values("set-cookie"):
        assert "Max-Age=0" in line  # only expiries


@FAST
@given(st.binary(max_size=3000))
def test_broken_html_is_injected_once_or_left_alone(page: bytes) -> None:
    chunks = inject.insert_before_body_close([page[:700], page[700:]], b"<SNIP>")
    out = None if chunks is None else b"".join(chunks)
    if out is None:
        assert b"</body" not in page.lower()
    else:
        assert out.replace(b"<SNIP>", b"", 1) == page
        assert out.lower().rfind(b"</body") == out.find(b"<SNIP>") + len(b"<SNIP>")


@FAST
@given(
    st.sampled_from([b"host", b"referer", b"origin", b"sec-fetch-site", b"sec-gpc", b"user-agent"]),
    st.binary(max_size=200),
    st.sampled_from(["/", "/_pixel/optout", "/_pixel/status", f"/_pixel/{TRACK_ID}/wt"]),
)
def test_any_header_bytes_never_500(name: bytes, value: bytes, path: str) -> None:
    r = request(APP, path, headers=[(name, value)], query=b"p=600,x")
    assert r.status < 500


# Every endpoint, every method, any body, query, cookie and browser header: never a 5xx. The
# stores' own consent-source and anonymous-session paths are switched on too.
EVERY = settings(
    enable_anonymous_function=True,
    anonymous_session=True,
    consent_source=("tcf", "gpp", "onetrust", "cookiebot", "klaro"),
    trusted_senders=("203.0.113.0/24",),
)
EVERY_APP = PixelMiddleware(
    html_app(PAGE, headers=[(b"content-type", b"text/html")]), settings=EVERY
)
PATHS = [
    "/",
    "/_pixel/optout",
    "/_pixel/optin",
    "/_pixel/status",
    "/_pixel/anonymize",
    "/_pixel/receipt",
    "/_pixel/pixel.js",
    "/_pixel/report",
    f"/_pixel/{TRACK_ID}/wt",
    f"/_pixel/{TRACK_ID}/wt.pl",
    f"/_pixel/{TRACK_ID}/wtabcdefg",
    f"/_pixel/{TRACK_ID}/batch",
    f"/_pixel/{TRACK_ID}/optout",
    f"/_pixel/{TRACK_ID},{TRACK_ID}/wt",
]
COOKIE_NAMES = [
    b"miCookieOptOut",
    b"webtrekkOptOut",
    b"wtstp_eid",
    b"wtstp_sid",
    b"wtstp_asid",
    b"wtstp_sid_new",
    b"pixel_receipt",
    b"euconsent-v2",
    b"__gpp",
    b"__gpp_sid",
    b"OptanonConsent",
    b"CookieConsent",
    b"klaro",
]


@hsettings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(PATHS),
    st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
    st.binary(max_size=400),
    st.binary(max_size=200),
    st.lists(st.tuples(st.sampled_from(COOKIE_NAMES), st.binary(max_size=80)), max_size=4),
    st.sampled_from([b"", b"same-origin", b"cross-site", b"same-site", b"none"]),
    st.booleans(),
)
def test_every_endpoint_survives_anything(
    path: str,
    method: str,
    body: bytes,
    query: bytes,
    cookies: list[tuple[bytes, bytes]],
    fetch_site: bytes,
    sp_anonymous: bool,
) -> None:
    jar = b"; ".join(name + b"=" + value for name, value in cookies)
    headers = [(b"cookie", jar), (b"sec-fetch-site", fetch_site), (b"sec-gpc", b"1")]
    if sp_anonymous:
        headers.append((b"sp-anonymous", b"1"))
    r = request(EVERY_APP, path, method=method, headers=headers, query=query, body=body)
    assert r.status < 500
    # Whatever the input, no identifier cookie is ever written for an anonymous request.
    if sp_anonymous and path.startswith(f"/_pixel/{TRACK_ID}"):
        assert not any("wtstp_eid=8" in line for line in r.header_values("set-cookie"))


def test_a_trailing_newline_is_not_taken_as_valid() -> None:
    assert wire.sanitize("abc\n") == "abc%0A"
    with pytest.raises(ValueError):
        wire.check_data_name("cp1\n")
    wire.check_data_name("cp1")  # and a valid name, once checked, stays valid
    with pytest.raises(ValueError):
        wire.check_data_name("cp1\n")
