"""`python -m pixel_middleware report|prune` and the HTML report, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pixel_middleware import PixelMiddleware
from pixel_middleware.report.summary import summarize
from pixel_middleware.sinks import Hit
from pixel_middleware.sinks.postgres import PostgresBackend
from pixel_middleware.sinks.sqlite import SQLiteBackend

from .asgi import html_app
from .conftest import fresh_database
from .helpers import TRACK_ID, settings
from .stores import read_rows

DAY = 86_400
EIDS = ["8000000000000000001", "8000000000000000002"]


def hits(now: float) -> list[Hit]:
    """Today: 3 identified views by 2 visitors, 1 anonymous; yesterday: 1 and 2; 40 days ago: 1."""

    def hit(age_days: float, page: str, eid: str | None) -> Hit:
        return Hit(
            received_at=now - age_days * DAY,
            track_id=TRACK_ID,
            anonymous=eid is None,
            query=f"p=600,{page},,,,,1,0,,",
            ever_id=eid,
        )

    return [
        hit(0, "home", EIDS[0]),
        hit(0, "home", EIDS[1]),
        hit(0, "shop", EIDS[0]),
        hit(0, "home", None),
        hit(1, "shop", EIDS[1]),
        hit(1, "home", None),
        hit(1, "home", None),
        hit(40, "old", EIDS[0]),
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    now = time.time() - 60
    if request.param == "sqlite":
        url = f"sqlite:{tmp_path}/hits.sqlite3"
        backend: SQLiteBackend | PostgresBackend = SQLiteBackend(url[len("sqlite:") :])
    else:
        url = fresh_database(request.getfixturevalue("pg"))
        backend = PostgresBackend(url)

    async def fill() -> None:
        await backend.write_batch(hits(now))
        await backend.close()

    asyncio.run(fill())
    return url


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixel_middleware", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_report_command(store: str) -> None:
    out = cli("--store", store, "report", "--days", "7")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    day_rows = [line.split() for line in lines if re.match(r"\d{4}-\d\d-\d\d ", line)]
    # yesterday: 1 identified view, 2 anonymous, 1 visitor; today: 3, 1, 2 visitors
    assert [row[1:] for row in day_rows] == [["1", "2", "1"], ["3", "1", "2"]]
    assert "page views: 7; anonymous share: 42.9%" in out.stdout
    top = lines[lines.index("top pages:") + 1 :]
    assert top[0].split() == ["5", "home"] and top[1].split() == ["2", "shop"]
    assert "old" not in out.stdout  # 40 days ago is outside the window
    assert "reading hits" not in out.stderr  # small table: no progress bar


def test_prune_command(store: str) -> None:
    out = cli("--store", store, "prune", "--older-than", "30")
    assert out.returncode == 0 and "deleted 1 hit(s)" in out.stdout
    assert "old" not in {r["page_name"] for r in read_rows(store)}
    assert len(read_rows(store)) == 7


def test_cli_refuses_bad_input(tmp_path: Path) -> None:
    assert cli("--store", f"sqlite:{tmp_path}/x.db", "prune", "--older-than", "-1").returncode == 2
    assert cli("report", "--days", "abc").returncode == 2
    out = cli("--store", "postgresql://nobody@127.0.0.1:1/none", "report")
    assert out.returncode == 1 and "cannot open store" in out.stderr
    empty = cli("--store", f"sqlite:{tmp_path}/missing.db", "report")
    assert empty.returncode == 0 and "page views: 0" in empty.stdout
    assert not (tmp_path / "missing.db").exists()


def test_progress_bar_on_a_large_table(tmp_path: Path) -> None:
    path = tmp_path / "big.sqlite3"
    now = time.time()
    many = [
        Hit(
            received_at=now - i,
            track_id=TRACK_ID,
            anonymous=i % 2 == 0,
            query="p=600,p,,,,,1,0,,",
            ever_id=None if i % 2 == 0 else EIDS[0],
        )
        for i in range(25_000)
    ]
    backend = SQLiteBackend(path)
    asyncio.run(backend.write_batch(many))
    asyncio.run(backend.close())
    out = cli("--store", f"sqlite:{path}", "report", "--days", "2")
    assert out.returncode == 0
    assert "reading hits [" in out.stderr and "100% (25000/25000)" in out.stderr
    assert "page views: 25000; anonymous share: 50.0%" in out.stdout


def test_summary_counts_visitors_only_by_everid() -> None:
    summary = summarize(
        (
            __import__("datetime").datetime.fromtimestamp(h.received_at),
            h.anonymous,
            h.ever_id,
            h.page_name,
        )
        for h in hits(time.time())
    )
    assert sum(d.identified_visitors for d in summary.days.values()) == 1 + 2 + 1


def test_html_report(store: str) -> None:
    s = settings(store=store, report_token="let-me-see-it")
    client = TestClient(PixelMiddleware(html_app(b""), settings=s))
    assert client.get("/_pixel/report").status_code == 401
    assert client.get("/_pixel/report?token=wrong-token").status_code == 401
    assert client.get("/_pixel/report?token=let-me-see-it&days=0").status_code == 400
    assert client.get("/_pixel/report?token=let-me-see-it&days=x").status_code == 400
    r = client.get("/_pixel/report", headers={"authorization": "Bearer let-me-see-it"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert "<script" not in r.text and "http" not in r.text.split("<svg", 1)[1].split(">", 1)[
        0
    ].replace("http://www.w3.org/2000/svg", "")
    assert "7 page views, 42.9% anonymous" in r.text
    assert r.text.count('<rect class="identified"') == 2
    assert "<tr><td>home</td><td>5</td></tr>" in r.text
    for eid in EIDS:
        assert eid not in r.text


def test_html_report_is_off_without_token() -> None:
    client = TestClient(PixelMiddleware(html_app(b""), settings=settings(store="sqlite:x.db")))
    assert client.get("/_pixel/report?token=anything").status_code == 404
