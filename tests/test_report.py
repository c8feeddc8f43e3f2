"""`python -m pixel_middleware report|prune` and the HTML report, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pixel_middleware import PixelMiddleware
from pixel_middleware.report.period import Period, cutoff, parse_age
from pixel_middleware.report.summary import ReportRow, summarize
from pixel_middleware.report.terminal import safe
from pixel_middleware.sinks import Hit
from pixel_middleware.sinks.postgres import PostgresBackend
from pixel_middleware.sinks.sqlite import SQLiteBackend

from .asgi import html_app
from .conftest import fresh_database
from .helpers import TRACK_ID, cli, settings
from .stores import read_rows

DAY = 86_400
EIDS = ["8000000000000000001", "8000000000000000002"]


def hit(
    now: float, age_days: float, page: str, eid: str | None, event: str = "", visit: str = ""
) -> Hit:
    """An identified hit's session is its everID's; an anonymous one may have a temporary id."""
    return Hit(
        received_at=now - age_days * DAY,
        track_id=TRACK_ID,
        anonymous=eid is None,
        query=f"p=600,{page},,,,,1,0,," + (f"&ct={event}" if event else ""),
        ever_id=eid,
        session_id=("1" + eid[1:]) if eid else (f"t{visit * 32}" if visit else None),
    )


def hits(now: float) -> list[Hit]:
    """Today: 3 identified views by 2 visitors, 1 anonymous view, 1 identified and 1 anonymous
    event (one anonymous visit); yesterday: 1 identified and 2 anonymous views (two anonymous
    visits); 40 days ago: 1 view."""
    return [
        hit(now, 0, "home", EIDS[0]),
        hit(now, 0, "home", EIDS[1]),
        hit(now, 0, "shop", EIDS[0]),
        hit(now, 0, "home", None, visit="a"),
        hit(now, 0, "product/teapot", EIDS[0], "add-to-basket"),
        hit(now, 0, "product/teapot", None, "add%20to%20basket", visit="a"),
        hit(now, 1, "shop", EIDS[1]),
        hit(now, 1, "home", None, visit="b"),
        hit(now, 1, "home", None, visit="c"),
        hit(now, 40, "old", EIDS[0]),
    ]


def fill(url: str, rows: list[Hit]) -> None:
    if url.startswith("postgresql://"):
        backend: SQLiteBackend | PostgresBackend = PostgresBackend(url)
    else:
        backend = SQLiteBackend(url.removeprefix("sqlite:///"))

    async def write() -> None:
        await backend.write_batch(rows)
        await backend.close()

    asyncio.run(write())


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # A second ago, so "today" stays today unless the test starts in the first second of a day.
    now = time.time() - 1
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/hits.sqlite3"
    else:
        url = fresh_database(request.getfixturevalue("pg"))
    fill(url, hits(now))
    return url


def day_rows(out: str) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split()[1:]
        for line in out.splitlines()
        if re.match(r"\d{4}-\d\d-\d\d ", line)
    }


def test_report_command(store: str) -> None:
    out = cli("--store", store, "report", "--days", "7")
    assert out.returncode == 0, out.stderr
    rows = day_rows(out.stdout)
    # every day of the period is listed, days without hits too
    assert len(rows) == 7
    today, yesterday = sorted(rows)[-1], sorted(rows)[-2]
    # columns: page views identified, anonymous; events identified, anonymous; identified
    # visitors and visits; anonymous visits (by temporary session id)
    assert rows[today] == ["3", "1", "1", "1", "2", "2", "1"]
    assert rows[yesterday] == ["1", "2", "0", "0", "1", "1", "2"]
    assert "page views: 7 (42.9% anonymous); events: 2 (50.0% anonymous)" in out.stdout
    assert "days are UTC days" in out.stdout
    lines = out.stdout.splitlines()
    pages = lines[lines.index("top pages:") + 1 :]
    assert pages[0].split() == ["page", "views", "page"]  # a header over the columns
    assert pages[1].split() == ["5", "home"] and pages[2].split() == ["2", "shop"]
    events = lines[lines.index("top events:") + 1 :]
    assert events[0].split() == ["events", "event"]
    assert sorted(line.strip() for line in events[1:3]) == [
        "1  add to basket",
        "1  add-to-basket",
    ]
    assert "old" not in out.stdout  # 40 days ago is outside the period
    assert "reading hits" not in out.stderr  # small table: no progress bar


def test_store_option_goes_before_or_after_the_command_and_takes_a_path(tmp_path: Path) -> None:
    fill(f"sqlite:///{tmp_path}/hits.db", hits(time.time() - 1))
    for args in (
        ("--store", f"{tmp_path}/hits.db", "report"),
        ("report", "--store", f"{tmp_path}/hits.db"),
        ("report", "--store", f"sqlite:///{tmp_path}/hits.db"),
        ("--store", "hits.db", "report"),  # relative to the working directory
    ):
        out = cli(*args, cwd=tmp_path)
        assert out.returncode == 0, (args, out.stderr)
        assert f"store: {tmp_path}/hits.db" in out.stdout
        assert "page views: 7" in out.stdout


def test_cli_reads_the_store_the_app_uses(tmp_path: Path) -> None:
    fill(f"sqlite:///{tmp_path}/app.db", hits(time.time() - 1))
    # The same variable PixelSettings.from_env reads.
    out = cli("report", cwd=tmp_path, PIXEL_STORE="sqlite:///app.db")
    assert out.returncode == 0 and "page views: 7" in out.stdout, out.stderr
    # Settings built in code: a PixelSettings, a PixelMiddleware, Django's dict, a function.
    (tmp_path / "myshop.py").write_text(
        "from pixel_middleware import PixelMiddleware, PixelSettings\n"
        "settings = PixelSettings(track_id='123451234512345', secret_key='s' * 16,\n"
        "                         store='sqlite:///app.db', report_time_zone='Asia/Tokyo')\n"
        "app = PixelMiddleware(lambda *a: None, settings=settings)\n"
        "PIXEL_MIDDLEWARE = {'track_id': '123451234512345', 'store': 'app.db'}\n"
        "def make_settings(): return settings\n"
    )
    for attribute in ("settings", "app", "PIXEL_MIDDLEWARE", "make_settings"):
        out = cli("report", "--settings", f"myshop:{attribute}", cwd=tmp_path)
        assert out.returncode == 0, (attribute, out.stderr)
        assert f"store: {tmp_path}/app.db" in out.stdout
    assert (
        "days are Asia/Tokyo days"
        in cli("--settings", "myshop:settings", "report", cwd=tmp_path).stdout
    )


def test_missing_store_is_an_error_that_names_the_path(tmp_path: Path) -> None:
    out = cli("report", cwd=tmp_path)
    assert out.returncode == 1 and out.stdout == ""
    assert f"no store at {tmp_path}/pixel_hits.sqlite3" in out.stderr
    assert "the default store" in out.stderr
    out = cli("--store", f"sqlite:///{tmp_path}/missing.db", "report")
    assert out.returncode == 1 and f"no store at {tmp_path}/missing.db" in out.stderr
    assert not (tmp_path / "missing.db").exists()  # reading never creates a store
    (tmp_path / "notes.txt").write_text("not a database, but long enough to look at " * 10)
    out = cli("--store", f"{tmp_path}/notes.txt", "report")
    assert out.returncode == 1 and "is not a SQLite database" in out.stderr
    out = cli("report", cwd=tmp_path, PIXEL_STORE="none")
    assert out.returncode == 1 and "keep no store" in out.stderr


def test_cli_refuses_bad_input(tmp_path: Path) -> None:
    out = cli("--store", "sqlite://pixel.db", "report")
    assert out.returncode == 1
    assert "did you mean 'sqlite:///pixel.db'" in out.stderr
    assert "sqlite:////absolute/path.db" in out.stderr
    assert cli("--store", f"{tmp_path}/x.db", "prune", "--older-than", "-1").returncode == 2
    assert cli("report", "--days", "abc").returncode == 2
    assert cli("report", "--days", "0").returncode == 2
    assert cli("report", "--time-zone", "Mars/Olympus").returncode == 2
    out = cli("--store", "postgresql://nobody:pw@127.0.0.1:1/none", "report")
    assert out.returncode == 1 and "cannot open store postgresql://nobody:***@" in out.stderr
    assert "pw@" not in out.stderr
    out = cli("report", "--settings", "no_such_module:settings", cwd=tmp_path)
    assert out.returncode == 1 and "cannot import no_such_module" in out.stderr


def test_prune_command(store: str) -> None:
    out = cli("--store", store, "prune", "--older-than", "30")
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(
        r"deleted 1 hit\(s\) received before \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n"
        r"deleted 0 consent receipt\(s\) received before \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
        r"\(consent_receipt_days=1095\)\n",
        out.stdout,
    )
    assert "old" not in {r["page_name"] for r in read_rows(store)}
    assert len(read_rows(store)) == 9


def test_prune_cuts_to_the_second(tmp_path: Path) -> None:
    now = time.time()
    url = f"sqlite:///{tmp_path}/hits.db"
    fill(url, [hit(now, 2 / 24, "two-hours", None), hit(now, 0.5 / 24, "half-hour", None)])
    out = cli("--store", url, "prune", "--older-than", "1h")
    assert out.returncode == 0 and "deleted 1 hit(s)" in out.stdout, out.stderr
    assert [r["page_name"] for r in read_rows(url)] == ["half-hour"]
    help_text = " ".join(cli("prune", "--help").stdout.split())  # argparse wraps lines
    assert "AGE" in help_text and "12h" in help_text and "to the second" in help_text


def test_ages() -> None:
    assert parse_age("30").days == 30
    assert parse_age("0.5").total_seconds() == 43_200
    assert parse_age("12h").total_seconds() == 43_200
    assert parse_age("90m").total_seconds() == 5_400
    assert parse_age("45s").total_seconds() == 45
    with pytest.raises(ValueError, match="not an age"):
        parse_age("3 weeks")
    moment = datetime(2026, 11, 25, 14, 3, 12, 654321, tzinfo=UTC)
    assert cutoff(parse_age("1h"), moment) == datetime(2026, 11, 25, 13, 3, 12, tzinfo=UTC)


def test_control_characters_never_reach_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "hits.db"
    fill(f"sqlite:///{path}", hits(time.time() - 1))
    # The stores clean control characters on the way in; an older or foreign row may not be.
    evil = "home\x1b]0;owned\x07\x1b[2J\x1b[1A\u202eevil\r\n"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE pixel_hits SET page_name = ? WHERE page_name = 'shop'", (evil,))
        conn.execute(
            "UPDATE pixel_hits SET query = query || '&ct=' || ? WHERE page_name = 'old'",
            ("%1B%5B31mred",),
        )
    out = cli("--store", str(path), "report", "--days", "60")
    assert out.returncode == 0, out.stderr
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", out.stdout)
    assert "home\\x1b]0;owned\\x07\\x1b[2J\\x1b[1A\\u202eevil\\x0d\\x0a" in out.stdout
    assert "\\x1b[31mred" in out.stdout
    out = cli("--store", f"{tmp_path}/\x1b[2Jgone.db", "report")
    assert "\x1b" not in out.stderr and "\\x1b[2Jgone.db" in out.stderr
    assert safe("plain text, ünïcode & \\ stay") == "plain text, ünïcode & \\ stay"


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
    fill(f"sqlite:///{path}", many)
    out = cli("--store", str(path), "report", "--days", "2")
    assert out.returncode == 0
    assert "reading hits [" in out.stderr and "100% (25000/25000)" in out.stderr
    assert "page views: 25000 (50.0% anonymous)" in out.stdout


def rows_at(*moments: tuple[datetime, bool, str | None]) -> list[ReportRow]:
    return [ReportRow(m, anonymous, eid, "p", None) for m, anonymous, eid in moments]


def test_summary_counts_visitors_only_by_everid() -> None:
    period = Period.last_days(3, now=datetime(2026, 11, 25, 12, tzinfo=UTC))
    summary = summarize(
        rows_at(
            (datetime(2026, 11, 25, 9, tzinfo=UTC), False, EIDS[0]),
            (datetime(2026, 11, 25, 10, tzinfo=UTC), False, EIDS[0]),
            (datetime(2026, 11, 25, 11, tzinfo=UTC), True, None),
            (datetime(2026, 11, 24, 11, tzinfo=UTC), False, EIDS[1]),
        ),
        period,
    )
    assert [d.identified_visitors for d in summary.days.values()] == [0, 1, 1]
    assert list(summary.days) == [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)]


def test_days_are_days_of_the_configured_time_zone() -> None:
    # 23:30 UTC on the 24th is already the 25th in Berlin (UTC+1 in November).
    late = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    utc = summarize(rows_at((late, True, None)), Period.last_days(2, "UTC", now))
    berlin = summarize(rows_at((late, True, None)), Period.last_days(2, "Europe/Berlin", now))
    assert utc.days[date(2026, 11, 24)].anonymous_views == 1
    assert berlin.days[date(2026, 11, 25)].anonymous_views == 1
    assert Period.last_days(2, "Europe/Berlin", now).since == datetime(2026, 11, 23, 23, tzinfo=UTC)


def test_html_report(store: str) -> None:
    s = settings(store=store, report_token="let-me-see-it")
    client = TestClient(PixelMiddleware(html_app(b""), settings=s))
    assert client.get("/_pixel/report").status_code == 401
    assert client.get("/_pixel/report?token=wrong-token").status_code == 401
    assert client.get("/_pixel/report?token=let-me-see-it&days=0").status_code == 400
    assert client.get("/_pixel/report?token=let-me-see-it&days=x").status_code == 400
    r = client.get("/_pixel/report?days=7", headers={"authorization": "Bearer let-me-see-it"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    page = r.text
    assert "<script" not in page
    svg = page.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert '<strong id="views">7</strong>42.9% anonymous' in page
    assert '<strong id="events">2</strong>50.0% anonymous' in page
    assert "Days are days in <strong>UTC</strong>" in page
    assert '<a class="back" href="/">' in page
    # a bar for each of the 7 days; numbers above the two days with page views
    assert svg.count('<rect class="identified"') == 7
    assert [v for v in re.findall(r'class="value"[^>]*>(\d+)<', svg)] == ["3", "4"]
    assert 'text-anchor="end">0</text>' in svg  # the y axis starts at 0
    assert "<th>page</th><th>page views</th>" in page and "<th>event</th><th>events</th>" in page
    assert '<tr><td class="name">home</td><td>5</td></tr>' in page
    assert '<td class="name">add to basket</td><td>1</td>' in page
    for eid in EIDS:
        assert eid not in page


def test_html_report_time_zone_and_empty_store(tmp_path: Path) -> None:
    s = settings(
        store=f"{tmp_path}/none-yet.db",
        report_token="let-me-see-it",
        report_time_zone="America/New_York",
    )
    client = TestClient(PixelMiddleware(html_app(b""), settings=s))
    r = client.get("/_pixel/report?token=let-me-see-it")
    assert r.status_code == 200
    assert "Days are days in <strong>America/New_York</strong>" in r.text
    assert "no page views in this period" in r.text
    assert not (tmp_path / "none-yet.db").exists()


def test_report_token_that_is_not_ascii() -> None:
    token = "clé-secrète-ünïcode"
    s = settings(store="sqlite:///unused.db", report_token=token)
    client = TestClient(PixelMiddleware(html_app(b""), settings=s))
    escaped = "cl%C3%A9-secr%C3%A8te-%C3%BCn%C3%AFcode"
    assert client.get(f"/_pixel/report?token={escaped}").status_code == 200
    # Raw UTF-8 bytes in the header, as a client that does not encode them sends them.
    header = [(b"authorization", b"Bearer " + token.encode())]
    assert client.get("/_pixel/report", headers=header).status_code == 200
    latin1 = "cl%E9-secr%E8te-%FCn%EFcode"  # the same text in another encoding is not the token
    assert client.get(f"/_pixel/report?token={latin1}").status_code == 401


def test_html_report_is_off_without_token() -> None:
    client = TestClient(PixelMiddleware(html_app(b""), settings=settings(store="sqlite:///x.db")))
    assert client.get("/_pixel/report?token=anything").status_code == 404
