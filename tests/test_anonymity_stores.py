"""Levels 2 and 3 of anonymity end to end over uvicorn: rows read back from SQLite and
PostgreSQL, and the lines a relay hands to a second collector (standing in for Mapp)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pixel_middleware import PixelMiddleware, PixelSettings, get_visitor

from .helpers import SECRET, TRACK_ID
from .servers import free_port, serve
from .stores import read_rows

Q = "p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0"
WT = f"/_pixel/{TRACK_ID}/wt"
TEMP = re.compile(r"^t[0-9a-f]{32}$")


def app(**overrides: Any) -> PixelMiddleware:
    values: dict[str, Any] = {
        "track_id": TRACK_ID,
        "secret_key": SECRET,
        "enable_anonymous_function": True,
        "anonymous_session": True,
        "anonymous_ip_truncation": 1,
    }
    values.update(overrides)

    async def page(request: Request) -> Response:
        get_visitor(request).page("shop/home")
        return HTMLResponse("<html><body>home</body></html>")

    return PixelMiddleware(Starlette(routes=[Route("/", page)]), settings=PixelSettings(**values))


def test_levels_2_and_3_in_the_store(store: str, tmp_path: Path) -> None:
    site = app(store=store, spool_dir=str(tmp_path / "spool"))
    with serve(site) as url:
        anon = httpx2.Client(base_url=url, cookies={"miCookieOptOut": "1"})
        anon.get("/")  # the page's answer makes the temporary session
        temp_cookie = anon.cookies["wtstp_asid"]
        for page in range(3):
            assert anon.get(f"{WT}?{Q}&cp1=level2-{page}").status_code == 200
        sp = httpx2.Client(base_url=url, headers={"sp-anonymous": "1", "user-agent": "UA/sp"})
        sp.cookies.set("wtstp_eid", "8123456789012345678")
        r = sp.get(f"{WT}?{Q}&cp1=level3&eid=8123456789012345678")
        assert r.status_code == 200 and r.headers.get_list("set-cookie") == []
    rows = {r["query"].rsplit("cp1=", 1)[1]: r for r in read_rows(store)}
    level2 = [rows[f"level2-{page}"] for page in range(3)]
    temp = temp_cookie.partition(".")[0]
    assert TEMP.match(temp)
    assert {r["session_id"] for r in level2} == {temp}  # one visit
    for row in level2:
        assert row["anonymous"] and row["ever_id"] is None and row["user_agent"] is None
        assert row["ip"] == "127.0.0.0"  # truncated, by setting
        assert f"&fpv={temp}&fpt=2.1.0" in row["query"]
    level3 = rows["level3"]
    assert level3["anonymous"] and level3["ip"] is None and level3["session_id"] is None
    assert "8123456789012345678" not in str(level3) and "UA/sp" not in str(level3)


def test_the_relay_passes_the_temporary_id_and_nothing_else(tmp_path: Path) -> None:
    port = free_port()
    front = app(
        store=None,
        relay=True,
        relay_url=f"http://127.0.0.1:{port}/_pixel",
        spool_dir=str(tmp_path / "spool"),
    )
    back_store = f"sqlite:///{tmp_path}/mapp.sqlite3"
    # A collector standing in for Mapp: it keeps a sender's fpv (anonymous_session on).
    back = app(store=back_store, enable_anonymous_function=False, trusted_senders=("127.0.0.1",))
    with serve(back, port=port), serve(front) as url:
        anon = httpx2.Client(base_url=url, cookies={"miCookieOptOut": "1"})
        anon.get(f"{WT}?{Q}&cp1=a")
        temp = anon.cookies["wtstp_asid"].partition(".")[0]
        httpx2.Client(base_url=url, headers={"sp-anonymous": "1"}).get(f"{WT}?{Q}&cp1=b")
        assert front.sink.flush(20)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while len(read_rows(back_store)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    rows = {r["query"].rsplit("cp1=", 1)[1]: r for r in read_rows(back_store)}
    # What Mapp receives: nc=1 and the temporary id as fpv, no address, no browser.
    assert f"&nc=1&fpv={temp}&fpt=2.1.0&" in rows["a"]["query"]
    assert rows["a"]["ip"] is None and rows["a"]["user_agent"] is None
    assert "fpv" not in rows["b"]["query"] and rows["b"]["ip"] is None
