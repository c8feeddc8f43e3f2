"""The printed report: details per part, then every target of issue #9 with PASS or FAIL.

A verdict compares the median over rounds with the target. "clear" means every round fell on the
same side of the target; "mixed" means the rounds straddled it, so the verdict is within noise.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .stats import Spread


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    at_most: bool  # True: value ≤ limit passes; False: value ≥ limit passes
    limit: float
    find: Callable[[dict[str, Any]], dict[str, Any] | float | None]
    noise: Callable[[dict[str, Any]], str]


def _get(results: dict[str, Any], *keys: str) -> Any:
    node: Any = results
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _aa_us(kind: str) -> Callable[[dict[str, Any]], str]:
    def noise(results: dict[str, Any]) -> str:
        aa = _get(results, "inprocess", kind, "added_us", "bare A/A")
        ref = _get(results, "inprocess", kind, "added_us", "reference")
        cpu = _get(results, "inprocess", "by_cpu_time", kind, "ratio_to_reference", "pixel")
        if aa is None or ref is None:
            return ""
        text = (
            f"A/A {aa['median']:+.2f} µs ({aa['low']:+.2f}..{aa['high']:+.2f})"
            f" vs ref's {ref['median']:.2f} µs"
        )
        if cpu is not None and cpu["per_round"] is not None:
            text += f"; by CPU time {Spread(**cpu['per_round']).text(2)}"
        return text

    return noise


def _aa_e2e(kind: str) -> Callable[[dict[str, Any]], str]:
    def noise(results: dict[str, Any]) -> str:
        aa = _get(results, "e2e", kind, "ratio_to_bare", "bare A/A")
        cpu = _get(results, "e2e", kind, "cpu_ratio_to_bare", "pixel")
        if aa is None or cpu is None:
            return ""
        return f"A/A {Spread(**aa).text(2)}; by server CPU time {Spread(**cpu).text(2)}"

    return noise


def _hits_noise(results: dict[str, Any]) -> str:
    base = _get(results, "hits", "per_second", "no sink")
    if base is None:
        return ""
    spread = (base["high"] - base["low"]) / base["median"] * 100
    return f"no-sink rate range ±{spread / 2:.1f}%"


TARGETS = (
    Target(
        "HTML page, added cost: pixel ÷ reference",
        True,
        2.0,
        lambda r: _get(r, "inprocess", "html", "ratio_to_reference", "pixel", "per_round"),
        _aa_us("html"),
    ),
    Target(
        "JSON response, added cost: pixel ÷ reference",
        True,
        1.5,
        lambda r: _get(r, "inprocess", "json", "ratio_to_reference", "pixel", "per_round"),
        _aa_us("json"),
    ),
    Target(
        "uvicorn+wrk HTML, req/s with ÷ without",
        False,
        0.90,
        lambda r: _get(r, "e2e", "html", "ratio_to_bare", "pixel"),
        _aa_e2e("html"),
    ),
    Target(
        "uvicorn+wrk JSON, req/s with ÷ without",
        False,
        0.97,
        lambda r: _get(r, "e2e", "json", "ratio_to_bare", "pixel"),
        _aa_e2e("json"),
    ),
    Target(
        "hits via wt into SQLite ÷ no store",
        False,
        0.80,
        lambda r: _get(r, "hits", "ratio_to_no_sink", "SQLite"),
        _hits_noise,
    ),
    Target(
        "2 MB page in 64 KB chunks: extra peak ÷ page",
        True,
        2.0,
        lambda r: _get(r, "memory", "extra_per_page", "pixel"),
        lambda r: "deterministic (tracemalloc)",
    ),
)


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for target in TARGETS:
        found = target.find(results)
        row: dict[str, Any] = {
            "target": target.name,
            "limit": f"{'≤' if target.at_most else '≥'} {target.limit:.2f}",
        }
        if found is None:
            row.update(value=None, verdict="not run", confidence="", noise="")
            rows.append(row)
            continue
        spread = Spread(**found) if isinstance(found, dict) else Spread.of([found])

        def ok(value: float, target: Target = target) -> bool:
            return value <= target.limit if target.at_most else value >= target.limit

        same_side = ok(spread.low) == ok(spread.high)
        row.update(
            value=spread.as_dict(),
            verdict="PASS" if ok(spread.median) else "FAIL",
            confidence="clear" if same_side else "mixed",
            noise=target.noise(results),
        )
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'target':<46} {'median (min..max)':<22} {'limit':<7} {'verdict':<13} noise",
        "-" * 120,
    ]
    for row in rows:
        if row["value"] is None:
            shown = "—"
        else:
            spread = Spread(**row["value"])
            shown = spread.text() if spread.rounds > 1 else f"{spread.median:.2f}"
        verdict = f"{row['verdict']} {row['confidence']}".strip()
        lines.append(
            f"{row['target']:<46} {shown:<22} {row['limit']:<7} {verdict:<13} {row['noise']}"
        )
    return lines


def _shape(shape: dict[str, Any]) -> str:
    """A response at a glance: body bytes, body messages, and Set-Cookie lines."""
    messages = shape["body_messages"]
    text = f"[{shape['body_bytes']} B in {messages} msg{'s' if messages != 1 else ''}"
    cookies = shape["set_cookie"]
    return text + (f", {cookies} Set-Cookie]" if cookies else "]")


def details(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    inproc = results.get("inprocess")
    if inproc:
        lines.append(
            f"in-process, µs per request: median of {inproc['rounds']} rounds of "
            f"{inproc['requests_per_block']} requests (min..max); added = minus bare, same round"
        )
        for kind, label in (
            ("html", f"HTML page {inproc['page_bytes']} B"),
            ("json", f"JSON {inproc['json_bytes']} B"),
        ):
            lines.append(f"  {label}")
            for setup, per in inproc[kind]["us_per_request"].items():
                text = f"    {setup:<20} {Spread(**per).text(1):<22}"
                shape = inproc.get("responses", {}).get(f"{kind}: {setup}")
                if shape is not None:
                    text += f" {_shape(shape):<32}"
                added = inproc[kind]["added_us"].get(setup)
                if added is not None:
                    text += f" added {Spread(**added).text(2):<24}"
                ratio = inproc[kind]["ratio_to_reference"].get(setup)
                if ratio is not None and ratio["per_round"] is not None:
                    text += f" ÷ reference's {Spread(**ratio['per_round']).text(2)}"
                cpu = inproc["by_cpu_time"][kind]["ratio_to_reference"].get(setup)
                if cpu is not None and cpu["per_round"] is not None:
                    text += f", by CPU time {Spread(**cpu['per_round']).text(2)}"
                if ratio is not None and ratio["rounds_without_reference_cost"]:
                    dropped = ratio["rounds_without_reference_cost"]
                    text += f" ({dropped} round(s) where reference added <= 0 left out)"
                lines.append(text.rstrip())
    e2e = results.get("e2e")
    if e2e and "html" in e2e:
        lines.append(
            f"\nuvicorn + wrk, requests/s: median of {e2e['rounds']} rounds, runs of "
            f"{e2e['seconds_per_run']} s, {e2e['connections']} connections; {e2e['pinning']}"
        )
        lines.append(f"  {e2e['server']}; {e2e['wrk']}")
        for kind in ("html", "json"):
            lines.append(f"  {kind.upper()}")
            for setup, per in e2e[kind]["rps"].items():
                cpu = Spread(**e2e[kind]["cpu_us_per_request"][setup])
                text = f"    {setup:<20} {Spread(**per).text(0) + '/s':<22}"
                ratio = e2e[kind]["ratio_to_bare"].get(setup)
                text += f" ÷ bare {Spread(**ratio).text(3):<21}" if ratio else " " * 29
                text += f" server CPU {cpu.text(1)} µs/req"
                added = e2e[kind].get("cpu_added_us", {}).get(setup)
                if added is not None:
                    text += f", added {Spread(**added).text(1)}"
                cpu_ratio = e2e[kind]["cpu_ratio_to_bare"].get(setup)
                if cpu_ratio is not None:
                    text += f", bare's ÷ this {Spread(**cpu_ratio).text(3)}"
                lines.append(text.rstrip())
            scatter = " ".join(
                f"{r['bare A/A']['rps'] / r['bare']['rps']:.2f}" for r in e2e[kind]["raw"]
            )
            lines.append(f"    A/A scatter, bare A/A ÷ bare req/s in each round: {scatter}")
            share = Spread(**e2e[kind]["server_cpu_share"])
            lines.append(f"    server's CPU share of wall time during runs {share.text(2)}")
        before = ", ".join(f"{x:.2f}" for x in e2e["load_average_before"])
        after = ", ".join(f"{x:.2f}" for x in e2e["load_average_after"])
        lines.append(f"  load average before {before}; after {after}")
    elif e2e:
        lines.append(f"\nuvicorn + wrk: {e2e.get('skipped')}")
    hits = results.get("hits")
    if hits:
        lines.append(
            f"\nhits through /_pixel/<trackId>/wt until stored, per second: median of "
            f"{hits['rounds']} rounds of {hits['hits_per_round']} hits, half opted out"
        )
        for name, per in hits["per_second"].items():
            text = f"    {name:<20} {Spread(**per).text(0):<22}"
            ratio = hits["ratio_to_no_sink"].get(name)
            if ratio is not None:
                text += f" ÷ no sink {Spread(**ratio).text(2)}"
            lines.append(text.rstrip())
        if hits.get("postgres_skipped"):
            lines.append(f"    PostgreSQL skipped: {hits['postgres_skipped']}")
    memory = results.get("memory")
    if memory:
        lines.append(
            f"\npeak memory (tracemalloc) serving a {memory['page_bytes'] / 2**20:.0f} MiB page "
            f"in {memory['chunk_bytes'] // 1024} KiB chunks, Content-Length declared"
        )
        bare = statistics.median(memory["peak_bytes"]["bare"])
        lines.append(f"    {'bare':<20} peak {bare / 2**20:6.2f} MiB")
        for name, extra in memory["extra_bytes"].items():
            lines.append(
                f"    {name:<20} extra {extra / 2**20:6.2f} MiB"
                f" = {memory['extra_per_page'][name]:.2f} x the page"
            )
    return lines
