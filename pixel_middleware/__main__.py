"""``python -m pixel_middleware report|prune``: read the configured store from the shell.

The store comes from ``--store``, else ``PIXEL_STORE``, else the settings' default.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .report.store import days_ago, open_store
from .report.summary import summarize
from .report.text import PROGRESS_ABOVE, ProgressBar, render
from .settings import PixelSettings


def _default_store() -> str:
    default = PixelSettings.__dataclass_fields__["store"].default
    return os.environ.get("PIXEL_STORE") or str(default)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixel_middleware")
    parser.add_argument("--store", default=None, help="sqlite:<path> or postgresql://… URL")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="page views and visitors per day, top pages")
    report.add_argument("--days", type=int, default=30, help="how many days back (default 30)")
    report.add_argument("--top", type=int, default=10, help="how many top pages (default 10)")
    prune = commands.add_parser("prune", help="delete hits older than a number of days")
    prune.add_argument("--older-than", type=int, required=True, metavar="DAYS")
    args = parser.parse_args(argv)

    store = args.store or _default_store()
    for name in ("days", "older_than", "top"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "older_than" else 1):
            parser.error(f"--{name.replace('_', '-')} must be a positive number")
    try:
        reader = open_store(store)
    except Exception as exc:
        print(f"cannot open store {store!r}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "prune":
            deleted = reader.prune(days_ago(args.older_than))
            print(f"deleted {deleted} hit(s) received before {days_ago(args.older_than):%Y-%m-%d}")
            return 0
        since = days_ago(args.days - 1)
        total = reader.count(since)
        progress = ProgressBar(total) if total > PROGRESS_ABOVE else None
        summary = summarize(reader.rows(since), progress=progress)
        sys.stdout.write(render(summary, top=args.top))
        return 0
    finally:
        reader.close()


if __name__ == "__main__":
    sys.exit(main())
