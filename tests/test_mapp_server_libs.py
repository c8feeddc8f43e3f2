"""Mapp's server-side libraries (Node, PHP, Java) against the collector over real HTTP.

Two kinds of proof. The requests each library was recorded sending (tests/fixtures/mapp, see
tests/mapp_clients.py) are replayed byte for byte, framing and headers included, against
uvicorn; and the real libraries are run (``@pytest.mark.server``; skipped where node, php or a
JDK is missing) against the same servers. Every test then reads what the store holds.

The libraries are the site's own servers, so the collector lists them in ``trusted_senders``:
their ``X-WT-IP`` / ``X-WT-UA`` are the visitor's address and browser. Node's HTTP client and
its cron job keep only the host of ``trackDomain``, so they post to the standalone collector at
the root; the other clients keep the path and reach ``/_pixel/<trackId>/batch`` through
PixelMiddleware. Each test sends under a track id of its own and reads only that track id's
rows, so the tests share the servers and still cannot see each other's hits.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from pixel_middleware import PixelMiddleware
from pixel_middleware.sinks import BufferedSink, Sink
from pixel_middleware.standalone import CollectorApp

from .helpers import settings
from .mapp_clients import (
    CLIENTS,
    CRON_FILES,
    SCENARIO_HITS,
    SCENARIOS,
    SMART_PIXEL_EVER_ID,
    VISITOR_IP,
    VISITOR_UA,
    ClientUnavailable,
    RecordedRequest,
    load_fixtures,
    replay,
    request_file,
    run_client,
    run_cronjob,
)
from .servers import serve
from .stores import assert_private, read_rows

FIXTURES: Final = load_fixtures()
NAMES: Final = sorted(FIXTURES)
CUSTOM_ID: Final = "crm-4711"  # Customer.setCustomIdentifier() in the drivers: sent as ceid
# Node's HTTP client and cron job post to /<trackId>/batch at the root of trackDomain's host.
ROOT_CLIENTS: Final = frozenset({"node-http", "node-cronjob-file"})
SENDS_CEID: Final = frozenset({"node-http", "node-fork-curl", "node-cronjob-file", "java-http"})
# Pieces of the visitor's identity in the fixtures that must never reach an anonymous row, in
# any column, encoded or not (the user agent is percent-encoded in stored queries).
VISITOR_TRACES: Final = (VISITOR_IP, CUSTOM_ID, "Mozilla", "Chrome", "Windows", "Java/", "curl/")
# One track id per test, so that tests sharing a store never share rows.
TRACK_IDS: Final = tuple(f"9{n:014d}" for n in range(1, 161))
SMALL_LIMIT: Final = 256 * 1024
_unused_ids = iter(TRACK_IDS)


# ------------------------------------------------------------------------------------ servers


async def _site(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await PlainTextResponse("the site")(scope, receive, send)


@dataclass
class Collector:
    """One collector configuration served twice: under ``/_pixel`` by PixelMiddleware and at
    the root by the standalone app, each with its own SQLite store."""

    prefixed: str  # http://127.0.0.1:<port>/_pixel
    root: str  # http://127.0.0.1:<port>
    stores: tuple[str, str]
    sinks: tuple[BufferedSink, BufferedSink]

    def base_for(self, client: str) -> str:
        """The base URL a library is configured with (its ``trackDomain``, with http)."""
        return self.root if client in ROOT_CLIENTS else self.prefixed

    def base_for_request(self, request: RecordedRequest) -> str:
        # "{base_path}" in a recorded path: the client kept trackDomain's path.
        return self.prefixed if request.path.startswith("{base_path}") else self.root

    def rows(self, track_id: str) -> list[dict[str, Any]]:
        """Every row stored under ``track_id``, once both writers have caught up."""
        found: list[dict[str, Any]] = []
        for store, sink in zip(self.stores, self.sinks, strict=True):
            assert sink.flush(20)
            found += [r for r in read_rows(store) if r["track_id"] == track_id]
        return found


def _buffered(sink: Sink) -> BufferedSink:
    assert isinstance(sink, BufferedSink), sink
    return sink


@contextmanager
def collector(tmp: Path, **overrides: Any) -> Iterator[Collector]:
    stores = (f"sqlite:///{tmp}/prefixed.sqlite3", f"sqlite:///{tmp}/root.sqlite3")
    common: dict[str, Any] = {"track_id": ",".join(TRACK_IDS), **overrides}
    middleware = PixelMiddleware(
        _site, settings=settings(store=stores[0], spool_dir=str(tmp / "spool-0"), **common)
    )
    standalone = CollectorApp(
        settings=settings(store=stores[1], spool_dir=str(tmp / "spool-1"), **common)
    )
    with serve(middleware) as site, serve(standalone) as root:
        yield Collector(
            site + "/_pixel",
            root,
            stores,
            (_buffered(middleware.sink), _buffered(standalone.sink)),
        )


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """Default settings, with the libraries' machine (loopback here) as a trusted sender."""
    with collector(tmp_path_factory.mktemp("trusted"), trusted_senders=("127.0.0.1",)) as c:
        yield c


@pytest.fixture(scope="module")
def untrusted_opt_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """Opt-in mode, no trusted sender: a batch without the consent cookie is anonymous."""
    with collector(
        tmp_path_factory.mktemp("opt-in"), enable_anonymous_function=True, anonymous_opt_in=True
    ) as c:
        yield c


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """Trusted sender, batches limited to ``SMALL_LIMIT`` bytes (``max_body_bytes``)."""
    with collector(
        tmp_path_factory.mktemp("limited"),
        trusted_senders=("127.0.0.1",),
        max_body_bytes=SMALL_LIMIT,
    ) as c:
        yield c


@pytest.fixture
def track_id() -> str:
    return next(_unused_ids)


# ------------------------------------------------------------------------------------ helpers


def params(row: dict[str, Any]) -> dict[str, str]:
    """A row's other parameters by decoded name (PHP's ``ca2%5B0%5D`` is ``ca2[0]``)."""
    out: dict[str, str] = {}
    for name, value in json.loads(row["params"]):
        out.setdefault(unquote(name), value)
    return out


def ever_ids(requests: list[RecordedRequest]) -> list[str]:
    return sorted(
        {m.group(1) for r in requests for m in re.finditer(r"(?:^|&|\?)eid=(\d+)", r.body)}
    )


def with_lines(
    request: RecordedRequest, lines: list[str], separator: str = "\n"
) -> RecordedRequest:
    return replace(request, body=separator.join(lines))


def marked_anonymous(request: RecordedRequest) -> RecordedRequest:
    """The request with ``&nc=1`` added to every line, each joined as the library joins them."""
    separator = "\\n" if "\\n" in request.body else "\n"
    return with_lines(request, [line + "&nc=1" for line in request.lines()], separator)


def hits_sent(requests: list[RecordedRequest]) -> int:
    return sum(len(r.lines()) for r in requests)


def check_rows(client: str, scenario: str, rows: list[dict[str, Any]]) -> None:
    """The rows of one scenario (tests/mapp_clients.py SCENARIOS), as a trusted sender's."""
    assert len(rows) == SCENARIO_HITS[scenario], [r["query"] for r in rows]
    for row in rows:
        assert row["anonymous"] is False
        # The visitor's, from X-WT-IP / X-WT-UA; not the library's 127.0.0.1, curl/…, Java/….
        assert row["ip"] == VISITOR_IP
        assert row["user_agent"] == VISITOR_UA
        assert row["session_id"] is None  # a server's hit starts no session
        assert not {"X-WT-IP", "X-WT-UA", "eid", "nc"} & set(params(row))
        assert "X-WT-IP=" not in row["query"] and "X-WT-UA=" not in row["query"]
        assert "\r" not in json.dumps(row, default=str)
    if scenario == "identified":
        page, action = sorted(rows, key=lambda r: "ct" in params(r))
        assert page["ever_id"] == action["ever_id"] == SMART_PIXEL_EVER_ID
        assert page["page_name"] == "en.shop.checkout.thank-you"
        assert page["customer_id"] == "customer-24"
        p = params(page)
        assert p["uc700"] == "juergen.mueller@example.com"
        assert (p["uc703"], p["uc704"]) == ("Jürgen", "Müller")
        assert p.get("ceid") == (CUSTOM_ID if client in SENDS_CEID else None)
        assert (p["cp1"], p["cg1"], p["cs1"], p["mc"]) == (
            "Thank you",
            "shop",
            "premium",
            "newsletter.2024-05",
        )
        assert (p["ov"], p["oi"], p["cr"]) == ("109.97", "ABC123", "EUR")
        assert (p["ba"], p["co"], p["qn"], p["st"]) == (
            "065ee2b001;085eo2f009",
            "59.99;49.98",
            "1;2",
            "conf;conf",
        )
        # Category 2 is set on the first product only: each library writes that differently.
        if client.startswith("node"):
            assert p["ca2"] == "Men;"
        elif client.startswith("php"):
            assert (p["ca2[0]"], p["ca2[1]"]) == ("Men", "")
            assert "ca2%5B0%5D=Men&ca2%5B1%5D=&" in page["query"]
        else:
            assert "ca2" not in p  # Java drops it
        assert action["page_name"] == "shop.example.com/checkout/thank-you"
        assert action["customer_id"] is None
        a = params(action)
        assert (a["ct"], a["ck1"], a["ck2"]) == ("newsletter.signup", "footer", "double opt-in")
    else:
        (row,) = rows
        assert row["page_name"] == "en.shop.home"
        if scenario == "generated-eid":
            assert re.fullmatch(r"8\d{18}", row["ever_id"] or ""), row["ever_id"]
        else:
            assert row["ever_id"] is None  # no everID: still the visitor's hit, with IP and UA


def post(base_url: str, path: str, body: bytes) -> int:
    """POST ``body`` as text/plain to ``base_url`` + ``path``; the status."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        conn.request("POST", parts.path + path, body, {"Content-Type": "text/plain"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def numbered(line: str, n: int) -> str:
    """``line`` with ``n`` ms added to the time in ``p``: another hit of the same shape."""
    head, ms, tail = re.split(r"(?<=,,,,,)(\d{13})(?=,)", line, maxsplit=1)
    return f"{head}{int(ms) + n}{tail}"


# ----------------------------------------------------------------------------- recorded requests


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", NAMES)
def test_recorded_requests_are_answered_200_and_stored_once(
    name: str, scenario: str, trusted: Collector, track_id: str
) -> None:
    requests = FIXTURES[name].by_scenario(scenario)
    for request in requests:
        for _ in range(2):  # PHP and the cron jobs resend; the exit hooks of Node and Java too
            response = replay(request, trusted.base_for_request(request), track_id=track_id)
            # Exactly 200: PHP and fork-curl count anything else (201, 204, 3xx) as failure.
            assert response.status == 200, response
    rows = trusted.rows(track_id)
    assert len(rows) == hits_sent(requests)
    check_rows(name, scenario, rows)
    if scenario == "generated-eid":
        assert [r["ever_id"] for r in rows] == ever_ids(requests)


@pytest.mark.parametrize("name", NAMES)
def test_crlf_lines_are_the_same_hits(name: str, trusted: Collector, track_id: str) -> None:
    # Node (os.EOL) and Java (System.lineSeparator()) join lines with CRLF on Windows.
    (request,) = FIXTURES[name].by_scenario("identified")
    crlf = replace(request, body=request.body.replace("\n", "\r\n"))
    assert replay(crlf, trusted.base_for_request(request), track_id=track_id).status == 200
    check_rows(name, "identified", trusted.rows(track_id))
    assert replay(request, trusted.base_for_request(request), track_id=track_id).status == 200
    check_rows(name, "identified", trusted.rows(track_id))  # the LF original: nothing new


def test_a_batch_resent_by_the_cron_job_is_not_stored_again(
    trusted: Collector, track_id: str
) -> None:
    # PHP's destructor resends a refused batch, and the cron job later sends the same lines
    # from its file: same lines, another consumer's headers.
    (sent,) = FIXTURES["php-curl"].by_scenario("identified")
    (cron,) = FIXTURES["php-cronjob-file"].by_scenario("identified")
    for request in (sent, replace(cron, body=sent.body)):
        assert replay(request, trusted.prefixed, track_id=track_id).status == 200
    check_rows("php-curl", "identified", trusted.rows(track_id))


def test_a_line_that_is_not_a_hit_costs_only_itself(trusted: Collector, track_id: str) -> None:
    (request,) = FIXTURES["node-http"].by_scenario("identified")
    page, action = request.lines()
    too_long = f"wt?p=600,long,,,,,1795614542554,0,,&cp1={'x' * 30_720}"
    noisy = with_lines(request, ["garbage", page, "wt?cp1=no-page", "", too_long, action, "\x00"])
    assert replay(noisy, trusted.root, track_id=track_id).status == 200
    check_rows("node-http", "identified", trusted.rows(track_id))


def test_raw_utf8_in_a_batch_line_is_kept_whole(trusted: Collector, track_id: str) -> None:
    # Mapp's libraries percent-encode; a site's own forwarder may write text as it is. The
    # collector promises to keep such a line, escaped: "Å" is C3 85 in UTF-8 and "à" C3 A0,
    # and 0x85 / 0xA0 are line breaks and spaces to str.splitlines() and str.strip().
    (request,) = FIXTURES["php-curl"].by_scenario("no-eid")
    line = request.lines()[0] + "&cp1=%C3%85land&cp2=Åland Хорошо&cp3=voilà"
    assert post(trusted.prefixed, f"/{track_id}/batch", (line + "\n").encode()) == 200
    (row,) = trusted.rows(track_id)
    p = params(row)
    assert {k: p.get(k) for k in ("cp1", "cp2", "cp3")} == {
        "cp1": "Åland",
        "cp2": "Åland Хорошо",
        "cp3": "voilà",
    }
    assert row["user_agent"] == VISITOR_UA


# ------------------------------------------------------------------------------ anonymous hits


@pytest.mark.parametrize("name", NAMES)
def test_lines_marked_nc_leave_nothing_of_the_visitor(
    name: str, trusted: Collector, track_id: str
) -> None:
    requests = list(FIXTURES[name].requests)
    for request in requests:
        anonymous = marked_anonymous(request)
        assert replay(anonymous, trusted.base_for_request(request), track_id=track_id).status == 200
    rows = trusted.rows(track_id)
    assert len(rows) == hits_sent(requests) and all(r["anonymous"] for r in rows)
    assert_private(rows, (), [*ever_ids(requests), *VISITOR_TRACES])
    # What is not the visitor's identity is kept: the page, the order, the customer id (cd is
    # not an identifier in the Smart Pixel's rules; suppress_parameter removes it).
    assert {r["page_name"] for r in rows} == {
        "en.shop.checkout.thank-you",
        "en.shop.home",
        "shop.example.com/checkout/thank-you",
    }
    assert {r["customer_id"] for r in rows} == {None, "customer-24"}
    assert all(re.search(r"^p=600,[^&]*&nc=1(&|$)", r["query"]) for r in rows)


@pytest.mark.parametrize("name", NAMES)
def test_an_untrusted_sender_is_anonymous_without_the_consent_cookie(
    name: str, untrusted_opt_in: Collector, track_id: str
) -> None:
    # The same requests, unchanged, from a machine the collector does not trust, in opt-in
    # mode: nobody consented, so X-WT-IP, X-WT-UA and every eid are dropped.
    requests = list(FIXTURES[name].requests)
    for request in requests:
        base = untrusted_opt_in.base_for_request(request)
        assert replay(request, base, track_id=track_id).status == 200
    rows = untrusted_opt_in.rows(track_id)
    assert len(rows) == hits_sent(requests) and all(r["anonymous"] for r in rows)
    assert_private(rows, (), [*ever_ids(requests), *VISITOR_TRACES, "127.0.0.1"])


# ------------------------------------------------------------------------------------ limits


def test_ten_thousand_lines_are_one_batch(trusted: Collector, track_id: str) -> None:
    # Every library caps a batch at 10,000 lines and 24 MiB; the default max_body_bytes too.
    (request,) = FIXTURES["node-http"].by_scenario("no-eid")
    (line,) = request.lines()
    big = with_lines(request, [numbered(line, n) for n in range(10_000)])
    assert len(big.body) > 8_000_000
    assert replay(big, trusted.root, track_id=track_id, timeout=120).status == 200
    rows = trusted.rows(track_id)
    assert len(rows) == 10_000
    assert {(r["ip"], r["user_agent"], r["anonymous"]) for r in rows} == {
        (VISITOR_IP, VISITOR_UA, False)
    }


def _padded_lines(size: int) -> str:
    """Fewer than 10,000 valid lines that add up to more than ``size`` bytes."""
    pad = "x" * 180
    lines: list[str] = []
    total = 0
    while total <= size:
        lines.append(f"wt?p=600,p,,,,,{1795614543769 + len(lines)},0,,&cp1={pad}")
        total += len(lines[-1]) + 1
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("refused", "status"),
    [("unknown track id", 404), ("no hit at all", 400), ("over max_body_bytes", 413)],
)
def test_what_the_collector_refuses(
    refused: str, status: int, limited: Collector, track_id: str
) -> None:
    (request,) = FIXTURES["php-curl"].by_scenario("no-eid")
    path_id, body = track_id, request.body
    if refused == "unknown track id":
        path_id = "999999999999999"
    elif refused == "no hit at all":
        body = "garbage\nwt?cp1=no-page\n"
    else:
        body = _padded_lines(SMALL_LIMIT)
    assert post(limited.prefixed, f"/{path_id}/batch", body.encode()) == status
    assert limited.rows(track_id) == []


def test_more_than_ten_thousand_lines_are_refused_whole(trusted: Collector, track_id: str) -> None:
    lines = [f"wt?p=600,p,,,,,{1795614543769 + n},0,,&cp1={n}" for n in range(10_001)]
    assert post(trusted.root, f"/{track_id}/batch", "\n".join(lines).encode()) == 413
    assert trusted.rows(track_id) == []


# --------------------------------------------------------------------------- real libraries


def _run(name: str, base_url: str, track_id: str, scenario: str, work_dir: Path) -> None:
    try:
        result = run_client(name, base_url, track_id, scenario=scenario, work_dir=work_dir)
    except ClientUnavailable as exc:
        pytest.skip(str(exc))
    # The library's own verdict: PHP and fork-curl report success only for a 200.
    assert result.ok, result.describe()


@pytest.mark.server
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_real_library_delivers_every_hit_once(
    name: str, scenario: str, trusted: Collector, track_id: str, tmp_path: Path
) -> None:
    _run(name, trusted.base_for(name), track_id, scenario, tmp_path)
    check_rows(name, scenario, trusted.rows(track_id))


def _cron_batch(name: str, work_dir: Path, lines: int) -> int:
    """Write ``lines`` page views into ``name``'s request file, as its FILE consumer does: the
    library's own recorded line, each with its own time. Returns the file's size."""
    (request,) = FIXTURES[name].by_scenario("identified")
    page = request.lines()[0]
    path = request_file(name, work_dir, 1795614553253)
    path.write_text("".join(numbered(page, n) + "\n" for n in range(lines)), encoding="utf-8")
    return path.stat().st_size


@pytest.mark.server
@pytest.mark.parametrize("name", sorted(CRON_FILES))
def test_a_cron_jobs_full_batch_is_accepted(
    name: str, trusted: Collector, track_id: str, tmp_path: Path
) -> None:
    # The cron jobs send their files 1000 lines a batch: with customer and order data that is
    # more than 1 MiB (libcurl then also sends Expect: 100-continue). Anything but 200 and
    # PHP's cron job keeps the file and resends it, whole, on every run, forever.
    size = _cron_batch(name, tmp_path, 1000)
    assert size > 1024 * 1024
    try:
        result = run_cronjob(name, trusted.base_for(name), track_id, work_dir=tmp_path)
    except ClientUnavailable as exc:
        pytest.skip(str(exc))
    assert result.ok, result.describe()
    rows = trusted.rows(track_id)
    assert len(rows) == 1000
    assert {(r["ever_id"], r["ip"], r["user_agent"]) for r in rows} == {
        (SMART_PIXEL_EVER_ID, VISITOR_IP, VISITOR_UA)
    }
    assert not list(tmp_path.glob("MappIntelligenceRequests*"))  # a sent file is deleted
