"""Reading back what the stores hold, and the privacy check over all of it."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from pixel_middleware.sinks import Hit
from pixel_middleware.sinks.schema import COLUMNS
from pixel_middleware.store_url import parse_store

SELECT = f"SELECT {', '.join(COLUMNS)} FROM pixel_hits ORDER BY received_at"  # noqa: S608
IDENTIFIER_PARAMS = ("eid", "one", "X-WT-UA", "X-WT-IP", "uc701", "ui5")


def read_rows(store: str) -> list[dict[str, Any]]:
    location = parse_store(store)
    if location.kind == "sqlite":
        conn = sqlite3.connect(location.target)
        try:
            cur = conn.execute(SELECT)
            rows = [dict(zip(COLUMNS, r, strict=True)) for r in cur]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()
        for r in rows:
            r["anonymous"] = bool(r["anonymous"])
        return rows
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(store, row_factory=dict_row) as pg:
        exists = pg.execute("SELECT to_regclass('pixel_hits') AS t").fetchone()
        if not exists or exists["t"] is None:
            return []
        return list(pg.execute(SELECT))


def assert_private(
    rows: list[dict[str, Any]], suppressed: tuple[str, ...], secrets: list[str]
) -> None:
    """No anonymous row holds an everID, session id, IP, user agent or suppressed parameter,
    in any column; and none of ``secrets`` (identifiers the browser had) appears anywhere in it."""
    anonymous = [r for r in rows if r["anonymous"]]
    assert anonymous, "the check needs anonymous rows to look at"
    banned = re.compile(
        r"(^|&)(" + "|".join(re.escape(n) for n in (*IDENTIFIER_PARAMS, *suppressed)) + r")="
    )
    for r in anonymous:
        assert r["ever_id"] is None and r["session_id"] is None, r
        assert r["ip"] is None and r["user_agent"] is None, r
        assert not banned.search(r["query"]), r["query"]
        names = {name for name, _ in json.loads(r["params"])}
        assert not names & {*IDENTIFIER_PARAMS, *suppressed}, names
        assert r["customer_id"] is None or "cd" not in suppressed
        blob = json.dumps(r, default=str)
        for secret in secrets:
            assert secret not in blob, (secret, r)


def cp1(row: dict[str, Any]) -> str:
    """The ``cp1`` value of a stored row: the tests number their hits with it."""
    return str(dict(json.loads(row["params"]))["cp1"])


class Memory:
    """A backend that fails while ``down`` is set, and remembers what it wrote."""

    def __init__(self, *, down: bool = False) -> None:
        self.name = "memory"
        self.down = down
        self.written: list[str] = []

    async def write_batch(self, hits: Sequence[Hit]) -> None:
        if self.down:
            raise ConnectionError("down")
        self.written += [h.hit_id for h in hits]

    async def reset(self) -> None:
        return None

    async def close(self) -> None:
        return None
