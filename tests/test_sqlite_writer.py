"""The SQLite store's child writer process: rows land, a killed child is replaced, nothing lost."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from pixel_middleware.sinks import Hit, SQLiteSink

from .helpers import TRACK_ID
from .stores import read_rows


def hits(n: int, start: int = 0) -> list[Hit]:
    return [
        Hit(received_at=1.0, track_id=TRACK_ID, anonymous=False, query=f"p=600,x&cp1={i}")
        for i in range(start, start + n)
    ]


def test_rows_are_written_by_a_child_process(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "hits.sqlite3")
    first = hits(300)
    asyncio.run(sink.write(first))
    assert sink.flush(20)
    child = sink.backend._child  # type: ignore[attr-defined]
    assert child is not None and child.pid != os.getpid()
    assert sorted(r["hit_id"] for r in read_rows(f"sqlite:///{tmp_path}/hits.sqlite3")) == sorted(
        h.hit_id for h in first
    )
    asyncio.run(sink.close())
    assert child.wait(5) == 0  # the child ends with its parent's sink


def test_a_killed_child_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "hits.sqlite3", max_backoff=0.05)
    asyncio.run(sink.write(hits(10)))
    assert sink.flush(20)
    child = sink.backend._child  # type: ignore[attr-defined]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(5)
    more = hits(500, start=10)
    asyncio.run(sink.write(more))
    assert sink.flush(30)
    rows = read_rows(f"sqlite:///{tmp_path}/hits.sqlite3")
    assert len(rows) == 510 and len({r["hit_id"] for r in rows}) == 510
    assert sink.backend._child.pid != child.pid  # type: ignore[attr-defined]
    asyncio.run(sink.close())


def test_a_hit_sqlite_cannot_take_is_set_aside_and_the_rest_stored(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "hits.sqlite3")
    good = hits(9)
    # A lone surrogate cannot be encoded for SQLite: the one hit fails, not its batch.
    poison = Hit(received_at=1.0, track_id=TRACK_ID, anonymous=False, query="p=600,\udcff")
    asyncio.run(sink.write([*good[:4], poison, *good[4:]]))
    assert sink.flush(20)
    rows = read_rows(f"sqlite:///{tmp_path}/hits.sqlite3")
    assert sorted(r["hit_id"] for r in rows) == sorted(h.hit_id for h in good)
    dead = list((tmp_path / "hits.sqlite3.spool" / "dead").glob("dead-*.jsonl"))
    assert len(dead) == 1 and poison.hit_id in dead[0].read_text()
    assert sink.dead == 1
    asyncio.run(sink.close())
