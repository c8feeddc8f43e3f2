"""Delivery pieces on their own: addresses, the buffered writer, several sinks, page views."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from pixel_middleware import JsonLinesSink, PixelMiddleware, PixelSettings, get_visitor
from pixel_middleware.addresses import client_ip, truncate_ip
from pixel_middleware.sinks import BufferedSink, Hit, MultiSink, build_sink
from pixel_middleware.sinks.factory import sqlite_path
from pixel_middleware.sinks.relay import MAX_LINES, batch_line, chunks

from .helpers import SECRET, TRACK_ID, injected_config, settings
from .stores import Memory


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        ("203.0.113.5", "198.51.100.1", (), "203.0.113.5"),  # header ignored without proxies
        ("10.0.0.1", "198.51.100.1", ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.1", "198.51.100.1, 10.0.0.2", ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.1", "6.6.6.6, 198.51.100.1", ("10.0.0.0/8",), "198.51.100.1"),  # spoof on the left
        ("203.0.113.5", "198.51.100.1", ("10.0.0.0/8",), "203.0.113.5"),  # peer not a proxy
        ("10.0.0.1", "garbage", ("10.0.0.0/8",), None),
        ("10.0.0.1", None, ("10.0.0.0/8",), "10.0.0.1"),
    ],
)
def test_client_ip(
    peer: str, xff: str | None, trusted: tuple[str, ...], expected: str | None
) -> None:
    assert client_ip(peer, xff, trusted) == expected


@pytest.mark.parametrize(
    ("ip", "zero", "expected"),
    [
        ("198.51.100.77", 0, None),
        ("198.51.100.77", 1, "198.51.100.0"),
        ("198.51.100.77", 2, "198.51.0.0"),
        ("198.51.100.77", 3, "198.0.0.0"),
        ("2001:db8:1234:5678:9abc:def0:1234:5678", 1, "2001:db8:1234::"),
        ("2001:db8:1234:5678:9abc:def0:1234:5678", 2, "2001:db8:1200::"),
        ("2001:db8:1234:5678:9abc:def0:1234:5678", 3, "2001:db8::"),
        ("not an ip", 1, None),
        (None, 2, None),
    ],
)
def test_truncate_ip(ip: str | None, zero: int, expected: str | None) -> None:
    assert truncate_ip(ip, zero) == expected


def test_delivery_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="store"):
        settings(store="mysql://x")
    with pytest.raises(ValueError, match="relay needs track_domain"):
        settings(relay=True)
    with pytest.raises(ValueError, match="anonymous_ip_truncation"):
        settings(anonymous_ip_truncation=4)
    with pytest.raises(ValueError, match="trusted_proxies"):
        settings(trusted_proxies=("not-a-net",))
    with pytest.raises(ValueError, match="report_token"):
        settings(report_token="short")
    default = PixelSettings(track_id=TRACK_ID, secret_key=SECRET).store
    assert default == "sqlite:///pixel_hits.sqlite3"
    env = PixelSettings.from_env(
        {
            "PIXEL_TRACK_ID": TRACK_ID,
            "PIXEL_SECRET_KEY": SECRET,
            "PIXEL_STORE": "none",
            "PIXEL_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
        }
    )
    assert env.store is None and env.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")


def test_sqlite_store_urls() -> None:
    # As the settings read them (pixel_middleware.store_url), so the sink opens that file.
    assert sqlite_path("sqlite:///hits.db") == "hits.db"
    assert sqlite_path("sqlite:////var/lib/hits.db") == "/var/lib/hits.db"
    assert sqlite_path("/var/lib/hits.db") == "/var/lib/hits.db"
    with pytest.raises(ValueError):
        sqlite_path("sqlite:hits.db")


def test_build_sink_follows_settings(tmp_path: Path) -> None:
    assert type(build_sink(settings())).__name__ == "LoggingSink"
    assert type(build_sink(settings(store=f"sqlite:///{tmp_path}/h.db"))).__name__ == "SQLiteSink"
    both = build_sink(
        settings(store=f"sqlite:///{tmp_path}/h.db", relay=True, track_domain="q3.webtrekk.net")
    )
    assert isinstance(both, MultiSink)
    assert [type(s).__name__ for s in both.sinks] == ["SQLiteSink", "RelaySink"]
    assert not (tmp_path / "h.db").exists()  # nothing is created before the first hit


def hit(i: int, anonymous: bool = False) -> Hit:
    return Hit(received_at=0, track_id=TRACK_ID, anonymous=anonymous, query=f"p=600,x&cp1={i}")


def test_buffered_sink_overflows_to_disk_and_loses_nothing(tmp_path: Path) -> None:
    backend = Memory()
    backend.down = True
    sink = BufferedSink(backend, spool_dir=tmp_path, max_queue=10, batch_size=4, close_timeout=0.3)
    hits = [hit(i) for i in range(35)]
    asyncio.run(sink.write(hits))
    assert list(tmp_path.glob("spool-*.jsonl"))  # 25 did not fit in memory
    asyncio.run(sink.close())  # the backend is down: the rest is spooled too
    assert backend.written == []
    backend.down = False
    again = BufferedSink(backend, spool_dir=tmp_path, batch_size=4)
    assert again.flush(10)
    assert sorted(backend.written) == sorted(h.hit_id for h in hits)
    assert not list(tmp_path.glob("spool-*.jsonl"))


def test_buffered_sink_retries_a_failed_batch(tmp_path: Path) -> None:
    backend = Memory()
    backend.down = True
    sink = BufferedSink(backend, spool_dir=tmp_path, max_backoff=0.05)
    asyncio.run(sink.write([hit(1), hit(2)]))
    assert not sink.flush(0.3) and sink.failures > 0
    backend.down = False
    assert sink.flush(5)
    assert len(backend.written) == 2
    asyncio.run(sink.close())


def test_multi_sink_keeps_writing_when_one_fails(tmp_path: Path) -> None:
    class Broken:
        async def write(self, hits: Sequence[Hit]) -> None:
            raise OSError("broken")

        async def close(self) -> None:
            return None

    good = JsonLinesSink(tmp_path / "hits.jsonl")
    multi = MultiSink([Broken(), good])
    with pytest.raises(OSError):
        asyncio.run(multi.write([hit(1)]))
    assert len((tmp_path / "hits.jsonl").read_text().splitlines()) == 1


def test_anonymous_hit_may_hold_only_a_truncated_ip() -> None:
    Hit(received_at=0, track_id=TRACK_ID, anonymous=True, query="p=600", ip="198.51.100.0")
    with pytest.raises(ValueError):
        Hit(received_at=0, track_id=TRACK_ID, anonymous=True, query="p=600", ip="198.51.100.7")


def test_relay_lines_and_limits() -> None:
    ident = Hit(
        received_at=0,
        track_id=TRACK_ID,
        anonymous=False,
        query="p=600,x&eid=8123456789012345678",
        ever_id="8123456789012345678",
        ip="203.0.113.9",
        user_agent="Mozilla/5.0 (X11)",
    )
    assert batch_line(ident) == (
        "wt?p=600,x&eid=8123456789012345678&X-WT-IP=203.0.113.9&X-WT-UA=Mozilla%2F5.0%20%28X11%29"
    )
    anon = Hit(
        received_at=0, track_id=TRACK_ID, anonymous=True, query="p=600,x&nc=1", ip="203.0.113.0"
    )
    assert batch_line(anon) == "wt?p=600,x&nc=1"
    lines = [(ident, "wt?p=600") for _ in range(MAX_LINES + 5)]
    assert [len(c) for c in chunks(lines)] == [MAX_LINES, 5]
    big = [(ident, "wt?p=600,x&cp1=" + "a" * 1_000_000) for _ in range(30)]
    assert all(sum(len(line) + 1 for _, line in c) < 24 * 1024 * 1024 for c in chunks(big))


def test_server_side_page_views(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "hits.jsonl")

    async def page(request: Request) -> Response:
        get_visitor(request).page("shop/home", cp1="x")
        return HTMLResponse("<html><body>home</body></html>")

    s = settings(enable_anonymous_function=True, server_side_page_views=True)
    app = PixelMiddleware(Starlette(routes=[Route("/", page)]), settings=s, sink=sink)
    client = TestClient(app)
    r = client.get("/")
    config = injected_config(r.text)
    assert config is not None and config["pageRequest"] is False
    assert "<noscript>" not in r.text  # the server counted it: no second count without JS
    client.get("/", headers={"cookie": "miCookieOptOut=1"})
    client.head("/")
    rows: list[dict[str, Any]] = [
        json.loads(line) for line in (tmp_path / "hits.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 2  # GETs only
    assert rows[0]["ever_id"] == r.cookies["wtstp_eid"]
    assert rows[0]["query"].startswith("p=600,shop%2Fhome,,,,,")
    assert f"eid={r.cookies['wtstp_eid']}" in rows[0]["query"]
    assert rows[1]["anonymous"] is True and rows[1]["ever_id"] is None
    assert "&nc=1&" in rows[1]["query"]


def test_unreadable_spool_file_is_set_aside_not_lost(tmp_path: Path) -> None:
    backend = Memory()
    (tmp_path / "spool-00000000000000000001-bad.jsonl").write_text("{not json\n")
    good = [hit(1), hit(2)]
    BufferedSink(backend, spool_dir=tmp_path).spool.add(good)
    sink = BufferedSink(backend, spool_dir=tmp_path)
    assert sink.flush(5)
    assert sorted(backend.written) == sorted(h.hit_id for h in good)
    assert [p.name for p in tmp_path.iterdir()] == ["bad-spool-00000000000000000001-bad.jsonl"]
    asyncio.run(sink.close())


def test_the_store_sink_opens_the_file_the_settings_name(tmp_path: Path) -> None:
    """The sink reads ``store`` as the settings validate it: three slashes are relative, a plain
    path is a SQLite file (not a PostgreSQL URL)."""
    from pixel_middleware.sinks import SQLiteSink

    relative = build_sink(settings(store="sqlite:///pixel_hits.sqlite3"))
    assert isinstance(relative, SQLiteSink) and relative.path == "pixel_hits.sqlite3"
    plain = build_sink(settings(store=str(tmp_path / "hits.db")))
    assert isinstance(plain, SQLiteSink) and plain.path == str(tmp_path / "hits.db")
    absolute = build_sink(settings(store=f"sqlite:///{tmp_path}/hits.db"))
    assert isinstance(absolute, SQLiteSink) and absolute.path == f"{tmp_path}/hits.db"
