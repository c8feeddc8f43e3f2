"""Each sink end to end through the real middleware over uvicorn: rows read back from SQLite and
PostgreSQL, lines received by a second collector; outages, restarts and bursts lose nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pixel_middleware import PixelMiddleware, PixelSettings, get_visitor
from pixel_middleware.sinks import BufferedSink, RelaySink
from pixel_middleware.sinks.schema import SCHEMA_VERSION

from .conftest import fresh_database
from .helpers import SECRET, TRACK_ID
from .postgres import PostgresServer
from .servers import free_port, serve
from .stores import assert_private, cp1, read_rows

SUPPRESSED = ("cd", "uc5", "uc7")
Q = "p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0"
LEAKY = "&eid=8999999999999999999&one=1&X-WT-UA=ua&uc701=a%40b&ui5=x&cd=C-1&uc5=f&uc7=1815"
WT = f"/_pixel/{TRACK_ID}/wt"


def site(**overrides: Any) -> PixelMiddleware:
    values: dict[str, Any] = {
        "track_id": TRACK_ID,
        "secret_key": SECRET,
        "enable_anonymous_function": True,
        "suppress_parameter": SUPPRESSED,
    }
    values.update(overrides)

    async def page(request: Request) -> Response:
        get_visitor(request).page("shop/home", cp1="x")
        return HTMLResponse("<html><body>home</body></html>")

    return PixelMiddleware(Starlette(routes=[Route("/", page)]), settings=PixelSettings(**values))


def test_store_end_to_end(store: str, tmp_path: Path) -> None:
    app = site(store=store, spool_dir=str(tmp_path / "spool"))
    with serve(app) as url:
        ident = httpx2.Client(base_url=url, headers={"user-agent": "UA/identified"})
        ident.get("/")
        eid, sid = ident.cookies["wtstp_eid"], ident.cookies["wtstp_sid"]
        assert ident.get(f"{WT}?{Q}{LEAKY}&cp1=ident").status_code == 200

        anon = httpx2.Client(
            base_url=url,
            headers={"user-agent": "UA/anonymous"},
            cookies={
                "miCookieOptOut": "1",
                "wtstp_eid": "8111111111111111111",
                "wtstp_sid": "1" * 19,
            },
        )
        assert anon.get(f"{WT}?{Q}{LEAKY}&cp1=anon").status_code == 200
        batch = "\n".join(f"wt?{Q}{LEAKY}&cp1=batch{i}" for i in range(3))
        r = anon.post(
            f"/_pixel/{TRACK_ID}/batch", content=batch, headers={"content-type": "text/plain"}
        )
        assert r.status_code == 200

        gpc = httpx2.Client(base_url=url, headers={"sec-gpc": "1", "user-agent": "UA/gpc"})
        assert gpc.get(f"{WT}?{Q}{LEAKY}&cp1=gpc").status_code == 200
    # Leaving the block ran lifespan shutdown: the sink is flushed.

    rows = read_rows(store)
    by_page = {cp1(r): r for r in rows}
    assert sorted(by_page) == ["anon", "batch0", "batch1", "batch2", "gpc", "ident"]
    ident_row = by_page["ident"]
    assert ident_row["anonymous"] is False
    assert ident_row["ever_id"] == eid and ident_row["session_id"] == sid
    assert ident_row["customer_id"] == "C-1" and ident_row["page_name"] == "shop/home"
    assert ident_row["ip"] == "127.0.0.1" and ident_row["user_agent"] == "UA/identified"
    assert f"eid={eid}" in ident_row["query"] and "8999999999999999999" not in ident_row["query"]
    assert ["uc5", "f"] in json.loads(ident_row["params"])
    assert sum(r["anonymous"] for r in rows) == 5
    assert_private(
        rows, SUPPRESSED, secrets=["8111111111111111111", "UA/anonymous", "UA/gpc", "C-1"]
    )
    if store.startswith("sqlite:"):
        conn = sqlite3.connect(store[len("sqlite:") :])
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.close()


def test_truncated_ip_for_anonymous_visitors(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/hits.sqlite3"
    app = site(store=store, anonymous_ip_truncation=1, trusted_proxies=("127.0.0.1",))
    with serve(app) as url:
        client = httpx2.Client(base_url=url, cookies={"miCookieOptOut": "1"})
        headers = {"x-forwarded-for": "198.51.100.77"}
        assert client.get(f"{WT}?{Q}&cp1=a", headers=headers).status_code == 200
        ident = httpx2.Client(base_url=url)
        assert ident.get(f"{WT}?{Q}&cp1=b", headers=headers).status_code == 200
    rows = {cp1(r): r for r in read_rows(store)}
    assert rows["a"]["ip"] == "198.51.100.0" and rows["a"]["anonymous"]
    assert rows["b"]["ip"] == "198.51.100.77"


def test_postgres_restart_loses_nothing(pg: PostgresServer, tmp_path: Path) -> None:
    dsn = fresh_database(pg)
    app = site(store=dsn, spool_dir=str(tmp_path / "spool"))
    sink = app.sink
    assert isinstance(sink, BufferedSink)
    with serve(app) as url:
        client = httpx2.Client(base_url=url)
        for i in range(20):
            assert client.get(f"{WT}?{Q}&cp1={i}").status_code == 200
        assert sink.flush(20)
        pg.stop()
        try:
            for i in range(20, 50):
                assert client.get(f"{WT}?{Q}&cp1={i}").status_code == 200
            deadline = time.monotonic() + 20
            while sink.failures == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sink.failures > 0  # the writer really hit the stopped server
        finally:
            pg.start()
        for i in range(50, 60):
            assert client.get(f"{WT}?{Q}&cp1={i}").status_code == 200
        assert sink.flush(30)
    values = sorted(int(cp1(r)) for r in read_rows(dsn))
    assert values == list(range(60))  # every hit, exactly once


def collector(port: int, tmp_path: Path) -> tuple[PixelMiddleware, str]:
    """A second pixel_middleware acting as Mapp's track server, storing into SQLite."""
    store = f"sqlite:///{tmp_path}/collector-{port}.sqlite3"
    # The relay is a server speaking for its visitors: trusted, its X-WT-IP/X-WT-UA are believed.
    back = site(
        store=store,
        enable_anonymous_function=False,
        suppress_parameter=(),
        trusted_senders=("127.0.0.1",),
    )
    return back, store


def test_relay_to_a_collector_that_is_down_for_a_while(tmp_path: Path) -> None:
    port = free_port()
    front = site(
        store=None,
        relay=True,
        relay_url=f"http://127.0.0.1:{port}/_pixel",
        spool_dir=str(tmp_path / "spool"),
    )
    relay = front.sink
    assert isinstance(relay, RelaySink)
    with serve(front) as url:
        ident = httpx2.Client(base_url=url, headers={"user-agent": "UA/identified"})
        anon = httpx2.Client(
            base_url=url, headers={"user-agent": "UA/anon"}, cookies={"miCookieOptOut": "1"}
        )
        for i in range(25):
            client = anon if i % 5 == 0 else ident
            assert client.get(f"{WT}?{Q}{LEAKY}&cp1={i}").status_code == 200
        deadline = time.monotonic() + 20
        while relay.failures == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert relay.failures > 0  # nothing listens yet
        back, store = collector(port, tmp_path)
        with serve(back, port=port):
            assert relay.flush(30)
    rows = read_rows(store)
    assert sorted(int(cp1(r)) for r in rows) == list(range(25))
    for r in rows:
        params = dict(json.loads(r["params"]))
        if r["anonymous"]:
            # nc=1 survives the relay, and no forwarding parameter was added.
            assert "X-WT-IP" not in params and "X-WT-UA" not in params and "nc=1" in r["query"]
            assert "cd" not in params and r["customer_id"] is None
            assert r["user_agent"] is None and r["ip"] is None
        else:
            # The visitor's address and browser, carried by X-WT-IP/X-WT-UA, land in their
            # columns: not the relay's own user agent.
            assert r["ip"] == "127.0.0.1" and r["user_agent"] == "UA/identified"
            assert "X-WT-IP" not in params and "X-WT-UA" not in params
            assert r["ever_id"] and r["ever_id"] == ident.cookies["wtstp_eid"]
    assert sum(r["anonymous"] for r in rows) == 5


def test_relay_spool_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    first = RelaySink(f"http://127.0.0.1:{port}/_pixel", spool_dir=spool, close_timeout=0.5)
    app = PixelMiddleware(site(store=None).app, settings=site(store=None).settings, sink=first)
    with serve(app) as url:
        client = httpx2.Client(base_url=url)
        for i in range(12):
            assert client.get(f"{WT}?{Q}&cp1={i}").status_code == 200
    # The server stopped while the target was down: the hits wait on disk.
    assert list(spool.glob("spool-*.jsonl"))
    back, store = collector(port, tmp_path)
    with serve(back, port=port):
        second = RelaySink(f"http://127.0.0.1:{port}/_pixel", spool_dir=spool)
        assert second.flush(30)
        asyncio.run(second.close())
    assert not list(spool.glob("spool-*.jsonl"))
    assert sorted(int(cp1(r)) for r in read_rows(store)) == list(range(12))


def test_store_and_relay_at_once(tmp_path: Path) -> None:
    port = free_port()
    local = f"sqlite:///{tmp_path}/local.sqlite3"
    back, remote = collector(port, tmp_path)
    front = site(
        store=local,
        relay=True,
        relay_url=f"http://127.0.0.1:{port}/_pixel",
        spool_dir=str(tmp_path / "spool"),
    )
    with serve(back, port=port), serve(front) as url:
        client = httpx2.Client(base_url=url)
        for i in range(5):
            client.get(f"{WT}?{Q}&cp1={i}")
    assert len(read_rows(local)) == 5
    assert len(read_rows(remote)) == 5


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_burst_of_concurrent_hits(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = (
        f"sqlite:///{tmp_path}/hits.sqlite3"
        if kind == "sqlite"
        else fresh_database(request.getfixturevalue("pg"))
    )
    total, concurrency = 2_000, 64
    app = site(store=store, spool_dir=str(tmp_path / "spool"))

    async def fire(url: str) -> list[int]:
        limits = httpx2.Limits(max_connections=concurrency)
        async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int) -> int:
                async with gate:
                    headers = {"cookie": "miCookieOptOut=1"} if i % 3 == 0 else {}
                    r = await client.get(f"{WT}?{Q}&cp1={i}", headers=headers)
                    return r.status_code

            return await asyncio.gather(*(one(i) for i in range(total)))

    with serve(app) as url:
        statuses = asyncio.run(fire(url))
    assert statuses == [200] * total
    rows = read_rows(store)
    assert sorted(int(cp1(r)) for r in rows) == list(range(total))
    assert sum(r["anonymous"] for r in rows) == len(range(0, total, 3))
