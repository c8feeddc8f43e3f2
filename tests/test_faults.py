"""Nothing acknowledged is lost: real servers killed, stores stopped, disks full, files locked.

Every test here runs uvicorn in a child process (``tests.fault_app``), sends numbered hits over
HTTP, breaks something, and then reads what a user would read: rows in the store, files in the
spool, log lines at ERROR, the server's exit status. A hit answered 200 must end up stored exactly
once; a hit that could not be kept must have been refused (503), so its client sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pixel_middleware.sinks import BufferedSink, Hit
from pixel_middleware.sinks.buffered import SinkUnavailable, Spool
from pixel_middleware.sinks.postgres import PostgresSink

from .conftest import fresh_database
from .helpers import TRACK_ID
from .postgres import PostgresServer
from .server_process import WT, ServerProcess, acknowledged, hit_query, send_hits
from .servers import free_port
from .stores import Memory, cp1, read_rows

# How long a test waits for a restarted server to replay its spool before it gives up. Not a
# promise about speed: a loaded machine may need most of it.
REPLAY_WAIT = 120.0


def stored(store: str) -> list[int]:
    """The hit numbers in ``store``, sorted, duplicates kept (there must be none)."""
    return sorted(int(cp1(r)) for r in read_rows(store))


def spooled(folder: Path) -> list[int]:
    """The hit numbers waiting in the spool files of ``folder``."""
    numbers: list[int] = []
    for path in sorted(folder.glob("spool-*.jsonl")):
        numbers += [int(h.param("cp1") or -1) for h in Spool.read(path) if isinstance(h, Hit)]
    return sorted(numbers)


def on_disk(store: str, spool: Path) -> set[int]:
    return set(stored(store)) | set(spooled(spool))


def wait_until_stored(store: str, expected: Sequence[int], timeout: float = REPLAY_WAIT) -> None:
    """Wait until ``store`` holds exactly ``expected``; fail with what it holds otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = stored(store)
        except sqlite3.OperationalError:  # the file is being created or migrated
            found = []
        if found == sorted(expected):
            return
        if time.monotonic() > deadline:
            missing = sorted(set(expected) - set(found))
            extra = len(found) - len(set(found))
            raise AssertionError(
                f"{len(found)} stored of {len(expected)}; missing {missing[:20]}…, "
                f"{extra} stored twice"
            )
        time.sleep(0.2)


def get(url: str, target: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def numbered(number: int, query: str = "p=600,x") -> Hit:
    return Hit(received_at=1.0, track_id=TRACK_ID, anonymous=False, query=f"{query}&cp1={number}")


def poison(number: int) -> Hit:
    """A hit no store can encode: its page name holds a lone surrogate."""
    return numbered(number, "p=600,bad\udcffpage")


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    """``server`` started, and stopped (or killed, if it will not stop) when the block ends."""
    server.start()
    try:
        yield server
    finally:
        process = server.process
        if process is not None and process.poll() is None:
            try:
                server.stop(120)
            except subprocess.TimeoutExpired:
                server.kill()


# --------------------------------------------------------------------------------------------
# 1. A hit answered 2xx is durable: kill -9 one second after the last 200, in every setup.


def kill_9_after(server: ServerProcess, numbers: range) -> list[int]:
    """Send ``numbers`` and ``kill -9`` the server one second after the last answer; the
    numbers answered 200."""
    try:
        statuses = send_hits(server.url, numbers)
        time.sleep(1)
    finally:
        server.kill()
    return acknowledged(statuses)


def test_sqlite_keeps_every_acknowledged_hit_through_kill_9(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/hits.sqlite3"
    config = {"store": store}
    ack = kill_9_after(ServerProcess(config, tmp_path / "server.log").start(), range(3000))
    assert ack == list(range(3000))
    # The promise itself: at the kill, every acknowledged hit is in the store or the spool.
    assert on_disk(store, tmp_path / "hits.sqlite3.spool") >= set(ack)
    with running(ServerProcess(config, tmp_path / "again.log")):
        wait_until_stored(store, ack)


def test_postgresql_up_keeps_every_acknowledged_hit_through_kill_9(
    pg: PostgresServer, tmp_path: Path
) -> None:
    dsn = fresh_database(pg)
    config = {"store": dsn, "spool_dir": str(tmp_path / "spool")}
    ack = kill_9_after(ServerProcess(config, tmp_path / "server.log").start(), range(3000))
    assert ack == list(range(3000))
    assert on_disk(dsn, tmp_path / "spool" / "postgresql") >= set(ack)
    with running(ServerProcess(config, tmp_path / "again.log")):
        wait_until_stored(dsn, ack)


def test_postgresql_down_keeps_every_acknowledged_hit_through_kill_9(
    pg: PostgresServer, tmp_path: Path
) -> None:
    """The issue's case: 3,000 hits acknowledged while PostgreSQL is down, then ``kill -9``."""
    dsn = fresh_database(pg)
    spool = tmp_path / "spool" / "postgresql"
    config = {"store": dsn, "spool_dir": str(tmp_path / "spool")}
    server = ServerProcess(config, tmp_path / "server.log").start()
    try:
        before = acknowledged(send_hits(server.url, range(100)))
        pg.stop()
        try:
            during = kill_9_after(server, range(100, 3100))
            # At the kill, the 3,000 hits of the outage were on disk, in the spool.
            assert set(spooled(spool)) >= set(range(100, 3100))
        finally:
            pg.start()
    finally:
        server.kill()
    ack = before + during
    assert ack == list(range(3100))
    assert on_disk(dsn, spool) >= set(ack)
    restarted = ServerProcess(config, tmp_path / "again.log")
    with running(restarted):
        wait_until_stored(dsn, ack)  # replayed at start-up: no new hit is needed to wake it
    assert restarted.stopped_cleanly
    assert spooled(spool) == []


@pytest.mark.parametrize("target", ["up", "down"])
def test_relay_keeps_every_acknowledged_hit_through_kill_9(target: str, tmp_path: Path) -> None:
    port = free_port()
    target_store = f"sqlite:///{tmp_path}/target.sqlite3"
    collector = ServerProcess({"store": target_store}, tmp_path / "target.log", port=port)
    spool = tmp_path / "spool" / "relay"
    config = {
        "store": "none",
        "relay": "true",
        "relay_url": f"http://127.0.0.1:{port}/_pixel",
        "spool_dir": str(tmp_path / "spool"),
    }
    log = tmp_path / "front.log"
    with contextlib.ExitStack() as stack:
        if target == "up":
            stack.enter_context(running(collector))
        ack = kill_9_after(ServerProcess(config, log).start(), range(2000))
        assert ack == list(range(2000))
        if target == "down":
            assert set(spooled(spool)) == set(ack)  # all of it waits on disk
            stack.enter_context(running(collector))
        else:
            # Acknowledged by the front, so on the target's disk or in the front's spool.
            collector_spool = tmp_path / "target.sqlite3.spool"
            assert on_disk(target_store, collector_spool) | set(spooled(spool)) >= set(ack)
        with running(ServerProcess(config, log)):
            wait_until_stored(target_store, ack)
    assert not list((spool / "rejected").glob("*.jsonl"))


# --------------------------------------------------------------------------------------------
# 2. One bad hit never blocks the rest.


def test_nul_in_a_hit_is_stored_cleaned_in_postgresql(pg: PostgresServer, tmp_path: Path) -> None:
    """``p=600,x%00`` is answered 200; PostgreSQL cannot hold a NUL, so it is stored as U+FFFD,
    and the hits after it are not held up."""
    dsn = fresh_database(pg)
    config = {"store": dsn, "spool_dir": str(tmp_path / "spool")}
    server = ServerProcess(config, tmp_path / "server.log")
    with running(server):
        assert set(send_hits(server.url, range(10)).values()) == {200}
        assert get(server.url, f"{WT}?p=600,x%00&cp1=10") == 200
        nasty = "p=600,a%00b%01c%7F,,,,,1700000000000,0,,&cp1=11&cp3=v%00w%1Bx&c%00d=1"
        assert get(server.url, f"{WT}?{nasty}") == 200
        assert set(send_hits(server.url, range(12, 30)).values()) == {200}
        wait_until_stored(dsn, range(30))
    assert server.stopped_cleanly
    rows = {int(cp1(r)): r for r in read_rows(dsn)}
    assert rows[10]["page_name"] == "x\ufffd"
    assert rows[11]["page_name"] == "a\ufffdb\ufffdc\ufffd"
    assert ["cp3", "v\ufffdw\ufffdx"] in json.loads(rows[11]["params"])
    assert "\x00" not in rows[11]["params"]
    assert "\x00" not in rows[11]["query"]
    assert not (tmp_path / "spool" / "postgresql" / "dead").exists()
    assert server.records("ERROR") == []


def test_a_hit_postgresql_refuses_is_set_aside_and_the_rest_stored(
    pg: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = fresh_database(pg)
    sink = PostgresSink(dsn, spool_dir=str(tmp_path / "spool"))
    good = [numbered(i) for i in range(20)]
    with caplog.at_level(logging.ERROR, logger="pixel_middleware.sinks"):
        asyncio.run(sink.write([*good[:7], poison(99), *good[7:]]))
        assert sink.flush(30)
        later = [numbered(i) for i in range(20, 40)]
        asyncio.run(sink.write(later))  # not held up behind the bad one
        assert sink.flush(30)
    asyncio.run(sink.close())
    assert stored(dsn) == list(range(40))
    dead = list((tmp_path / "spool" / "dead").glob("dead-*.jsonl"))
    assert len(dead) == 1
    text = dead[0].read_text()
    assert "UnicodeEncodeError" in text and "cp1=99" in text  # the reason, and the hit
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "1 hit(s) cannot be stored" in errors[0].getMessage()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_poisoned_spool_does_not_block_the_store_after_a_restart(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A previous run spooled a batch holding a hit no store can take: the restarted server
    stores the rest of it and the new hits, and sets the bad one aside, once."""
    if kind == "sqlite":
        store = f"sqlite:///{tmp_path}/hits.sqlite3"
        config = {"store": store}
        spool = tmp_path / "hits.sqlite3.spool"
    else:
        store = fresh_database(request.getfixturevalue("pg"))
        config = {"store": store, "spool_dir": str(tmp_path / "spool")}
        spool = tmp_path / "spool" / "postgresql"
    left = [numbered(i) for i in range(1000, 1010)]
    Spool(spool).add([*left[:3], poison(1999), *left[3:]])
    Spool(spool).add([numbered(i) for i in range(1010, 1020)])
    server = ServerProcess(config, tmp_path / "server.log")
    with running(server):
        statuses = send_hits(server.url, range(50))
        assert acknowledged(statuses) == list(range(50))
        wait_until_stored(store, [*range(50), *range(1000, 1020)])
    assert spooled(spool) == []
    dead = list((spool / "dead").glob("dead-*.jsonl"))
    assert len(dead) == 1 and "cp1=1999" in dead[0].read_text()
    errors = server.records("ERROR")
    assert len(errors) == 1 and "1 hit(s) cannot be stored" in errors[0], errors
    # Started again, the server has nothing left to replay and sets nothing aside twice.
    again = ServerProcess(config, tmp_path / "again.log")
    with running(again):
        assert acknowledged(send_hits(again.url, range(50, 60))) == list(range(50, 60))
        wait_until_stored(store, [*range(60), *range(1000, 1020)])
    assert again.records("ERROR") == []
    assert len(list((spool / "dead").glob("dead-*.jsonl"))) == 1


# --------------------------------------------------------------------------------------------
# 3. Relaying to our own collector survives an outage.


@pytest.mark.parametrize("outage", ["restart", "kill -9 after a quiet second", "kill -9, durable"])
def test_relay_to_our_own_collector_with_default_settings_survives_an_outage(
    outage: str, tmp_path: Path
) -> None:
    """5,000 hits of about 1 KB (a backlog of 5 MB, five times the relay's request size) through
    a relay whose target goes away for a few seconds: each arrives once, none is set aside.

    The target is stopped gracefully mid-stream (a deploy), or killed one second after it last
    answered (within the promise of point 1), or killed mid-stream while it answers batches only
    once their hits are saved (``write_durably``): a batch it had answered 200 is then never
    lost, although the relay has already deleted its copy.
    """
    port = free_port()
    target_store = f"sqlite:///{tmp_path}/target.sqlite3"
    target_log = tmp_path / "target.log"
    durable = {"FAULT_DURABLE_WRITES": "1"} if outage.endswith("durable") else {}

    def target() -> ServerProcess:
        return ServerProcess({"store": target_store}, target_log, port=port, extra_env=durable)

    config = {
        "store": "none",
        "relay": "true",
        "relay_url": f"http://127.0.0.1:{port}/_pixel",
        "spool_dir": str(tmp_path / "spool"),
    }
    front = ServerProcess(config, tmp_path / "front.log")
    with running(front):
        with running(target()) as first_target:
            first = send_hits(front.url, range(1000), padding=1000)
            if outage == "restart":
                first_target.stop()
            elif outage == "kill -9 after a quiet second":
                wait_until_stored(target_store, range(1000))
                time.sleep(1)
                first_target.kill()
            else:
                first_target.kill()  # while the relay is still sending
        during = send_hits(front.url, range(1000, 4000), padding=1000)
        time.sleep(3)
        with running(target()):
            after = send_hits(front.url, range(4000, 5000), padding=1000)
            ack = acknowledged(first | during | after)
            assert ack == list(range(5000))
            wait_until_stored(target_store, ack)
    rejected = tmp_path / "spool" / "relay" / "rejected"
    assert not list(rejected.glob("*.jsonl"))
    assert front.records("ERROR") == []


def test_relay_splits_a_batch_the_collector_finds_too_large(tmp_path: Path) -> None:
    """A collector with a smaller ``max_body_bytes`` than the relay's requests answers 413: the
    relay sends smaller ones instead of setting the hits aside."""
    port = free_port()
    target_store = f"sqlite:///{tmp_path}/target.sqlite3"
    target = ServerProcess(
        {"store": target_store, "max_body_bytes": "65536"}, tmp_path / "target.log", port=port
    )
    config = {
        "store": "none",
        "relay": "true",
        "relay_url": f"http://127.0.0.1:{port}/_pixel",
        "spool_dir": str(tmp_path / "spool"),
    }
    front = ServerProcess(config, tmp_path / "front.log")
    with running(front):
        # One batch of 900 hits of about 1 KB, from a server library, while the target is down:
        # it waits in the spool as one piece, 14 times what the target accepts.
        body = "".join(f"wt?{hit_query(n, padding=1000)}\n" for n in range(900))
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=30)
        conn.request("POST", f"/_pixel/{TRACK_ID}/batch", body, {"content-type": "text/plain"})
        assert conn.getresponse().status in (200, 204)
        conn.close()
        more = acknowledged(send_hits(front.url, range(900, 1000), padding=1000))
        assert more == list(range(900, 1000))
        spool = tmp_path / "spool" / "relay"
        deadline = time.monotonic() + REPLAY_WAIT
        while set(spooled(spool)) != set(range(1000)):
            assert time.monotonic() < deadline, "the hits never reached the spool"
            time.sleep(0.1)
        assert max(p.stat().st_size for p in spool.glob("spool-*.jsonl")) > 65536 * 10
        with running(target):
            wait_until_stored(target_store, range(1000))
    assert not list((spool / "rejected").glob("*.jsonl"))
    assert front.records("ERROR") == []
    assert any("HTTP 413" in line for line in front.records("WARNING"))


# --------------------------------------------------------------------------------------------
# 4. No silent loss when the disk says no.


@pytest.mark.parametrize("case", ["sqlite-file", "sqlite-spool", "postgresql-spool", "relay-spool"])
def test_a_server_that_cannot_keep_hits_does_not_start(
    case: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Tests run as root, and root writes through any permission bit; a path through a regular
    file, or a folder where a file should be, fails for root too."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file")
    if case == "sqlite-file":
        (tmp_path / "hits.sqlite3").mkdir()  # a folder where the database file should be
        config = {"store": f"sqlite:///{tmp_path}/hits.sqlite3"}
        named = str(tmp_path / "hits.sqlite3")
    elif case == "sqlite-spool":
        (tmp_path / "hits.sqlite3.spool").write_text("a file where the spool folder should be")
        config = {"store": f"sqlite:///{tmp_path}/hits.sqlite3"}
        named = str(tmp_path / "hits.sqlite3.spool")
    elif case == "postgresql-spool":
        dsn = fresh_database(request.getfixturevalue("pg"))
        config = {"store": dsn, "spool_dir": str(blocker / "spool")}
        named = str(blocker / "spool")
    else:
        config = {
            "store": "none",
            "relay": "true",
            "relay_url": f"http://127.0.0.1:{free_port()}/_pixel",
            "spool_dir": str(blocker / "spool"),
        }
        named = str(blocker / "spool")
    server = ServerProcess(config, tmp_path / "server.log")
    process = server.launch()
    assert process.wait(60) != 0
    errors = server.records("ERROR")
    assert errors and named in errors[0], server.log()
    assert "cannot keep hits" in errors[0]
    assert "Application startup failed" in server.log()


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder``: a disk that can really fill up."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``."""
    filler = disk / "filler"
    # Unbuffered, and the error caught outside the file's block: a buffered file's close would
    # flush what did not fit and raise ENOSPC again, after the suppress had ended.
    with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 65536)
    for extra in range(1000):  # the last partial page, and inodes
        try:
            (disk / f"filler-{extra}").write_bytes(b"\0" * 512)
        except OSError:
            break
    return filler


def free(disk: Path) -> None:
    for path in disk.glob("filler*"):
        path.unlink()


def test_a_full_disk_is_answered_503_and_loses_nothing_silently(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "4m") as disk:
        store = f"sqlite:///{disk}/hits.sqlite3"
        server = ServerProcess({"store": store}, tmp_path / "server.log")
        server.start()
        try:
            assert acknowledged(send_hits(server.url, range(100))) == list(range(100))
            wait_until_stored(store, range(100))

            fill(disk)
            full = send_hits(server.url, range(100, 400), padding=2000)
            held = acknowledged(full)
            refused = sorted(set(full) - set(held))
            # The first hits after the disk filled were answered before the writer knew; then
            # the collector said 503, so that clients send again.
            assert refused and set(full.values()) == {200, 503}
            errors = server.records("ERROR")
            assert any("cannot spool" in line for line in errors), errors

            free(disk)
            # Space is back: what was acknowledged while the disk was full is stored, and new
            # hits are accepted again.
            deadline = time.monotonic() + REPLAY_WAIT
            while get(server.url, f"{WT}?{hit_query(400)}") != 200:
                assert time.monotonic() < deadline, "hits still refused after space came back"
                time.sleep(0.2)
            later = acknowledged(send_hits(server.url, range(401, 500)))
            assert later == list(range(401, 500))
            wait_until_stored(store, [*range(100), *held, *range(400, 500)])

            fill(disk)
            last = send_hits(server.url, range(500, 800), padding=2000)
            held_last = acknowledged(last)
            assert set(last.values()) == {200, 503}
        finally:
            server.stop(120)
        # Stopped with a full disk: what could be neither stored nor spooled is counted, loudly.
        kept = set(stored(store)) | set(spooled(disk / "hits.sqlite3.spool"))
        lost = sorted(set(held_last) - kept)
        lost_lines = [line for line in server.records("ERROR") if "LOST" in line]
        assert lost, "the disk was full at shutdown: some answered hits could not be kept"
        assert len(lost_lines) == 1, lost_lines
        assert f" {len(lost)} acknowledged hit(s) LOST at shutdown" in lost_lines[0]
        assert server.stopped_cleanly
        free(disk)


# --------------------------------------------------------------------------------------------
# 5. Shutdown meets a locked SQLite file.


def test_shutdown_with_the_sqlite_file_locked_keeps_every_hit(tmp_path: Path) -> None:
    path = tmp_path / "hits.sqlite3"
    store = f"sqlite:///{path}"
    server = ServerProcess({"store": store}, tmp_path / "server.log")
    server.start()
    statuses: dict[int, int] = {}
    try:
        statuses |= send_hits(server.url, range(200))
        wait_until_stored(store, range(200))
        # A long prune or a backup: another connection holds the write lock.
        lock = sqlite3.connect(path, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")

        def sender(numbers: range) -> None:
            with contextlib.suppress(OSError, http.client.HTTPException):
                for n in numbers:
                    statuses.update(send_hits(server.url, [n]))

        senders = [
            threading.Thread(target=sender, args=(range(start, start + 500),))
            for start in range(200, 2200, 500)
        ]
        for thread in senders:
            thread.start()
        deadline = time.monotonic() + 120
        while len(statuses) < 600 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop(120)  # bounded: a hung shutdown fails here
        for thread in senders:
            thread.join(60)
        assert server.stopped_cleanly
        lock.rollback()
        lock.close()
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()
    ack = acknowledged(statuses)
    assert len(ack) >= 600
    spool = tmp_path / "hits.sqlite3.spool"
    assert on_disk(store, spool) >= set(ack)
    assert not [line for line in server.records("ERROR") if "LOST" in line]
    with running(ServerProcess({"store": store}, tmp_path / "again.log")):
        wait_until_stored(store, ack)


# --------------------------------------------------------------------------------------------
# The writer on its own, with a backend that hangs.


class Hanging:
    """A backend that never answers until ``release`` is set."""

    def __init__(self) -> None:
        self.name = "hanging"
        self.release = threading.Event()
        self.written: list[str] = []

    async def write_batch(self, hits: Sequence[Hit]) -> None:
        # Polled: the test sets it from another thread, and a waiting thread could not be
        # cancelled when the sink gives up on this batch.
        while not self.release.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self.written += [h.hit_id for h in hits]

    async def reset(self) -> None:
        return None

    async def close(self) -> None:
        return None


def test_a_hanging_backend_gets_hits_spooled_and_shutdown_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Hanging()
    sink = BufferedSink(backend, spool_dir=tmp_path, close_timeout=0.5)
    hits = [numbered(i) for i in range(300)]

    async def write_slowly() -> None:
        for start in range(0, 300, 30):
            await sink.write(hits[start : start + 30])
            await asyncio.sleep(0.01)

    asyncio.run(write_slowly())
    with caplog.at_level(logging.WARNING, logger="pixel_middleware.sinks"):
        asyncio.run(sink.close())  # the backend never answers: the close is bounded anyway
    assert sorted(spooled(tmp_path)) == list(range(300))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    backend.release.set()
    again = BufferedSink(backend, spool_dir=tmp_path)
    assert again.flush(10)
    assert sorted(backend.written) == sorted({h.hit_id for h in hits})
    asyncio.run(again.close())


def test_the_memory_queue_is_bounded_in_bytes(tmp_path: Path) -> None:
    """Hits that would take the queue past ``max_queue_bytes`` are on disk when ``write``
    returns, long before the writer would spool them for a slow backend."""
    backend = Hanging()
    sink = BufferedSink(backend, spool_dir=tmp_path, max_queue_bytes=100_000, close_timeout=0.5)
    big = [numbered(i, "p=600,x&cp2=" + "y" * 20_000) for i in range(20)]
    asyncio.run(sink.write(big))  # 400 KB
    assert spooled(tmp_path) == list(range(20))
    asyncio.run(sink.close())
    backend.release.set()
    assert spooled(tmp_path) == list(range(20))


class Slow:
    """A backend that answers after ``delay`` seconds and refuses a batch holding "bad"."""

    def __init__(self, delay: float) -> None:
        self.name = "slow"
        self.delay = delay
        self.written: list[str] = []

    async def write_batch(self, hits: Sequence[Hit]) -> None:
        await asyncio.sleep(self.delay)
        if any("bad" in h.query for h in hits):
            raise ValueError("cannot store this")
        self.written += [h.hit_id for h in hits]

    async def reset(self) -> None:
        return None

    async def close(self) -> None:
        return None


def test_a_slow_refusal_is_split_not_replayed_whole(tmp_path: Path) -> None:
    """A batch refused only after ``patience`` (so already spooled) is split at once: the good
    hits are stored, the bad one set aside, and the spool copy is gone."""
    backend = Slow(0.2)
    sink = BufferedSink(backend, spool_dir=tmp_path, patience=0.05)
    good = [numbered(i) for i in range(8)]
    asyncio.run(sink.write([*good[:5], numbered(99, "p=600,bad"), *good[5:]]))
    assert sink.flush(30)
    asyncio.run(sink.close())
    assert sorted(backend.written) == sorted(h.hit_id for h in good)
    assert sink.dead == 1 and spooled(tmp_path) == []
    assert "cp1=99" in next((tmp_path / "dead").glob("dead-*.jsonl")).read_text()


def test_hits_held_when_the_spool_fails_are_written_once(tmp_path: Path) -> None:
    """The spool cannot be written and the backend is slow: the hits wait in memory, and once the
    backend confirms them they are not sent a second time."""
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    backend = Slow(0.2)
    sink = BufferedSink(backend, spool_dir=blocker / "spool", patience=0.05)
    hits = [numbered(i) for i in range(10)]
    asyncio.run(sink.write(hits))
    assert sink.flush(30)
    asyncio.run(sink.close())
    assert sorted(backend.written) == sorted(h.hit_id for h in hits)  # each exactly once


def test_hits_do_not_wait_in_memory_behind_a_backlog(tmp_path: Path) -> None:
    """Each batch is written within ``patience``, but 20 of them take the backend 2 s: one
    second after ``write``, every hit is written or on disk."""
    backend = Slow(0.1)
    sink = BufferedSink(backend, spool_dir=tmp_path, batch_size=10, patience=0.25)
    hits = [numbered(i) for i in range(200)]
    asyncio.run(sink.write(hits))
    time.sleep(1)
    written = {h.param("cp1") for h in hits if h.hit_id in set(backend.written)}
    assert {int(n or -1) for n in written} | set(spooled(tmp_path)) >= set(range(200))
    assert sink.flush(30)
    asyncio.run(sink.close())
    assert sorted(backend.written) == sorted(h.hit_id for h in hits)


def test_start_replays_what_a_previous_run_left(tmp_path: Path) -> None:
    backend = Slow(0)
    left = [numbered(i) for i in range(5)]
    Spool(tmp_path).add(left)
    sink = BufferedSink(backend, spool_dir=tmp_path)
    asyncio.run(sink.start())  # no hit is written: start alone sends the spool
    deadline = time.monotonic() + 30
    while len(backend.written) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(backend.written) == sorted(h.hit_id for h in left)
    asyncio.run(sink.close())


def test_a_started_sink_writes_on_the_servers_loop(tmp_path: Path) -> None:
    """After ``start`` (a server's lifespan) the writer is a task on that loop: no thread
    competes with the server's for the interpreter lock."""
    backend = Slow(0)
    backend.name = "slow-on-the-servers-loop"
    sink = BufferedSink(backend, spool_dir=tmp_path)
    hits = [numbered(i) for i in range(50)]

    async def serve() -> list[threading.Thread]:
        await sink.start()
        await sink.write(hits)
        for _ in range(200):
            if len(backend.written) == len(hits):
                break
            await asyncio.sleep(0.01)
        threads = [t for t in threading.enumerate() if t.name == f"pixel-{backend.name}"]
        await sink.close()
        return threads

    assert asyncio.run(serve()) == []
    assert sorted(backend.written) == sorted(h.hit_id for h in hits)


def test_a_loop_that_goes_away_mid_batch_loses_nothing(tmp_path: Path) -> None:
    """The server's loop ends (no lifespan shutdown) while a batch is in the backend's hands:
    the batch goes back to the queue and a writer thread stores it, and the hits behind it."""
    backend = Slow(0.3)
    sink = BufferedSink(backend, spool_dir=tmp_path, patience=5, linger=0.01)
    hits = [numbered(i) for i in range(30)]

    async def serve_briefly() -> None:
        await sink.start()
        await sink.write(hits[:10])
        await asyncio.sleep(0.1)  # the first batch is now in the backend, for 0.3 s
        await sink.write(hits[10:])

    asyncio.run(serve_briefly())  # cancels the writer task on its way out
    deadline = time.monotonic() + 30
    while len(set(backend.written)) < len(hits) and time.monotonic() < deadline:
        time.sleep(0.05)  # no flush: the thread that took over writes on its own
    assert sorted(set(backend.written)) == sorted(h.hit_id for h in hits)
    asyncio.run(sink.close())


def test_write_durably_returns_once_the_hits_are_saved(tmp_path: Path) -> None:
    """Stored when the backend answers; spooled when it hangs; refused when neither works."""
    quick = Slow(0)
    sink = BufferedSink(quick, spool_dir=tmp_path / "a")
    hits = [numbered(i) for i in range(5)]
    asyncio.run(sink.write_durably(hits))
    assert sorted(quick.written) == sorted(h.hit_id for h in hits)  # already, no flush
    asyncio.run(sink.close())

    hanging = Hanging()
    sink = BufferedSink(hanging, spool_dir=tmp_path / "b", close_timeout=0.5)
    asyncio.run(sink.write_durably(hits))
    assert spooled(tmp_path / "b") == list(range(5))  # on disk when the call returned
    asyncio.run(sink.close())

    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    backend = Memory(down=True)
    sink = BufferedSink(backend, spool_dir=blocker / "spool", close_timeout=0.5)
    with pytest.raises(SinkUnavailable):
        asyncio.run(sink.write_durably(hits))  # only memory holds them: the client must retry
    backend.down = False
    assert sink.flush(30)  # they are still written once the backend is back
    assert sorted(backend.written) == sorted(h.hit_id for h in hits)
    asyncio.run(sink.close())
