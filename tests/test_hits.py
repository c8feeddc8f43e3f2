"""The first-party collector: /<trackId>/wt and /<trackId>/batch, and what reaches the sink."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import pytest

from pixel_middleware import Hit, PixelMiddleware
from pixel_middleware.responses import GIF

from .asgi import html_app, request
from .conftest import Site
from .helpers import TRACK_ID, names, set_cookies, settings

EID = "8123456789012345678"
SID = "1234567890123456789"
Q = "p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0"
LEAKY = (
    f"{Q}&eid=8999999999999999999&one=1&X-WT-UA=ua&uc701=a%40b&ui5=x&cd=C-1&uc5=f&uc7=1815&cp1=a"
)
ANON = {"enable_anonymous_function": True, "suppress_parameter": ("cd", "uc5", "uc7")}
WT = f"/_pixel/{TRACK_ID}/wt"
BATCH = f"/_pixel/{TRACK_ID}/batch"
# What a server library sends: no browser headers (the test client adds Sec-Fetch-Site).
SERVER = {"sec-fetch-site": "", "content-type": "text/plain"}


def test_gif_is_mapps_43_bytes(make_site: Callable[..., Site]) -> None:
    site = make_site()
    r = site.client.get(f"{WT}?{Q}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/gif"
    assert r.content == GIF and len(GIF) == 43 and GIF.startswith(b"GIF89a")
    assert r.headers["cache-control"] == "no-store"


def test_identified_hit_gets_cookie_everid(make_site: Callable[..., Site]) -> None:
    site = make_site(**ANON)
    site.client.get(
        f"{WT}?{LEAKY}",
        headers={"cookie": f"wtstp_eid={EID}; wtstp_sid={SID}", "user-agent": "UA/1"},
    )
    (hit,) = site.hits()
    assert hit["anonymous"] is False and hit["ever_id"] == EID and hit["session_id"] == SID
    assert hit["user_agent"] == "UA/1" and hit["ip"] == "testclient"
    assert hit["query"].startswith(
        f"p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0&eid={EID}&"
    )
    assert "8999999999999999999" not in hit["query"] and "nc=" not in hit["query"]
    assert "cd=C-1" in hit["query"]


def test_identified_hit_without_cookie_creates_the_everid(make_site: Callable[..., Site]) -> None:
    site = make_site()
    r = site.client.get(f"{WT}?{Q}")
    eid = set_cookies(r.headers.get_list("set-cookie"))["wtstp_eid"].value
    assert re.match(r"^\d{19}$", eid)
    assert site.hits()[0]["ever_id"] == eid and f"eid={eid}" in site.hits()[0]["query"]


@pytest.mark.parametrize(
    ("extra", "cookie"),
    [({}, "miCookieOptOut=1"), ({"anonymous_opt_in": True}, ""), ({}, "")],
)
def test_anonymous_hit_is_stripped_on_the_server(
    make_site: Callable[..., Site], extra: dict[str, object], cookie: str
) -> None:
    site = make_site(**ANON, **extra)
    headers = {"cookie": f"{cookie}; wtstp_eid={EID}; wtstp_sid={SID}", "user-agent": "UA/1"}
    if not cookie:
        headers["sec-gpc"] = "1"
    r = site.client.get(f"{WT}?{LEAKY}", headers=headers)
    assert r.status_code == 200
    (hit,) = site.hits()
    assert hit["anonymous"] is True
    assert hit["ever_id"] is None and hit["session_id"] is None
    assert hit["ip"] is None and hit["user_agent"] is None
    assert names(hit["query"]) == ["p", "nc", "cp1"]
    cookies = set_cookies(r.headers.get_list("set-cookie"))
    assert cookies["wtstp_eid"].expired and cookies["wtstp_sid"].expired


def test_post_beacon_is_accepted(make_site: Callable[..., Site]) -> None:
    site = make_site()
    assert site.client.post(f"{WT}?{Q}").status_code == 200
    assert len(site.hits()) == 1


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        ("/_pixel/999999999999999/wt", Q, 404),
        (WT, "", 400),
        (WT, "garbage%%%", 400),
        (WT, "p=600," + "a" * 31_000, 414),
        ("/_pixel/nothing", "", 404),
        ("/_pixel/", "", 404),
    ],
)
def test_bad_hits_are_4xx_and_store_nothing(
    make_site: Callable[..., Site], path: str, query: str, status: int
) -> None:
    site = make_site()
    r = site.client.get(f"{path}?{query}" if query else path)
    assert r.status_code == status
    assert site.hits() == []


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (b"p=600,\xff\xfe&cp1=\xc3", "p=600,%FF%FE&eid={eid}&one=1&fns=1&cp1=%C3"),
        (b"p=600,a&cp1=<script>", "p=600,a&eid={eid}&one=1&fns=1&cp1=%3Cscript%3E"),
        (b'p=600,a&cp1="x"', "p=600,a&eid={eid}&one=1&fns=1&cp1=%22x%22"),
    ],
)
def test_unescaped_bytes_in_query_are_stored_escaped(raw: bytes, stored: str) -> None:
    written: list[Hit] = []

    class Memory:
        async def write(self, hits: Sequence[Hit]) -> None:
            written.extend(hits)

        async def close(self) -> None:
            return None

    app = PixelMiddleware(html_app(b""), settings=settings(), sink=Memory())
    r = request(app, f"/_pixel/{TRACK_ID}/wt", query=raw)
    assert r.status == 200 and r.body == GIF
    (hit,) = written
    assert hit.query == stored.format(eid=hit.ever_id)


def test_multiple_track_ids_are_accepted(make_site: Callable[..., Site]) -> None:
    both = f"{TRACK_ID},999999999999999"
    site = make_site(track_id=both)
    for tid in (TRACK_ID, "999999999999999", both):
        assert site.client.get(f"/_pixel/{tid}/wt?{Q}").status_code == 200
    assert [h["track_id"] for h in site.hits()] == [TRACK_ID, "999999999999999", both]


def test_batch_stores_every_line(make_site: Callable[..., Site]) -> None:
    site = make_site()
    body = f"wt?{Q}&cp1=1\nwt?{Q}&cp1=2&eid={EID}\n\n{Q}&cp1=3\n"
    r = site.client.post(BATCH, content=body, headers=SERVER)
    # 200, the only answer every Mapp client counts as success (PHP resends on 204).
    assert r.status_code == 200
    hits = site.hits()
    assert [h["query"].rsplit("cp1=", 1)[1].split("&")[0] for h in hits] == ["1", "2", "3"]
    # A server-side batch keeps each line's own everID; a line without one gets none.
    assert [h["ever_id"] for h in hits] == [None, EID, None]
    assert r.headers.get_list("set-cookie") == []


def test_batch_from_anonymous_browser_is_stripped(make_site: Callable[..., Site]) -> None:
    site = make_site(**ANON)
    body = "\n".join(f"wt?{LEAKY}" for _ in range(3))
    site.client.post(
        BATCH,
        content=body,
        headers={
            "content-type": "text/plain; charset=utf-8",
            "cookie": f"miCookieOptOut=1; wtstp_eid={EID}",
        },
    )
    hits = site.hits()
    assert len(hits) == 3
    assert all(names(h["query"]) == ["p", "nc", "cp1"] and h["ever_id"] is None for h in hits)


def test_batch_with_a_bad_line_stores_the_rest(make_site: Callable[..., Site]) -> None:
    site = make_site()
    body = f"wt?{Q}&cp1=1\nwt?not a request\nwt?{Q}&cp1=3\n"
    r = site.client.post(BATCH, content=body, headers=SERVER)
    assert r.status_code == 200
    assert [h["query"].rsplit("cp1=", 1)[1] for h in site.hits()] == ["1", "3"]


@pytest.mark.parametrize("ctype", ["application/json", "", "text/plain; utf-8"])
def test_batch_takes_any_content_type(make_site: Callable[..., Site], ctype: str) -> None:
    site = make_site()
    headers = {**SERVER, "content-type": ctype} if ctype else SERVER
    r = site.client.post(BATCH, content=f"wt?{Q}".encode(), headers=headers)
    assert r.status_code == 200 and len(site.hits()) == 1


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [
        (b"\xff\xfe", "text/plain", 400),
        (b"no pixel\nrequest here", "text/plain", 400),
        (("wt?" + Q + "\n").encode() * 2_000, "text/plain", 413),
    ],
)
def test_batch_refusals(
    make_site: Callable[..., Site], body: bytes, ctype: str, status: int
) -> None:
    site = make_site(max_body_bytes=100_000)
    r = site.client.post(BATCH, content=body, headers={"content-type": ctype} if ctype else {})
    assert r.status_code == status
    assert site.hits() == []


def test_batch_line_limit(make_site: Callable[..., Site]) -> None:
    site = make_site(max_body_bytes=10_000_000)
    body = ("wt?p=600,a\n" * 10_001).encode()
    r = site.client.post(BATCH, content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 413 and site.hits() == []


def test_batch_needs_post(make_site: Callable[..., Site]) -> None:
    assert make_site().client.get(BATCH).status_code == 405


def test_failing_sink_is_503_not_500() -> None:
    class Broken:
        async def write(self, hits: Sequence[Hit]) -> None:
            raise OSError("disk full")

        async def close(self) -> None:
            return None

    app = PixelMiddleware(html_app(b""), settings=settings(), sink=Broken())
    r = request(app, WT, query=Q.encode())
    assert r.status == 503


def test_hit_record_refuses_identifiers_of_anonymous_visitors() -> None:
    for field in ("ever_id", "session_id", "ip", "user_agent"):
        with pytest.raises(ValueError):
            Hit(received_at=0, track_id=TRACK_ID, anonymous=True, query="p=600", **{field: "x"})


def test_script_is_served_with_etag(make_site: Callable[..., Site]) -> None:
    site = make_site()
    r = site.client.get("/_pixel/pixel.js")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "pixelMiddleware" in r.text
    again = site.client.get("/_pixel/pixel.js", headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert site.client.post("/_pixel/pixel.js").status_code == 405
