"""`python -m pixel_middleware audit`: each check catches its own violation, written straight into
a store (SQLite and PostgreSQL), a spool and a receipts table; a store the real collector wrote
passes; the three formats print row ids and names, never values, and are safe to print."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixel_middleware import PixelMiddleware, PixelSettings
from pixel_middleware.__main__ import main
from pixel_middleware.addresses import truncate_ip
from pixel_middleware.audit import AuditSettings, RowRules, is_truncated_to, resolve, run_audit
from pixel_middleware.audit.model import AuditReport, CheckResult
from pixel_middleware.audit.receipts import holds_personal_data, receipt_personal_data
from pixel_middleware.audit.render import render
from pixel_middleware.audit.rows import (
    anonymous_with_full_ip,
    anonymous_with_identifier_parameter,
    anonymous_with_session_id,
    anonymous_with_suppressed_parameter,
    anonymous_with_url_query,
    anonymous_without_nc,
    older_than_retention,
)
from pixel_middleware.audit.settings_checks import check_settings
from pixel_middleware.audit.sources import SpoolLine, spool_row
from pixel_middleware.report.source import SourceError
from pixel_middleware.sinks import Hit
from pixel_middleware.sinks.base import is_truncated_ip
from pixel_middleware.sinks.postgres import PostgresBackend
from pixel_middleware.sinks.schema import COLUMNS, utc_text

from .asgi import html_app, request
from .conftest import fresh_database
from .helpers import SECRET, TRACK_ID, cli

DAY = 86_400
EID = "8123456789012345678"
SID = "1234567890123456789"
TEMPORARY = "t" + "0123456789abcdef" * 2
UA = "Mozilla/5.0 (X11; Linux x86_64) Secret/1.0"
Q = "p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0"
CLEAN = f"{Q}&nc=1&cp1=x"
# A parameter name no page should ever print raw: markup and a terminal escape.
HOSTILE = "EID[<script>alert(1)</script>\x1b[2J]"
WT = f"/_pixel/{TRACK_ID}/wt"

# The settings the seeded store is audited with: Django's dict form, with a retention.
SEEDED_SETTINGS = {
    "track_id": TRACK_ID,
    "enable_anonymous_function": True,
    "suppress_parameter": ["cd", "uc5"],
    "anonymous_ip_truncation": 1,
    "anonymous_query_allowlist": ["q"],
    "anonymous_cookie_minutes": 43_200,
    "ever_id_days": 500,  # the one settings violation
    "retention_days": 30,
}

ROW_CHECK_NAMES = (
    "anonymous_with_ever_id",
    "anonymous_with_session_id",
    "anonymous_with_user_agent",
    "anonymous_with_full_ip",
    "anonymous_with_suppressed_parameter",
    "anonymous_with_identifier_parameter",
    "anonymous_with_url_query",
    "anonymous_without_nc",
    "rows_older_than_retention",
)


def row(hit_id: str, *, age_days: float = 0, **values: Any) -> dict[str, Any]:
    """A clean anonymous row, with ``values`` replacing columns."""
    base: dict[str, Any] = {
        "hit_id": hit_id,
        "received_at": time.time() - age_days * DAY,
        "track_id": TRACK_ID,
        "page_name": "shop/home",
        "anonymous": True,
        "ever_id": None,
        "session_id": None,
        "customer_id": None,
        "params": '[["cp1","x"]]',
        "ip": None,
        "user_agent": None,
        "query": CLEAN,
    }
    return base | values


def seeded_rows() -> list[dict[str, Any]]:
    """One row per row check, named after it, breaking that rule only; and clean rows."""
    return [
        row("anonymous_with_ever_id", ever_id=EID),
        row("anonymous_with_session_id", session_id=SID),
        row("anonymous_with_user_agent", user_agent=UA),
        row("anonymous_with_full_ip", ip="198.51.100.77"),
        row("anonymous_with_suppressed_parameter", params='[["cp1","x"],["cd","C-1"]]'),
        row("anonymous_with_identifier_parameter", query=f"{CLEAN}&{HOSTILE}={EID}"),
        row(
            "anonymous_with_url_query",
            query=f"{CLEAN}&pu=https%3A%2F%2Fshop%2Fp%3Femail%3Da%2540b.example",
        ),
        row("anonymous_without_nc", query=f"{Q}&cp1=x"),
        row("rows_older_than_retention", age_days=100),
        # Clean: what the collector stores for anonymous and identified visitors.
        row("clean-anonymous", ip="198.51.100.0", query=f"{CLEAN}&pu=https%3A%2F%2Fs%3Fq%3Dtea"),
        row("clean-ipv6", ip="2a02:8070:a1b2::"),
        row(
            "clean-identified",
            anonymous=False,
            ever_id=EID,
            session_id=SID,
            customer_id="C-1",
            ip="198.51.100.77",
            user_agent=UA,
            query=f"{Q}&eid={EID}&cd=C-1&uc5=f",
            params='[["uc5","f"]]',
        ),
    ]


def spool_lines(spool: str) -> dict[str, list[str]]:
    """Spool, dead-letter and rejected files (``spool``: the store's spool folder) and their
    lines."""
    clean = Hit(time.time(), TRACK_ID, True, CLEAN).to_dict()
    return {
        f"{spool}/spool-1.jsonl": [
            json.dumps(clean),
            json.dumps(clean | {"hit_id": "s-ever", "ever_id": EID}),
            "not a hit {",
        ],
        f"{spool}/dead/dead-1.jsonl": [
            json.dumps({"reason": "refused", "hit": clean | {"hit_id": "d-ua", "user_agent": UA}})
        ],
        "spool/relay/rejected/spool-2.jsonl": [
            json.dumps(clean | {"hit_id": "r-uc5", "query": f"{CLEAN}&UC5=f"})
        ],
    }


RECEIPT_COLUMNS = ("receipt_id", "choice", "detail", "visitor", "created_at")
RECEIPTS = [
    ("r1", "anonymous", '{"via": "link", "version": "1.2.3"}', None, "2026-11-25 10:00:00"),
    ("r2", "identified", f"ua: {UA}", None, "2026-11-25 10:01:00"),
    ("r3", "anonymous", "{}", int(EID), "2026-11-25 10:02:00"),
]


def seed_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    with conn:
        from pixel_middleware.sinks.sqlite import migrate

        migrate(conn)
        marks = ", ".join("?" for _ in COLUMNS)
        for r in seeded_rows():
            values = r | {"received_at": utc_text(r["received_at"])}
            conn.execute(
                f"INSERT INTO pixel_hits VALUES ({marks})",  # noqa: S608
                [values[c] for c in COLUMNS],
            )
        # A receipts table of another shape than the store's own: the check reads any.
        conn.execute("DROP TABLE pixel_consents")
        conn.execute(f"CREATE TABLE pixel_consents ({', '.join(RECEIPT_COLUMNS)})")
        conn.executemany("INSERT INTO pixel_consents VALUES (?, ?, ?, ?, ?)", RECEIPTS)
    conn.close()


def seed_postgres(dsn: str) -> None:
    import psycopg

    async def migrate() -> None:
        backend = PostgresBackend(dsn)
        await backend.write_batch([])  # creates the table
        await backend.close()

    asyncio.run(migrate())
    marks = ", ".join("%s" for _ in COLUMNS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for r in seeded_rows():
            values = r | {"received_at": datetime.fromtimestamp(r["received_at"], UTC)}
            conn.execute(
                f"INSERT INTO pixel_hits VALUES ({marks})",  # noqa: S608
                [values[c] for c in COLUMNS],
            )
        conn.execute("DROP TABLE pixel_consents")
        conn.execute(
            "CREATE TABLE pixel_consents (receipt_id TEXT, choice TEXT, detail JSONB, "
            "visitor BIGINT, created_at TIMESTAMPTZ)"
        )
        for receipt in RECEIPTS:
            detail = receipt[2] if receipt[2].startswith("{") else json.dumps(receipt[2])
            conn.execute(
                "INSERT INTO pixel_consents VALUES (%s, %s, %s, %s, %s)",
                (receipt[0], receipt[1], detail, receipt[3], receipt[4]),
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A folder holding the settings module and the spool files; returns the store's spool
    folder as the audit names it (the SQLite one beside the file, the PostgreSQL one in
    spool_dir, relative like it)."""
    if request.param == "sqlite":
        store = f"sqlite:///{tmp_path}/hits.sqlite3"
        seed_sqlite(tmp_path / "hits.sqlite3")
        spool = f"{tmp_path}/hits.sqlite3.spool"
    else:
        store = fresh_database(request.getfixturevalue("pg"))
        seed_postgres(store)
        spool = "spool/postgresql"
    for name, lines in spool_lines(spool).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines))
    values = SEEDED_SETTINGS | {"store": store, "spool_dir": "spool"}
    (tmp_path / "shop_seeded.py").write_text(f"PIXEL_MIDDLEWARE = {values!r}\n")
    return spool


def checks(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["source"], c["name"]): c for c in report["checks"]}


def rows_of(check: dict[str, Any]) -> list[str]:
    return [e["row"] for e in check["examples"]]


# ------------------------------------------------------------------ the command, end to end


def test_each_check_catches_its_own_violation(seeded: str, tmp_path: Path) -> None:
    out = cli(
        "audit", "--settings", "shop_seeded:PIXEL_MIDDLEWARE", "--format", "json", cwd=tmp_path
    )
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    found = checks(report)
    assert report["passed"] is False and report["exit_status"] == 1
    assert report["settings_source"] == "--settings shop_seeded:PIXEL_MIDDLEWARE"
    assert report["rows_checked"] == len(seeded_rows())
    # The store: every row check counts exactly the row seeded for it, and nothing else.
    for name in ROW_CHECK_NAMES:
        check = found["store", name]
        assert (check["status"], check["count"], rows_of(check)) == ("fail", 1, [name]), check
    assert found["store", "anonymous_with_suppressed_parameter"]["examples"][0]["names"] == ["cd"]
    assert found["store", "anonymous_with_identifier_parameter"]["examples"][0]["names"] == [
        HOSTILE
    ]
    # The spool, dead-letter and rejected files: the same checks, by file and line.
    spool = {name: c for (source, name), c in found.items() if source == "spool"}
    failed = {name: rows_of(c) for name, c in spool.items() if c["status"] == "fail"}
    assert failed == {
        "anonymous_with_ever_id": [f"{seeded}/spool-1.jsonl:2"],
        "anonymous_with_user_agent": [f"{seeded}/dead/dead-1.jsonl:1"],
        "anonymous_with_suppressed_parameter": ["spool/relay/rejected/spool-2.jsonl:1"],
        "unreadable_spool_lines": [f"{seeded}/spool-1.jsonl:3"],
    }
    assert report["spool_lines"] == 5
    # Receipts: the user agent in a text column, the everID in a number column.
    receipts = found["receipts", "receipts_with_personal_data"]
    assert receipts["count"] == 2
    assert receipts["examples"] == [
        {"row": "receipt_id=r2", "names": ["detail"]},
        {"row": "receipt_id=r3", "names": ["visitor"]},
    ]
    # Settings: the one failure, and a warning that fails nothing by itself.
    assert found["settings", "ever_id_over_browser_cap"]["status"] == "fail"
    assert found["settings", "anonymous_cookie_over_browser_cap"]["status"] == "pass"
    assert report["summary"]["fail"] == len(ROW_CHECK_NAMES) + 4 + 1 + 1
    # Only ids and names: no value the rows hold reaches the output.
    for value in (EID, SID, UA, "198.51.100.77", "C-1", "email"):
        assert value not in out.stdout


def test_a_store_the_collector_wrote_passes(tmp_path: Path) -> None:
    for anonymous_session, store in (
        (False, f"sqlite:///{tmp_path}/a.sqlite3"),
        (True, f"sqlite:///{tmp_path}/b.sqlite3"),
    ):
        assert collect_and_audit(tmp_path, store, anonymous_session) == 0


def test_a_postgres_store_the_collector_wrote_passes(pg: Any, tmp_path: Path) -> None:
    assert collect_and_audit(tmp_path, fresh_database(pg), anonymous_session=True) == 0


def collect_and_audit(folder: Path, store: str, anonymous_session: bool) -> int:
    values: dict[str, Any] = {
        "track_id": TRACK_ID,
        "secret_key": SECRET,
        "enable_anonymous_function": True,
        "suppress_parameter": ("cd", "uc5", "uc7"),
        "anonymous_session": anonymous_session,
        "anonymous_ip_truncation": 1,
        "anonymous_query_allowlist": ("q",),
        "anonymous_cookie_minutes": 43_200,
        "store": store,
        "spool_dir": str(folder / "spool"),
    }
    app = PixelMiddleware(html_app(b""), settings=PixelSettings(**values))
    leaky = (
        f"&eid={EID}&EID={EID}&%65id=1&eid%5B0%5D=1&one=1&fns=1&X-WT-UA=ua&x-wt-ip=1.2.3.4"
        f"&uc701=a%40b&ui5=x&cd=C-1&uc5=f&uc7=1815&CD=C-2&fpv={TEMPORARY}&fpt=2.1.0"
        "&pu=https%3A%2F%2Fshop%2Fp%3Femail%3Dx%26q%3Dtea%23top"
    )
    referrer = Q.replace(",0,1280x720", ",https%3A%2F%2Fsearch%2F%3Fq%3Dme%26who%3Dyou,1280x720")
    ua = [(b"user-agent", UA.encode())]
    anonymous = [(b"cookie", b"miCookieOptOut=1; wtstp_eid=8111111111111111111"), *ua]
    assert request(app, WT, query=f"{Q}{leaky}&cp1=ident".encode(), headers=ua).status == 200
    for number, headers in enumerate(
        (
            anonymous,
            [(b"sec-gpc", b"1"), *ua],
            [(b"sp-anonymous", b"*"), *ua],
            [(b"sec-fetch-site", b"cross-site"), *ua],
        )
    ):
        query = f"{referrer}{leaky}&cp1=anon{number}".encode()
        assert request(app, WT, query=query, headers=headers).status == 200
    path = f"/_pixel/{TRACK_ID}/batch"
    beacon = [(b"origin", b"http://shop.example"), *anonymous]
    for sender, headers in (("beacon", beacon), ("server", ua)):
        batch = "\n".join(f"wt?{Q}{leaky}&cp1={sender}{i}" for i in range(3)).encode()
        assert request(app, path, method="POST", body=batch, headers=headers).status == 200
    assert app.sink.flush(30)  # type: ignore[attr-defined]
    asyncio.run(app.sink.close())
    (folder / "shop_clean.py").write_text(
        f"from pixel_middleware import PixelSettings\nsettings = PixelSettings(**{values!r})\n"
    )
    out = cli(
        "audit",
        "--settings",
        "shop_clean:settings",
        "--retention-days",
        "30",
        "--format",
        "json",
        cwd=folder,
    )
    report = json.loads(out.stdout)
    assert report["rows_checked"] == 11 and report["anonymous_rows"] >= 7, report
    failed = {(c["source"], c["name"]): c for c in report["checks"] if c["status"] == "fail"}
    assert not failed, failed
    statuses = {(c["source"], c["name"]): c["status"] for c in report["checks"]}
    assert statuses["store", "rows_older_than_retention"] == "pass"
    assert statuses["store", "anonymous_with_suppressed_parameter"] == "pass"
    assert statuses["settings", "anonymous_cookie_over_browser_cap"] == "pass"
    assert out.returncode == 0, out.stderr
    return out.returncode


def test_formats_print_ids_and_names_safely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_sqlite(tmp_path / "hits.sqlite3")
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("PIXEL_")]:
        monkeypatch.delenv(key)
    outputs = {}
    for fmt in ("text", "json", "html"):
        target = tmp_path / f"audit.{fmt}"
        status = main(
            ["--store", "hits.sqlite3", "audit", "--format", fmt, "--output", str(target)]
        )
        assert status == 1
        outputs[fmt] = target.read_text(encoding="utf-8")
    for fmt, text in outputs.items():
        # Nothing that could move the cursor or reorder a line, in any format.
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", text), fmt
        for value in (EID, SID, UA, "198.51.100.77", "C-1"):
            assert value not in text, (fmt, value)
    report = json.loads(outputs["json"])
    assert report["store"].endswith("/hits.sqlite3")
    names = checks(report)["store", "anonymous_with_identifier_parameter"]["examples"][0]["names"]
    assert names == [HOSTILE]
    page = outputs["html"]
    assert "<script" not in page.lower() and "<link" not in page and "src=" not in page
    assert "EID[&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[2J]" in page
    assert "default-src 'none'" in page and "<style>" in page
    assert "EID[<script>alert(1)</script>\\x1b[2J]" in outputs["text"]
    assert "FAIL  anonymous_with_ever_id" in outputs["text"]
    assert "result: FAILED:" in outputs["text"]


def test_warnings_do_not_fail_and_defaults_are_said(tmp_path: Path) -> None:
    store = tmp_path / "hits.sqlite3"
    conn = sqlite3.connect(store)
    from pixel_middleware.sinks.sqlite import migrate

    migrate(conn)
    conn.close()
    out = cli("--store", str(store), "audit", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "settings: defaults (no --settings and no PIXEL_* variables)" in out.stdout
    assert "WARN  settings_not_found" in out.stdout
    assert "WARN  anonymous_cookie_over_browser_cap" in out.stdout
    assert "SKIP  rows_older_than_retention" in out.stdout
    # The store's own (empty) receipts table is read; "no receipts table" is for older stores.
    assert "PASS  receipts_with_personal_data" in out.stdout
    assert "result: PASSED: 0 failed" in out.stdout
    # The PIXEL_* variables the app reads are the settings then.
    out = cli(
        "audit",
        "--format",
        "json",
        cwd=tmp_path,
        PIXEL_STORE=str(store),
        PIXEL_SUPPRESS_PARAMETER="cd, uc5",
        PIXEL_ANONYMOUS_SESSION="on",
    )
    report = json.loads(out.stdout)
    assert report["settings_source"] == "PIXEL_* environment variables"
    assert report["store_source"] == "PIXEL_STORE"
    assert checks(report)["store", "anonymous_with_suppressed_parameter"]["status"] == "pass"
    # Settings that keep no store (a relay only): the store's checks are skipped, not failed.
    out = cli("audit", cwd=tmp_path, PIXEL_STORE="none")
    assert out.returncode == 0, out.stderr
    assert "store:    none (from PIXEL_STORE)" in out.stdout
    assert (
        "SKIP  anonymous_with_ever_id" in out.stdout and "the settings keep no store" in out.stdout
    )


def test_cannot_audit_is_exit_status_2(tmp_path: Path) -> None:
    out = cli("audit", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert f"no store at {tmp_path}/pixel_hits.sqlite3" in out.stderr
    assert not (tmp_path / "pixel_hits.sqlite3").exists()  # reading never creates a store
    (tmp_path / "notes.txt").write_text("not a database, but long enough to look at " * 10)
    out = cli("--store", "notes.txt", "audit", cwd=tmp_path)
    assert out.returncode == 2 and "is not a SQLite database" in out.stderr
    out = cli("audit", "--settings", "no_such_module:settings", cwd=tmp_path)
    assert out.returncode == 2 and "cannot import no_such_module" in out.stderr
    out = cli("--store", "postgresql://nobody:pw@127.0.0.1:1/none", "audit", cwd=tmp_path)
    assert out.returncode == 2 and "nobody:***@" in out.stderr and "pw@" not in out.stderr
    seed_sqlite(tmp_path / "hits.sqlite3")
    out = cli("--store", "hits.sqlite3", "audit", "--output", "no/such/dir.json", cwd=tmp_path)
    assert out.returncode == 2 and "cannot write no/such/dir.json" in out.stderr
    out = cli("audit", "--retention-days", "0", cwd=tmp_path)
    assert out.returncode == 2 and "not more than 0" in out.stderr
    out = cli("audit", cwd=tmp_path, PIXEL_ANONYMOUS_IP_TRUNCATION="lots")
    assert out.returncode == 2 and "PIXEL_ANONYMOUS_IP_TRUNCATION" in out.stderr


# ------------------------------------------------------------------ the checks, one by one


def rules(**changes: Any) -> RowRules:
    settings = AuditSettings(source="test", **changes)
    return RowRules.from_settings(settings, datetime.now(UTC))


@pytest.mark.parametrize(
    "name",
    [
        *("eid", "EID", "%65id", "%45Id", "eid[0]", "eid%5B0%5D", "ceid", "one", "FNS"),
        *("uc701", "ui5", "X-WT-UA", "x-wt-ip", "X-WT-SEC-CH-UA-Platform", "x%2Dwt%2Dua"),
        *("fpv", "FPT"),
    ],
)
def test_identifier_names_in_any_form(name: str) -> None:
    in_query = row("q", query=f"{CLEAN}&{name}=1")
    in_params = row("p", params=json.dumps([[name, "1"]]))
    for r in (in_query, in_params):
        assert anonymous_with_identifier_parameter(r, rules()) == (name,)
        assert anonymous_with_identifier_parameter(r | {"anonymous": False}, rules()) is None
    # The temporary session's parameters belong to level 2 of anonymity.
    level_2 = anonymous_with_identifier_parameter(in_query, rules(anonymous_session=True))
    assert level_2 == (None if name.lower() in ("fpv", "fpt") else (name,))


def test_lookalike_names_are_not_identifiers() -> None:
    for name in ("eida", "uid", "wt_eid", "x-wtua", "cd", "nc", "one1", "pu"):
        r = row("q", query=f"{CLEAN}&{name}=1", params=json.dumps([[name, "1"]]))
        assert anonymous_with_identifier_parameter(r, rules()) is None, name


def test_suppressed_names_compare_as_the_collector_does() -> None:
    strict = rules(suppress_parameter=("cd", "uc5"))
    for name in ("cd", "CD", "%63d", "cd[0]", "Uc5"):
        assert anonymous_with_suppressed_parameter(row("q", query=f"{CLEAN}&{name}=1"), strict) == (
            name,
        )
    assert anonymous_with_suppressed_parameter(row("c", customer_id="C-1"), strict) == (
        "customer_id",
    )
    assert anonymous_with_suppressed_parameter(row("u", query=f"{CLEAN}&uc7=1"), strict) is None
    assert anonymous_with_suppressed_parameter(row("x", params="{not json"), strict) == (
        "params (not a JSON list of pairs)",
    )


def test_temporary_session_ids_only_at_level_2() -> None:
    temporary = row("t", session_id=TEMPORARY)
    assert anonymous_with_session_id(temporary, rules()) == ("session_id",)
    assert anonymous_with_session_id(temporary, rules(anonymous_session=True)) is None
    everid_like = row("s", session_id=SID)
    assert anonymous_with_session_id(everid_like, rules(anonymous_session=True)) == ("session_id",)
    assert anonymous_with_session_id(
        row("u", session_id=TEMPORARY.upper()), rules(anonymous_session=True)
    ) == ("session_id",)


@pytest.mark.parametrize(
    ("ip", "level", "ok"),
    [
        ("198.51.100.0", 0, False),  # level 0: no address at all
        ("198.51.100.0", 1, True),
        ("198.51.100.77", 1, False),
        ("198.51.100.0", 2, False),
        ("198.51.0.0", 2, True),
        ("198.0.0.0", 3, True),
        ("2a02:8070:a1b2::", 1, True),
        ("2a02:8070:a1b2:c3d4::", 1, False),  # a household's /64
        ("2a02:8070:a100::", 2, True),
        ("2a02:8070:a1b2::", 2, False),
        ("::ffff:198.51.100.0", 1, True),
        ("::ffff:198.51.100.77", 1, False),
        ("2002:c633:6400::", 1, True),
        ("2002:c633:644d::", 1, False),  # 6to4 carrying the whole IPv4 address
        ("not an address", 1, False),
        ("", 1, False),
    ],
)
def test_ip_levels(ip: str, level: int, ok: bool) -> None:
    r = row("i", ip=ip)
    assert (anonymous_with_full_ip(r, rules(anonymous_ip_truncation=level)) is None) is ok


addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
    st.integers(0, 2**32 - 1).map(lambda n: f"::ffff:{ipaddress.IPv4Address(n)}"),
    st.integers(0, 2**80 - 1).map(lambda n: str(ipaddress.IPv6Address((0x2002 << 112) | n))),
)


@given(addresses, st.integers(1, 3))
def test_truncation_agrees_with_the_collector(address: str, level: int) -> None:
    """What truncate_ip leaves passes at its level; level 1 is exactly what a Hit accepts."""
    truncated = truncate_ip(address, level)
    assert truncated is not None and is_truncated_to(truncated, level)
    assert is_truncated_to(address, 1) == is_truncated_ip(address)
    if is_truncated_to(address, level) and level > 1:
        assert is_truncated_to(address, level - 1)


def test_urls_keep_only_the_allowlist() -> None:
    allow = rules(anonymous_query_allowlist=("q",))
    pu = "pu=https%3A%2F%2Fshop%2Fs"
    assert anonymous_with_url_query(row("a", query=f"{CLEAN}&{pu}%3Fq%3Dtea"), allow) is None
    assert anonymous_with_url_query(row("b", query=f"{CLEAN}&{pu}%3Femail%3Dx"), allow) == ("pu",)
    assert anonymous_with_url_query(row("c", query=f"{CLEAN}&{pu}%23frag"), allow) == ("pu",)
    assert anonymous_with_url_query(row("d", query=f"{CLEAN}&{pu}%3Fq%3Dtea"), rules()) == ("pu",)
    referrer = Q.replace(",0,1280x720", ",https%3A%2F%2Fr%2F%3Fwho%3Dme,1280x720") + "&nc=1"
    assert anonymous_with_url_query(row("e", query=referrer), allow) == ("p (referrer)",)
    in_params = row("f", params='[["pu","https://shop/s?token=1"]]')
    assert anonymous_with_url_query(in_params, allow) == ("pu",)


def test_nc_and_retention() -> None:
    assert anonymous_without_nc(row("a"), rules()) is None
    for query in (Q, f"{Q}&nc=0", f"{Q}&nc=11", ""):
        assert anonymous_without_nc(row("b", query=query), rules()) == ("nc",)
    assert anonymous_without_nc(row("c", query=Q, anonymous=False), rules()) is None
    now = datetime.now(UTC)
    thirty = rules(retention_days=30)
    for age, old in ((29, False), (31, True)):
        received = now - timedelta(days=age)
        assert (older_than_retention(row("d", received_at=received), thirty) == ()) is old
        identified = row("e", anonymous=False, received_at=received)
        assert (older_than_retention(identified, thirty) == ()) is old
    assert older_than_retention(row("f", received_at=None), thirty) == ("received_at",)
    assert older_than_retention(row("g", received_at=None), rules()) is None


def test_spool_lines_are_read_without_the_hit_invariant() -> None:
    line = json.dumps(
        {"hit_id": "h", "received_at": 1.5, "anonymous": True, "query": "p=1", "ever_id": EID}
    )
    parsed = spool_row(line)
    assert parsed is not None and parsed["ever_id"] == EID
    assert parsed["received_at"] == datetime.fromtimestamp(1.5, UTC)
    dead = spool_row(json.dumps({"reason": "x", "hit": json.loads(line)}))
    assert dead is not None and dead["hit_id"] == "h"
    for bad in ("", "{", "[]", '{"anonymous": true}', '"text"', '{"hit": 1}'):
        assert spool_row(bad) is None, bad


@pytest.mark.parametrize(
    ("text", "personal"),
    [
        (EID, True),
        (f"visitor {EID}.", True),
        (TEMPORARY, True),
        ("198.51.100.77", True),
        ("from 2a02:8070:a1b2::1 at noon", True),
        ("::1", True),
        (UA, True),
        ("curl/8.5.0", True),
        ("anonymous", False),
        ("2026-11-25 10:00:00.123456", False),
        ("2026-11-25T10:00:00+00:00", False),
        ("version 1.2.3, 12:30:45", False),
        ("18 digits 123456789012345678", False),
        ("20 digits 12345678901234567890", False),
        ("0123456789abcdef0123456789abcdef", False),  # a random receipt id
        ('{"choice": "anonymous", "via": "link"}', False),
    ],
)
def test_personal_data_in_receipts(text: str, personal: bool) -> None:
    assert holds_personal_data(text) is personal


def test_receipt_columns_named_like_identifiers_must_be_empty() -> None:
    assert receipt_personal_data({"id": 1, "ip": "", "user_agent": None}) is None
    assert receipt_personal_data({"id": 1, "IP": "hidden", "choice": "x"}) == ("IP",)
    assert receipt_personal_data({"id": 1, "payload": {"eid": int(EID)}}) == ("payload",)
    assert receipt_personal_data({"id": 1, "blob": UA.encode()}) == ("blob",)


def settings_results(**changes: Any) -> dict[str, CheckResult]:
    values: dict[str, Any] = {"enable_anonymous_function": True, "anonymous_cookie_minutes": 60}
    values.update(changes)
    return {r.name: r for r in check_settings(AuditSettings(source="test", **values))}


@pytest.mark.parametrize(
    ("changes", "name", "status"),
    [
        ({"ever_id_days": 401}, "ever_id_over_browser_cap", "fail"),
        ({"anonymous_cookie_minutes": 400 * 1440 + 1}, "anonymous_cookie_over_browser_cap", "warn"),
        ({"enable_anonymous_function": False}, "anonymous_function_off", "warn"),
        ({"identifier_cookies_httponly": False}, "identifier_cookies_readable_by_scripts", "warn"),
        ({"send_to_track_domain": True}, "browser_sends_straight_to_mapp", "warn"),
        (
            {"relay": True, "relay_url": "http://collector:8000/_pixel"},
            "relay_over_plain_http",
            "warn",
        ),
        ({"honor_global_privacy_control": False}, "global_privacy_control_ignored", "warn"),
        ({"defaults": True}, "settings_not_found", "warn"),
    ],
)
def test_each_settings_check(changes: dict[str, Any], name: str, status: str) -> None:
    assert all(r.status == "pass" for r in settings_results().values())
    results = settings_results(**changes)
    assert [(n, r.status) for n, r in results.items() if r.status != "pass"] == [(name, status)]


def test_settings_that_keep_their_promises() -> None:
    at_cap = settings_results(ever_id_days=400, anonymous_cookie_minutes=400 * 1440)
    assert all(r.status == "pass" for r in at_cap.values())
    for url in ("https://collector/_pixel", "http://127.0.0.1:9000/_pixel", "http://localhost/"):
        relayed = settings_results(relay=True, relay_url=url)
        assert relayed["relay_over_plain_http"].status == "pass", url
    # Mapp's own track domain is https.
    mapp = settings_results(relay=True, track_domain="q3.webtrekk.net")
    assert mapp["relay_over_plain_http"].status == "pass"


def test_settings_are_found_like_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader adds the working directory
    (tmp_path / "shop_found.py").write_text(
        "from pixel_middleware import PixelMiddleware, PixelSettings\n"
        "settings = PixelSettings(track_id='123451234512345', secret_key='s' * 16,\n"
        "    store='app.db', suppress_parameter=('cd',), anonymous_session=True)\n"
        "app = PixelMiddleware(lambda *a: None, settings=settings)\n"
        "PIXEL_MIDDLEWARE = {'suppress_parameter': 'cd, uc5', 'retention_days': '30'}\n"
        "def make(): return settings\n"
        "BROKEN = {'anonymous_ip_truncation': 7}\n"
    )
    for attribute in ("settings", "app", "make"):
        found = resolve(store=None, settings_ref=f"shop_found:{attribute}", environ={})
        assert found.store == "app.db" and found.suppress_parameter == ("cd",)
        assert found.anonymous_session and found.retention_days is None
    django = resolve(store="other.db", settings_ref="shop_found:PIXEL_MIDDLEWARE", environ={})
    assert django.suppress_parameter == ("cd", "uc5") and django.retention_days == 30
    assert django.store == "other.db" and django.store_source == "--store"
    assert (
        resolve(
            store=None, settings_ref="shop_found:settings", environ={}, retention_days=7
        ).retention_days
        == 7
    )
    with pytest.raises(SourceError, match="anonymous_ip_truncation must be 0"):
        resolve(store=None, settings_ref="shop_found:BROKEN", environ={})
    env = resolve(
        store=None,
        settings_ref=None,
        environ={"PIXEL_STORE": "none", "PIXEL_ANONYMOUS_IP_TRUNCATION": "2", "HOME": "/"},
    )
    assert env.store is None and env.anonymous_ip_truncation == 2 and not env.defaults
    assert resolve(store=None, settings_ref=None, environ={}).defaults


class Listed:
    """A store given as lists: the audit reads only through these methods."""

    def __init__(self, rows: list[dict[str, Any]], receipts: list[dict[str, Any]] | None) -> None:
        self._rows, self._receipts = rows, receipts

        class Location:
            def describe(self) -> str:
                return "listed"

        self.location = Location()

    def rows(self) -> Iterator[dict[str, Any]]:
        return iter(self._rows)

    def receipts(self) -> Iterator[dict[str, Any]] | None:
        return None if self._receipts is None else iter(self._receipts)

    def close(self) -> None:
        return None


def audit_lists(**changes: Any) -> AuditReport:
    settings = AuditSettings(source="test", **changes)
    now = datetime.now(UTC)
    rows = [
        r | {"received_at": datetime.fromtimestamp(r["received_at"], UTC)} for r in seeded_rows()
    ]
    return run_audit(
        settings,
        source=Listed(rows, None),  # type: ignore[arg-type]
        spool=[SpoolLine("f:1", None)],
        folders=["f"],
        now=now,
        examples=0,
    )


def test_the_audit_over_lists_and_its_examples_limit() -> None:
    report = audit_lists(
        suppress_parameter=("cd",),
        anonymous_ip_truncation=1,
        anonymous_query_allowlist=("q",),
        retention_days=30,
    )
    store = {r.name: r for r in report.results if r.source == "store"}
    assert all(r.count == 1 and r.examples == () for r in store.values())
    assert report.exit_status == 1 and report.spool_lines == 1
    text = render(report, "text")
    assert "e.g." not in text and "receipts_with_personal_data" in text
    no_store = run_audit(
        AuditSettings(source="test", store=None),
        source=None,
        spool=[],
        folders=[],
        now=datetime.now(UTC),
    )
    skipped = [r for r in no_store.results if r.source == "store"]
    assert {r.status for r in skipped} == {"skip"}
    assert {r.note for r in skipped} == {"the settings keep no store"}
