"""Benchmarks: ``python3 dev.py bench [--quick] [--no-e2e] [--no-postgres]``.

Everything is measured in one run, on this machine, as a ratio against a baseline measured in the
same run, so the numbers compare across machines; timings are never asserted in tests.

1. In-process (``bench.inprocess``): added µs per request of the reference injector
   (``bench.reference``) and of PixelMiddleware over a bare Starlette app, for a 20 KB HTML page
   and a JSON response, returning identified visitor; PixelMiddleware's ÷ the reference's.
2. End to end (``bench.e2e``): uvicorn subprocesses driven by Debian's wrk over loopback, cores
   pinned, setups alternated A B B A; requests/s with the middleware ÷ without, and A/A noise.
3. Hits (``bench.hits``): ``/_pixel/<trackId>/wt`` until stored: SQLite, PostgreSQL ÷ no sink.
4. Memory (``bench.memory``): extra peak serving a 2 MB page in 64 KB chunks, ÷ the page.

Results go to ``bench/results/latest.json``; the table at the end holds every target of issue #9.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import e2e, hits, inprocess, memory, report

RESULTS = Path(__file__).resolve().parent / "results"


def say(text: str) -> None:
    print(text, flush=True)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (a smoke run)")
    parser.add_argument("--no-e2e", action="store_true", help="skip uvicorn + wrk")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-hits", action="store_true", help="skip the hit endpoint")
    parser.add_argument("--requests", type=int, help="in-process: requests per block")
    parser.add_argument("--rounds", type=int, help="in-process: rounds")
    parser.add_argument("--hits", type=int, help="hits per store per round")
    parser.add_argument("--hit-rounds", type=int, help="rounds of the hit endpoint")
    parser.add_argument("--e2e-rounds", type=int, help="end to end: rounds (A B … B A each)")
    parser.add_argument("--e2e-seconds", type=int, help="end to end: seconds per wrk run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="JSON results")
    args = parser.parse_args(argv)
    defaults = {
        # quick, full
        "requests": (300, 2_000),
        "rounds": (5, 21),
        "hits": (1_000, 5_000),
        "hit_rounds": (3, 7),
        "e2e_rounds": (2, 7),
        "e2e_seconds": (1, 2),
    }
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def environment() -> dict[str, Any]:
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(),
    }


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that ``finally`` stops the servers it started


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _stop)
    results: dict[str, Any] = {"environment": environment(), "arguments": vars(args) | {}}
    results["arguments"]["out"] = str(args.out)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    say(f"bench: load average {load} on {os.cpu_count()} CPUs{' (quick)' if args.quick else ''}")
    began = time.monotonic()

    say(f"in-process: {args.rounds} rounds x {args.requests} requests per setup …")
    results["inprocess"] = inprocess.run(args.requests, args.rounds)

    say("memory: 2 MiB page in 64 KiB chunks …")
    results["memory"] = memory.run()

    if not args.no_hits:
        say(f"hits: {args.hit_rounds} rounds x {args.hits} hits per store …")
        results["hits"] = hits.run(args.hits, args.hit_rounds, postgres=not args.no_postgres)

    if not args.no_e2e:
        minutes = args.e2e_rounds * 2 * 8 * args.e2e_seconds / 60
        say(f"uvicorn + wrk: {args.e2e_rounds} rounds, about {minutes:.1f} min …")
        try:
            results["e2e"] = e2e.run(args.e2e_rounds, args.e2e_seconds, args.connections, log=say)
        except e2e.E2EUnavailable as error:
            results["e2e"] = {"skipped": str(error)}

    results["environment"]["load_average_at_end"] = os.getloadavg()
    results["environment"]["seconds"] = round(time.monotonic() - began, 1)
    results["targets"] = report.verdicts(results)

    say("")
    for line in report.details(results):
        say(line)
    say("")
    for line in report.table(results["targets"]):
        say(line)
    env = results["environment"]
    start_load = ", ".join(f"{x:.2f}" for x in env["load_average_at_start"])
    end_load = ", ".join(f"{x:.2f}" for x in env["load_average_at_end"])
    say(
        f"\nload average at start {start_load}, at end {end_load}; {env['seconds']} s in all."
        " Ratios are medians over rounds with their min..max; 'mixed' = rounds on both sides."
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    say(f"raw numbers in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
