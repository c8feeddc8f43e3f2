"""The collector as Mapp's real clients meet it: paths, answers, what the server decides itself."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from pixel_middleware import Hit, PixelMiddleware, wire
from pixel_middleware.assets import browser_script
from pixel_middleware.responses import GIF
from pixel_middleware.standalone import CollectorApp

from .asgi import html_app, request
from .conftest import Site
from .helpers import TRACK_ID, injected_config, names, set_cookies, settings
from .stores import read_rows

EID = "8123456789012345678"
SID = "1234567890123456789"
Q = "p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0"
WT = f"/_pixel/{TRACK_ID}/wt"


class Memory:
    def __init__(self) -> None:
        self.hits: list[Hit] = []

    async def write(self, hits: Sequence[Hit]) -> None:
        self.hits.extend(hits)

    async def close(self) -> None:
        return None


def test_served_script_carries_the_servers_identifier_lists() -> None:
    script = browser_script().decode()
    assert f"var IDENTIFIERS = {json.dumps(list(wire.IDENTIFIER_PARAMS))};" in script
    assert f"var IDENTIFIER_PREFIXES = {json.dumps(list(wire.IDENTIFIER_PREFIXES))};" in script


@pytest.mark.parametrize(
    "path",
    [
        f"/_pixel/{TRACK_ID}/wt",
        f"/_pixel/{TRACK_ID}/wt.pl",
        f"/_pixel/{TRACK_ID}/wtldw536t8qoa2j",  # the Smart Pixel's requestObfuscation
        f"/_pixel/{TRACK_ID},999999999999999/wt",
    ],
)
def test_every_single_hit_path_answers_the_gif(path: str) -> None:
    sink = Memory()
    s = settings(track_id=f"{TRACK_ID},999999999999999")
    r = request(PixelMiddleware(html_app(b""), settings=s, sink=sink), path, query=Q.encode())
    assert r.status == 200 and r.body == GIF and len(sink.hits) == 1


def test_post_with_the_query_in_the_body() -> None:
    sink = Memory()
    app = PixelMiddleware(html_app(b""), settings=settings(), sink=sink)
    r = request(app, WT, method="POST", body=f"{Q}&cp1=x".encode())
    assert r.status == 200 and sink.hits[0].query.endswith("&cp1=x")


def test_the_smart_pixels_beacon_is_a_browser_hit() -> None:
    sink = Memory()
    app = PixelMiddleware(html_app(b""), settings=settings(), sink=sink)
    r = request(
        app,
        f"/_pixel/{TRACK_ID}/batch",
        method="POST",
        headers=[
            (b"content-type", b"text/plain;charset=UTF-8"),
            (b"origin", b"http://shop.example"),
            (b"sec-fetch-site", b"same-origin"),
            (b"cookie", f"wtstp_eid={EID}; wtstp_sid={SID}".encode()),
        ],
        body=f"?{Q}&cp1=beacon".encode(),
    )
    assert r.status == 200
    (hit,) = sink.hits
    assert hit.ever_id == EID and hit.session_id == SID
    assert hit.query == f"{Q}&eid={EID}&cp1=beacon"


def test_new_visitor_and_new_session_are_what_the_server_knows() -> None:
    sink = Memory()
    app = PixelMiddleware(html_app(b""), settings=settings(), sink=sink)
    # The Smart Pixel cannot see HttpOnly identifiers and says "new" on every page.
    lying = f"{Q}&one=1&fns=1&cp1=x".encode()
    first = request(app, WT, query=lying)
    cookies = set_cookies(first.header_values("set-cookie"))
    eid = cookies["wtstp_eid"].value
    assert names(sink.hits[0].query) == ["p", "eid", "one", "fns", "cp1"]
    back = f"wtstp_eid={eid}; wtstp_sid={cookies['wtstp_sid'].value}".encode()
    request(app, WT, query=lying, headers=[(b"cookie", back)])
    assert names(sink.hits[1].query) == ["p", "eid", "cp1"]  # a known visitor, a known session
    request(app, WT, query=lying, headers=[(b"cookie", f"wtstp_eid={eid}".encode())])
    assert names(sink.hits[2].query) == ["p", "eid", "fns", "cp1"]  # a new session only


def test_a_resent_hit_is_stored_once(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/hits.sqlite3"
    s = settings(store=store, spool_dir=str(tmp_path / "spool"))
    app = PixelMiddleware(html_app(b""), settings=s)
    body = f"wt?{Q}&cp1=1\nwt?{Q}&cp1=2\n".encode()
    for _ in range(3):  # PHP resends on anything but 200; its cron job resends the whole file
        r = request(app, f"/_pixel/{TRACK_ID}/batch", method="POST", body=body)
        assert r.status == 200
    for _ in range(2):  # the Smart Pixel's queue resends a hit it thinks failed
        request(
            app, WT, query=f"{Q}&cp1=3".encode(), headers=[(b"cookie", f"wtstp_eid={EID}".encode())]
        )
    assert app.sink.flush(20)  # type: ignore[attr-defined]
    rows = read_rows(store)
    assert sorted(dict(json.loads(r["params"]))["cp1"] for r in rows) == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("value", "present"),
    [(None, False), ("", False), ('""', True), ("1", True), ("0", True), ("no", True)],
)
@pytest.mark.parametrize("opt_in", [False, True])
def test_the_choice_cookie_is_read_as_the_smart_pixel_reads_it(
    make_site: Callable[..., Site], value: str | None, present: bool, opt_in: bool
) -> None:
    site = make_site(enable_anonymous_function=True, anonymous_opt_in=opt_in)
    headers = {} if value is None else {"cookie": f"miCookieOptOut={value}"}
    config = injected_config(site.client.get("/", headers=headers).text)
    assert config is not None
    assert config["anonymous"] is (present != opt_in)
    status = site.client.get("/_pixel/status", headers=headers).json()
    assert status["anonymous"] is (present != opt_in)


def test_the_last_choice_cookie_wins_as_in_the_pixel(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    both = {"cookie": "miCookieOptOut=1; miCookieOptOut="}
    assert site.client.get("/_pixel/status", headers=both).json()["anonymous"] is False


def test_a_visitor_who_opted_out_of_tracking_is_not_tracked(
    make_site: Callable[..., Site],
) -> None:
    site = make_site(server_side_page_views=True)
    cookie = {"cookie": f"webtrekkOptOut=1; wtstp_eid={EID}; wtstp_sid={SID}"}
    page = site.client.get("/", headers=cookie)
    cookies = set_cookies(page.headers.get_list("set-cookie"))
    assert cookies["wtstp_eid"].expired and cookies["wtstp_sid"].expired
    config = injected_config(page.text)
    assert config is not None and config["tracked"] is False and config["anonymous"] is True
    assert "<noscript>" not in page.text
    hit = site.client.get(f"{WT}?{Q}", headers=cookie)
    assert hit.status_code == 200 and hit.content == GIF  # answered, so no client retries
    assert site.hits() == []  # neither the page view nor the hit


def test_the_optout_request_is_answered_like_mapp() -> None:
    app = PixelMiddleware(html_app(b""), settings=settings())
    r = request(
        app,
        f"/_pixel/{TRACK_ID}/optout",
        query=b"duration=1800",
        headers=[(b"cookie", f"webtrekkOptOut=1; wtstp_eid={EID}".encode())],
    )
    assert r.status == 200 and r.body == GIF
    assert set_cookies(r.header_values("set-cookie"))["wtstp_eid"].expired
    back = request(app, f"/_pixel/{TRACK_ID}/optout", query=b"duration=-2")
    assert back.status == 200 and back.header_values("set-cookie") == []


def test_a_cross_site_hit_is_anonymous_and_touches_no_cookie() -> None:
    sink = Memory()
    app = PixelMiddleware(html_app(b""), settings=settings(), sink=sink)
    r = request(
        app,
        WT,
        query=f"{Q}&eid={EID}&cp1=x".encode(),
        headers=[(b"sec-fetch-site", b"cross-site"), (b"user-agent", b"UA/1")],
    )
    assert r.status == 200 and r.header_values("set-cookie") == []
    (hit,) = sink.hits
    assert hit.anonymous and hit.ever_id is None and hit.user_agent is None
    assert EID not in hit.query


def test_trusted_senders_say_who_the_visitor_is() -> None:
    line = f"wt?{Q}&X-WT-IP=203.0.113.7&X-WT-UA=Mozilla%2F5.0%20X&eid={EID}&cp1=x"
    for trusted, ip, ua in (
        (("127.0.0.0/8",), "203.0.113.7", "Mozilla/5.0 X"),
        ((), "127.0.0.1", "curl/8"),
    ):
        sink = Memory()
        inner = PixelMiddleware(
            html_app(b""), settings=settings(trusted_senders=trusted), sink=sink
        )
        r = request(
            from_loopback(inner),
            f"/_pixel/{TRACK_ID}/batch",
            method="POST",
            headers=[(b"user-agent", b"curl/8")],
            body=line.encode(),
        )
        assert r.status == 200
        (hit,) = sink.hits
        assert (hit.ip, hit.user_agent, hit.ever_id) == (ip, ua, EID)
        assert "X-WT" not in hit.query


def from_loopback(app: Any) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        scope["client"] = ("127.0.0.1", 5000)
        await app(scope, receive, send)

    return wrapped


def test_the_standalone_collector_serves_the_root_path() -> None:
    sink = Memory()
    app = CollectorApp(settings(), sink)
    r = request(app, f"/{TRACK_ID}/batch", method="POST", body=f"wt?{Q}".encode())
    assert r.status == 200 and len(sink.hits) == 1
    assert request(app, f"/{TRACK_ID}/wt", query=Q.encode()).body == GIF
    assert request(app, "/anything").status == 404


def test_the_first_hit_after_the_page_made_the_identifiers_is_a_new_visit() -> None:
    """The page's answer makes the everID and the session but stores no hit; the Smart Pixel's
    first hit then arrives with both cookies, and must still count as a new visitor."""
    sink = Memory()
    app = PixelMiddleware(html_app(b"<html><body>x</body></html>"), settings=settings(), sink=sink)
    page = request(app, "/")
    cookies = set_cookies(page.header_values("set-cookie"))
    jar = "; ".join(f"{name}={c.value}" for name, c in cookies.items()).encode()
    first = request(app, WT, query=f"{Q}&cp1=1".encode(), headers=[(b"cookie", jar)])
    assert names(sink.hits[0].query) == ["p", "eid", "one", "fns", "cp1"]
    assert set_cookies(first.header_values("set-cookie"))["wtstp_sid_new"].expired
    without_marker = jar.replace(b"wtstp_sid_new=vs", b"")
    request(app, WT, query=f"{Q}&cp1=2".encode(), headers=[(b"cookie", without_marker)])
    assert names(sink.hits[1].query) == ["p", "eid", "cp1"]


def test_the_smart_pixels_own_new_everid_keeps_its_one() -> None:
    sink = Memory()
    app = PixelMiddleware(html_app(b""), settings=settings(), sink=sink)
    pixel_eid = "2179561797788267381"  # the Smart Pixel's own format: "2" and epoch seconds
    made_here = f"{Q}&eid={pixel_eid}&one=1&cp1=x".encode()
    request(app, WT, query=made_here, headers=[(b"cookie", f"wtstp_eid={pixel_eid}".encode())])
    assert names(sink.hits[0].query)[:3] == ["p", "eid", "one"]
    # Behind HttpOnly identifiers the pixel says one=1 without an eid: not believed.
    blind = f"{Q}&one=1&cp1=x".encode()
    request(
        app, WT, query=blind, headers=[(b"cookie", f"wtstp_eid={EID}; wtstp_sid={SID}".encode())]
    )
    assert "one" not in names(sink.hits[1].query)


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        (WT, b"cp1=no-page", 400),
        ("/_pixel/999999999999999/wt", Q.encode(), 404),
        (WT, b"p=600," + b"a" * 31_000, 414),
    ],
)
def test_a_hit_refused_for_good_is_still_an_image(path: str, query: bytes, status: int) -> None:
    """The Smart Pixel's queue resends, for ever, any hit whose answer is not an image."""
    sink = Memory()
    r = request(PixelMiddleware(html_app(b""), settings=settings(), sink=sink), path, query=query)
    assert r.status == status and r.body == GIF and r.header("content-type") == "image/gif"
    assert r.header("x-pixel-refused") and sink.hits == []
