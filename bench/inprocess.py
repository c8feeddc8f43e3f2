"""Added cost per request, in-process: bare app, + reference injector, + PixelMiddleware.

Requests are driven straight through ASGI in one event loop (no network), so the differences are
the middlewares' own cost. Every setup is timed in blocks of ``requests`` sequential requests;
one round times every setup once, in an order that reverses from one round to the next (A B C …
then … C B A), so a slow drift of the machine weighs on all setups alike. A second, identical bare
app ("bare A/A") is timed like the others: its "added cost" is the noise floor.

Per round: added cost = time per request - bare's time per request, and the ratio PixelMiddleware
added ÷ reference added. The summaries are the median over rounds, with quartiles and extremes.
Time is ``perf_counter_ns`` (wall clock); the thread's CPU time is summarised the same way beside
it, as a cross-check that does not count time lost to other processes on the machine.

The garbage collector stays on (collections are part of what allocating costs), but everything
made before the rounds is frozen out of its way, and each block starts after a collection.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from typing import Any

from pixel_middleware import PixelMiddleware

from . import apps
from .asgi import call, fetch
from .reference import ReferenceInjector
from .stats import Spread

IDENTIFIED = apps.IDENTIFIED_COOKIE.encode()
ANONYMOUS = apps.ANONYMOUS_COOKIE.encode()


@dataclass(frozen=True, slots=True)
class Case:
    kind: str  # "html" or "json"
    setup: str  # "bare", "bare A/A", "reference", "pixel", "pixel, new visitor", …
    app: apps.App
    path: str
    cookie: bytes

    @property
    def key(self) -> str:
        return f"{self.kind}: {self.setup}"


def cases() -> list[Case]:
    bare, bare2 = apps.site(), apps.site()
    reference = ReferenceInjector(apps.site())
    pixel = PixelMiddleware(apps.site(), settings=apps.settings())
    out: list[Case] = []
    for kind, path in (("html", "/"), ("json", "/api")):
        out += [
            Case(kind, "bare", bare, path, IDENTIFIED),
            Case(kind, "bare A/A", bare2, path, IDENTIFIED),
            Case(kind, "reference", reference, path, IDENTIFIED),
            Case(kind, "pixel", pixel, path, IDENTIFIED),
        ]
    # Not targets, shown for comparison: a first visit (identifiers made) and an opted-out one.
    out += [
        Case("html", "pixel, new visitor", pixel, "/", b""),
        Case("html", "pixel, anonymous", pixel, "/", ANONYMOUS),
    ]
    return out


async def check(all_cases: list[Case]) -> dict[str, dict[str, Any]]:
    """Each setup must answer 200, and the injectors must have injected (or not, for JSON).

    Returns what each response looked like: a server pays per body message (an h11 event and
    a socket write each), which the timing here, whose ``send`` does nothing, does not show.
    """
    shapes: dict[str, dict[str, Any]] = {}
    for case in all_cases:
        response = await fetch(case.app, case.path, case.cookie)
        body = response.body
        if response.status != 200:
            raise RuntimeError(f"{case.key} answered {response.status}")
        declared = response.header(b"content-length")
        if declared is not None and int(declared) != len(body):
            raise RuntimeError(f"{case.key}: Content-Length {declared!r} for {len(body)} bytes")
        injected = b"pixel.js" in body
        if injected != (case.kind == "html" and not case.setup.startswith("bare")):
            raise RuntimeError(f"{case.key}: snippet {'present' if injected else 'missing'}")
        shapes[case.key] = {
            "body_bytes": len(body),
            "body_messages": len(response.chunks),
            "headers": len(response.headers),
            "set_cookie": sum(1 for k, _ in response.headers if k.lower() == b"set-cookie"),
        }
    return shapes


async def time_block(case: Case, requests: int) -> tuple[float, float]:
    """Nanoseconds per request over ``requests`` sequential requests: wall clock, and CPU time."""
    gc.collect()
    app, path, cookie = case.app, case.path, case.cookie
    cpu = time.thread_time_ns()
    start = time.perf_counter_ns()
    for _ in range(requests):
        if await call(app, path, b"", cookie) != 200:
            raise RuntimeError(f"{case.key} failed")
    wall = time.perf_counter_ns() - start
    cpu = time.thread_time_ns() - cpu
    return wall / requests, cpu / requests


Timings = list[dict[str, float]]  # per round: ns per request of each case


async def _run(
    requests: int, rounds: int, warmup: int
) -> tuple[list[Case], dict[str, Any], Timings, Timings]:
    all_cases = cases()
    shapes = await check(all_cases)
    for case in all_cases:
        await time_block(case, warmup)
    gc.collect()
    gc.freeze()
    wall: Timings = []
    cpu: Timings = []
    try:
        for number in range(rounds):
            order = all_cases if number % 2 == 0 else all_cases[::-1]
            blocks = {case.key: await time_block(case, requests) for case in order}
            wall.append({key: block[0] for key, block in blocks.items()})
            cpu.append({key: block[1] for key, block in blocks.items()})
    finally:
        gc.unfreeze()
    return all_cases, shapes, wall, cpu


def summarise(all_cases: list[Case], timings: Timings) -> dict[str, Any]:
    """Per kind of response: µs per request and added µs per setup, and the ratios to reference."""
    out: dict[str, Any] = {}
    for kind in ("html", "json"):
        setups = [c.setup for c in all_cases if c.kind == kind]
        per_request = {
            s: Spread.of([t[f"{kind}: {s}"] / 1000 for t in timings]).as_dict() for s in setups
        }
        added: dict[str, list[float]] = {
            s: [(t[f"{kind}: {s}"] - t[f"{kind}: bare"]) / 1000 for t in timings]
            for s in setups
            if s != "bare"
        }
        ratios: dict[str, Any] = {}
        for s in setups:
            if not s.startswith("pixel"):
                continue
            pairs = list(zip(added[s], added["reference"], strict=True))
            usable = [p / r for p, r in pairs if r > 0]
            ratios[s] = {
                "per_round": Spread.of(usable).as_dict() if usable else None,
                "rounds_without_reference_cost": len(pairs) - len(usable),
                "of_medians": Spread.of(added[s]).median / Spread.of(added["reference"]).median,
            }
        out[kind] = {
            "us_per_request": per_request,
            "added_us": {s: Spread.of(v).as_dict() for s, v in added.items()},
            "added_us_rounds": added,
            "ratio_to_reference": ratios,
        }
    return out


def run(requests: int, rounds: int, warmup: int = 300) -> dict[str, Any]:
    all_cases, shapes, wall, cpu = asyncio.run(_run(requests, rounds, warmup))
    return {
        "requests_per_block": requests,
        "rounds": rounds,
        "page_bytes": apps.PAGE_BYTES,
        "json_bytes": apps.JSON_BYTES,
        "responses": shapes,
        **summarise(all_cases, wall),
        # The same from the thread's CPU time: blind to time spent waiting for the core while
        # other work ran, so steadier on a busy machine. A cross-check; the targets use the above.
        "by_cpu_time": summarise(all_cases, cpu),
        "raw_ns_per_request": wall,
        "raw_cpu_ns_per_request": cpu,
    }
