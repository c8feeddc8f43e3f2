"""Consent receipts (issue #12 part 2): written by toggles, the browser API and a consent
manager's changed answer, kept in ``pixel_consents`` of SQLite and PostgreSQL as durably as hits,
holding nothing about the visitor; pruned, exported and reported."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from pixel_middleware import PixelMiddleware, get_visitor
from pixel_middleware.__main__ import main
from pixel_middleware.audit.receipts import holds_personal_data, receipt_personal_data
from pixel_middleware.audit.sources import spool_lines
from pixel_middleware.receipts import (
    RECEIPT_COOKIE,
    Receipt,
    ReceiptAction,
    new_receipt,
    new_receipt_id,
)
from pixel_middleware.report.html import report_page
from pixel_middleware.settings import PixelSettings
from pixel_middleware.sinks import Sink
from pixel_middleware.sinks.buffered import Spool
from pixel_middleware.sinks.postgres import PostgresSink
from pixel_middleware.sinks.schema import RECEIPT_COLUMNS, migrations
from pixel_middleware.sinks.sqlite import SQLiteBackend, SQLiteSink, connect
from pixel_middleware.store_url import parse_store
from pixel_middleware.toggles import toggle_url

from .conftest import fresh_database
from .helpers import set_cookies, settings
from .test_consent_decision import ONETRUST_NO, ONETRUST_YES

EID, SID = "8123456789012345678", "1234567890123456789"
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"
IDS = f"wtstp_eid={EID}; wtstp_sid={SID}"
SAME_ORIGIN = {"sec-fetch-site": "same-origin", "user-agent": UA}


def sink_for(store: str, tmp_path: Path) -> Sink:
    location = parse_store(store)
    if location.kind == "sqlite":
        return SQLiteSink(location.target)
    return PostgresSink(store, spool_dir=str(tmp_path / "spool"))


def receipts_in(store: str) -> list[dict[str, Any]]:
    location = parse_store(store)
    sql = f"SELECT {', '.join(RECEIPT_COLUMNS)} FROM pixel_consents ORDER BY received_at"  # noqa: S608
    if location.kind == "sqlite":
        conn = sqlite3.connect(location.target)
        try:
            rows = [dict(zip(RECEIPT_COLUMNS, r, strict=True)) for r in conn.execute(sql)]
        finally:
            conn.close()
        return rows
    import psycopg

    with psycopg.connect(store) as pg_conn:
        return [dict(zip(RECEIPT_COLUMNS, r, strict=True)) for r in pg_conn.execute(sql)]


def site(s: PixelSettings, sink: Sink) -> PixelMiddleware:
    async def page(request: Request) -> Response:
        visitor = get_visitor(request)
        return HTMLResponse(f"<html><body><p id='r'>{visitor.receipt_id}</p></body></html>")

    return PixelMiddleware(Starlette(routes=[Route("/", page)]), settings=s, sink=sink)


def assert_anonymous_receipt(row: dict[str, Any]) -> None:
    """The row holds nothing that names the visitor: what the audit checks, and more."""
    assert receipt_personal_data(row) is None, row
    blob = json.dumps(row, default=str)
    for secret in (EID, SID, UA, "testclient", "127.0.0.1"):
        assert secret not in blob, (secret, row)


def client(app: PixelMiddleware, **headers: str) -> TestClient:
    return TestClient(app, base_url="http://shop.example", headers=headers)


# ------------------------------------------------------------------ the record itself


def test_receipt_ids_are_random_and_never_look_like_an_identifier() -> None:
    ids = {new_receipt_id() for _ in range(2_000)}
    assert len(ids) == 2_000
    for value in ids:
        assert len(value) == 33 and value[0] == "r"
        assert not holds_personal_data(value)


def test_receipt_round_trips_through_a_spool_line(tmp_path: Path) -> None:
    receipt = new_receipt(settings(enable_anonymous_function=True), "optout", "toggle", gpc=True)
    spool = Spool(tmp_path)
    path = spool.add([receipt])
    assert json.loads(path.read_text())["kind"] == "receipt"
    assert Spool.read(path) == [receipt]
    assert receipt.mode == "opt-out" and receipt.policy_version == "1"


def test_settings_check_the_receipt_settings() -> None:
    assert settings().consent_receipt_days == 1095
    with pytest.raises(ValueError, match="consent_receipt_days"):
        settings(consent_receipt_days=0)
    with pytest.raises(ValueError, match="consent_policy_version"):
        settings(consent_policy_version="")
    assert settings(consent_policy_version="2024-05").consent_policy_version == "2024-05"


# ------------------------------------------------------------------ writing receipts


def test_toggle_writes_a_receipt_with_nothing_about_the_visitor(store: str, tmp_path: Path) -> None:
    s = settings(enable_anonymous_function=True, consent_policy_version="2024-05")
    with client(site(s, sink_for(store, tmp_path)), **SAME_ORIGIN) as c:
        r = c.get(
            toggle_url(s, "optout", "/", None),
            headers={"cookie": IDS, "sec-gpc": "1"},
            follow_redirects=False,
        )
        assert r.status_code == 303
    (row,) = receipts_in(store)
    assert row["receipt_id"].startswith("r") and len(row["receipt_id"]) == 33
    assert (row["action"], row["mode"], row["source"]) == ("optout", "opt-out", "toggle")
    assert row["policy_version"] == "2024-05" and bool(row["gpc"]) is True
    assert_anonymous_receipt(row)
    cookie = set_cookies(r.headers.get_list("set-cookie"))[RECEIPT_COOKIE]
    assert cookie.value == row["receipt_id"]
    assert cookie.has("httponly") and cookie.attrs["samesite"] == "Lax"
    assert cookie.attrs["max-age"] == str(1095 * 86_400)


def test_the_page_shows_the_receipt_id_the_cookie_holds(tmp_path: Path) -> None:
    s = settings(enable_anonymous_function=True)
    app = site(s, SQLiteSink(tmp_path / "p.sqlite3"))
    with client(app, **SAME_ORIGIN) as c:
        c.get(toggle_url(s, "optin", "/", None), follow_redirects=False)
        receipt_id = c.cookies[RECEIPT_COOKIE]
        assert f">{receipt_id}<" in c.get("/").text


def test_no_receipt_cookie_without_a_store_that_keeps_receipts(tmp_path: Path) -> None:
    from pixel_middleware import JsonLinesSink

    s = settings(enable_anonymous_function=True)
    with client(site(s, JsonLinesSink(tmp_path / "hits.jsonl")), **SAME_ORIGIN) as c:
        r = c.get(toggle_url(s, "optout", "/", None), follow_redirects=False)
    assert RECEIPT_COOKIE not in set_cookies(r.headers.get_list("set-cookie"))


def test_browser_api_records_the_cookie_the_request_carries(store: str, tmp_path: Path) -> None:
    s = settings(enable_anonymous_function=True, anonymous_opt_in=True)
    app = site(s, sink_for(store, tmp_path))
    with client(app) as c:
        # No same-origin evidence (or another site's): nothing is recorded.
        assert c.post("/_pixel/receipt").status_code == 403
        r = c.post("/_pixel/receipt", headers={"origin": "https://evil.example"})
        assert r.status_code == 403
        assert c.get("/_pixel/receipt").status_code == 405
        # Opt-in mode: the cookie present means identified.
        r = c.post(
            "/_pixel/receipt",
            headers={**SAME_ORIGIN, "cookie": f"miCookieOptOut=1; {IDS}"},
        )
        assert r.status_code == 204
        first = set_cookies(r.headers.get_list("set-cookie"))[RECEIPT_COOKIE].value
        r = c.post("/_pixel/receipt", headers={**SAME_ORIGIN, "cookie": IDS})
        assert r.status_code == 204
    rows = receipts_in(store)
    assert [(x["action"], x["source"], x["mode"]) for x in rows] == [
        ("optin", "browser", "opt-in"),
        ("optout", "browser", "opt-in"),
    ]
    assert rows[0]["receipt_id"] == first
    for row in rows:
        assert_anonymous_receipt(row)


def test_browser_endpoint_is_off_without_the_anonymous_function(tmp_path: Path) -> None:
    app = site(settings(), SQLiteSink(tmp_path / "p.sqlite3"))
    with client(app, **SAME_ORIGIN) as c:
        assert c.post("/_pixel/receipt").status_code == 404


def test_a_consent_manager_changing_its_answer_writes_exactly_one_receipt(
    store: str, tmp_path: Path
) -> None:
    s = settings(
        enable_anonymous_function=True, anonymous_opt_in=True, consent_source=("onetrust",)
    )
    app = site(s, sink_for(store, tmp_path))
    with client(app, **SAME_ORIGIN) as c:
        c.cookies.set("OptanonConsent", ONETRUST_YES, domain="shop.example")
        first = c.get("/")
        value = c.cookies[RECEIPT_COOKIE]
        receipt_id, code = value.split(".")
        assert code == "i" and f">{receipt_id}<" in first.text
        # The same answer again, twice: nothing new.
        for _ in range(2):
            again = c.get("/")
            assert RECEIPT_COOKIE not in set_cookies(again.headers.get_list("set-cookie"))
        c.cookies.set("OptanonConsent", ONETRUST_NO, domain="shop.example")
        c.get("/")
        assert c.cookies[RECEIPT_COOKIE].endswith(".a")
        c.get("/")
    rows = receipts_in(store)
    assert [(x["action"], x["source"]) for x in rows] == [
        ("identified", "onetrust"),
        ("anonymous", "onetrust"),
    ]
    assert rows[0]["receipt_id"] == receipt_id
    for row in rows:
        assert_anonymous_receipt(row)


def test_a_toggle_keeps_the_source_answer_in_the_cookie(tmp_path: Path) -> None:
    s = settings(enable_anonymous_function=True, consent_source=("onetrust",))
    app = site(s, SQLiteSink(tmp_path / "p.sqlite3"))
    with client(app, **SAME_ORIGIN) as c:
        c.cookies.set("OptanonConsent", ONETRUST_YES, domain="shop.example")
        c.get("/")
        c.get(toggle_url(s, "optout", "/", None), follow_redirects=False)
        assert c.cookies[RECEIPT_COOKIE].endswith(".i")
        c.get("/")  # the manager's answer did not change: no receipt
    rows = receipts_in(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    assert [x["source"] for x in rows] == ["onetrust", "toggle"]


# ------------------------------------------------------------------ durability


def test_receipts_are_spooled_while_postgres_is_down_and_replayed(pg: Any, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    s = settings(enable_anonymous_function=True)
    down = PostgresSink("postgresql://127.0.0.1:1/nowhere", spool_dir=str(spool))
    with client(site(s, down), **SAME_ORIGIN) as c:
        r = c.get(toggle_url(s, "optout", "/", None), follow_redirects=False)
        assert r.status_code == 303
        receipt_id = c.cookies[RECEIPT_COOKIE]
    lines = list(spool_lines([spool]))
    assert [line.receipt["receipt_id"] for line in lines if line.receipt] == [receipt_id]
    dsn = fresh_database(pg)
    with client(site(s, PostgresSink(dsn, spool_dir=str(spool)))):
        deadline = time.monotonic() + 10
        while not receipts_in_pg(dsn) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [x["receipt_id"] for x in receipts_in(dsn)] == [receipt_id]
    assert not list(spool.glob("*.jsonl"))


def receipts_in_pg(dsn: str) -> list[dict[str, Any]]:
    try:
        return receipts_in(dsn)
    except Exception:
        return []  # not migrated yet


def test_an_old_store_is_migrated_to_hold_receipts(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    for statement in migrations("sqlite", 1):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    conn = connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM pixel_consents").fetchone()[0] == 0
    conn.close()


# ------------------------------------------------------------------ prune, export, report, audit


def write_receipts(path: Path, receipts: list[Receipt]) -> None:
    backend = SQLiteBackend(path)
    backend.write_rows(receipts)
    backend.close_now()


def aged(days_ago: float, action: ReceiptAction = "optout", source: str = "toggle") -> Receipt:
    receipt = new_receipt(settings(enable_anonymous_function=True), "optout", source, gpc=False)
    return receipt._replace(received_at=time.time() - days_ago * 86_400, action=action)


@pytest.fixture
def receipt_store(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "r.sqlite3"
    write_receipts(
        path,
        [aged(1200), aged(3, "optin"), aged(1, "optout"), aged(1, "anonymous", "tcf")],
    )
    yield path


def test_prune_deletes_receipts_past_their_retention(
    receipt_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIXEL_CONSENT_RECEIPT_DAYS", raising=False)
    assert main(["prune", "--older-than", "30", "--store", str(receipt_store)]) == 0
    assert "deleted 1 consent receipt(s)" in capsys.readouterr().out
    assert len(receipts_in(f"sqlite:///{receipt_store}")) == 3
    monkeypatch.setenv("PIXEL_CONSENT_RECEIPT_DAYS", "2")
    assert main(["prune", "--older-than", "30", "--store", str(receipt_store)]) == 0
    assert "consent_receipt_days=2" in capsys.readouterr().out
    assert len(receipts_in(f"sqlite:///{receipt_store}")) == 2


def test_consents_export_as_csv_and_json(
    receipt_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 10 * 86_400))
    assert main(["consents", "--since", since, "--store", str(receipt_store)]) == 0
    out = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out.out)))
    assert [r["action"] for r in rows] == ["optin", "optout", "anonymous"]
    assert set(rows[0]) == set(RECEIPT_COLUMNS) and rows[0]["gpc"] == "false"
    assert rows[0]["received_at"].endswith("+00:00")
    assert "3 receipt(s)" in out.err
    args = ["consents", "--since", since, "--format", "json", "--store", str(receipt_store)]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in data] == ["toggle", "toggle", "tcf"]
    assert data[0]["gpc"] is False
    assert main(["consents", "--since", "2999-01-01", "--format", "json", "--store",
                 str(receipt_store)]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out) == []
    with pytest.raises(SystemExit):
        main(["consents", "--since", "yesterday", "--store", str(receipt_store)])


def test_html_report_shows_choices_per_day(receipt_store: Path) -> None:
    html = report_page(f"sqlite:///{receipt_store}", 7)
    assert 'id="choices"' in html and "Choices per day" in html
    table = html[html.index('id="choices"') :]
    rows = [r for r in table.split("<tr") if "<td>" in r]
    assert len(rows) == 7
    today, yesterday = rows[-1], rows[-2]
    assert "<td>1</td><td>0</td><td>1</td><td>0</td>" in yesterday or (
        "<td>1</td><td>0</td><td>1</td><td>0</td>" in today
    )


def test_audit_passes_on_a_store_with_real_receipts(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = settings(
        enable_anonymous_function=True,
        consent_source=("onetrust",),
        store=store,
        spool_dir=str(tmp_path / "spool"),
    )
    app = site(s, sink_for(store, tmp_path))
    with client(app, **SAME_ORIGIN) as c:
        c.get(toggle_url(s, "optout", "/", None), headers={"cookie": IDS})
        c.post("/_pixel/receipt", headers={"cookie": f"miCookieOptOut=1; {IDS}"})
        c.cookies.set("OptanonConsent", ONETRUST_NO, domain="shop.example")
        c.get("/", headers={"x-forwarded-for": "203.0.113.9"})
    assert len(receipts_in(store)) == 3
    status = main(["audit", "--store", store, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["receipts_with_personal_data"]["status"] == "pass"
    assert checks["receipts_with_personal_data"]["count"] == 0
    assert status in (0, 1)
    assert all(c["status"] != "fail" for c in report["checks"]), report


def test_audit_checks_receipts_waiting_in_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.add(
        [new_receipt(settings(enable_anonymous_function=True), "optin", "browser", gpc=False)]
    )
    bad = dict(new_receipt(settings(), "optin", "browser", gpc=False).to_dict(), note=UA)
    (tmp_path / "spool" / "spool-0.jsonl").write_text(json.dumps(bad) + "\n")
    lines = list(spool_lines([tmp_path / "spool"]))
    found = [receipt_personal_data(line.receipt or {}) for line in lines]
    assert all(line.receipt is not None and line.row is None for line in lines)
    assert sorted(f or () for f in found) == [(), ("note",)]


def test_only_sinks_with_a_store_keep_receipts(tmp_path: Path) -> None:
    from pixel_middleware import JsonLinesSink
    from pixel_middleware.sinks import MultiSink, RelaySink, keeps_receipts

    relay = RelaySink("http://127.0.0.1:1", spool_dir=tmp_path / "relay")
    assert not keeps_receipts(relay) and not keeps_receipts(JsonLinesSink(tmp_path / "h"))
    assert asyncio.run(_write(relay)) is False
    assert keeps_receipts(MultiSink([SQLiteSink(tmp_path / "p.sqlite3"), relay]))


async def _write(sink: Sink) -> bool:
    from pixel_middleware.sinks import write_receipts as hand

    return await hand(sink, [new_receipt(settings(), "optin", "browser", gpc=False)])
