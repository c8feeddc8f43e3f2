"""``python -m pixel_middleware report|prune|consents|audit``: read the app's store from the shell.

The store is the one the app writes: ``--store``, else the settings named by ``--settings
module:attribute``, else ``PIXEL_STORE``, else the default ``sqlite:///pixel_hits.sqlite3``
(relative to the working directory). A store that does not exist is an error that names the path
it looked at, never an empty report. Everything printed passes through
:func:`~pixel_middleware.report.terminal.safe`: page names come from visitors' browsers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

from .audit.cli import add_audit_command
from .audit.cli import run as run_audit
from .report.consents import FORMATS, export, parse_since
from .report.period import Period, cutoff, parse_age, zone
from .report.source import SourceError, StoreChoice, choose_store
from .report.store import StoreMissing, StoreReader, open_store
from .report.summary import summarize
from .report.terminal import safe
from .report.text import PROGRESS_ABOVE, ProgressBar, render
from .store_url import parse_store

STORE_HELP = (
    "the store to read: sqlite:///relative/path.db, sqlite:////absolute/path.db, a plain file "
    "path, or postgresql://…; default: the settings' store, else $PIXEL_STORE, else "
    "sqlite:///pixel_hits.sqlite3"
)
SETTINGS_HELP = (
    "module:attribute naming the app's settings (a PixelSettings, a PixelMiddleware, Django's "
    "PIXEL_MIDDLEWARE dict, or a function returning one), e.g. myshop.app:settings"
)
AGE_HELP = (
    "delete hits received more than AGE ago. AGE is a number of days (30, 0.5) or a number "
    "with a unit: 30d, 12h, 90m, 45s. The cutoff is now minus AGE, to the second"
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _age(text: str) -> timedelta:
    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _since(text: str) -> str:
    try:
        parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _time_zone(text: str) -> str:
    try:
        zone(text)
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an IANA time zone name") from None
    return text


def parser() -> argparse.ArgumentParser:
    # --store and --settings work before or after the command: both parsers know them, and
    # SUPPRESS keeps the command's parser from resetting what the main parser read.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", default=argparse.SUPPRESS, metavar="STORE", help=STORE_HELP)
    common.add_argument(
        "--settings", default=argparse.SUPPRESS, metavar="MODULE:ATTRIBUTE", help=SETTINGS_HELP
    )
    main = argparse.ArgumentParser(
        prog="python -m pixel_middleware",
        parents=[common],
        description=(
            "Read the hits store the middleware writes: a report, delete old hits, or audit "
            "it against the README's privacy promises."
        ),
    )
    commands = main.add_subparsers(
        dest="command", required=True, metavar="{report,prune,consents,audit}"
    )
    report = commands.add_parser(
        "report",
        parents=[common],
        help="page views and events per day, identified visitors, top pages and events",
        description="Page views and events per day, identified visitors, top pages and events.",
    )
    report.add_argument(
        "--days", type=_positive_int, default=30, help="how many days, today included (default 30)"
    )
    report.add_argument(
        "--top", type=_positive_int, default=10, help="how many top pages and events (default 10)"
    )
    report.add_argument(
        "--time-zone",
        type=_time_zone,
        default=None,
        help="IANA name whose days the report counts (default: report_time_zone, else UTC)",
    )
    prune = commands.add_parser(
        "prune",
        parents=[common],
        help="delete hits older than an age, and receipts past consent_receipt_days",
        description=(
            "Delete hits received more than AGE ago, and consent receipts older than "
            "consent_receipt_days (from the settings; default 1095 days, 3 years)."
        ),
    )
    prune.add_argument("--older-than", type=_age, required=True, metavar="AGE", help=AGE_HELP)
    consents = commands.add_parser(
        "consents",
        parents=[common],
        help="export consent receipts as CSV or JSON",
        description="Export the consent receipts received since DATE (UTC), oldest first.",
    )
    consents.add_argument(
        "--since", type=_since, required=True, metavar="DATE", help="YYYY-MM-DD, in UTC"
    )
    consents.add_argument(
        "--format", choices=FORMATS, default="csv", help="csv (default) or json (one array)"
    )
    add_audit_command(commands, parents=[common])
    return main


def _fail(message: str) -> int:
    print(f"error: {safe(message)}", file=sys.stderr)
    return 1


def _open(choice: StoreChoice) -> StoreReader:
    if choice.store is None:
        raise StoreMissing(f"the settings keep no store ({choice.source} says store=None)")
    try:
        parse_store(choice.store)
    except ValueError as exc:
        raise StoreMissing(f"{exc} (from {choice.source})") from None
    try:
        return open_store(choice.store, must_exist=True)
    except StoreMissing as exc:
        where = f"from {choice.source}; working directory {os.getcwd()}"
        raise StoreMissing(f"{exc} ({where})") from None
    except Exception as exc:
        location = parse_store(choice.store).describe()
        raise StoreMissing(f"cannot open store {location}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "audit":
        # The audit reads settings and spool folders as well as the store, and has exit
        # statuses of its own (2: cannot read), so it opens what it reads itself.
        return run_audit(args, os.environ)
    try:
        choice = choose_store(
            getattr(args, "store", None), getattr(args, "settings", None), os.environ
        )
        reader = _open(choice)
    except (SourceError, StoreMissing) as exc:
        return _fail(str(exc))
    try:
        if args.command == "prune":
            before = cutoff(args.older_than)
            deleted = reader.prune(before)
            print(f"deleted {deleted} hit(s) received before {before:%Y-%m-%d %H:%M:%S} UTC")
            # Receipts follow their own retention: proof of a choice outlives the hits.
            kept_from = cutoff(timedelta(days=choice.receipt_days))
            dropped = reader.prune_receipts(kept_from)
            print(
                f"deleted {dropped} consent receipt(s) received before "
                f"{kept_from:%Y-%m-%d %H:%M:%S} UTC (consent_receipt_days={choice.receipt_days})"
            )
            return 0
        if args.command == "consents":
            # The export goes to stdout (to be redirected to a file); the store read, to stderr.
            count = export(reader.receipts(parse_since(args.since)), args.format, sys.stdout)
            print(f"{count} receipt(s) from {safe(reader.location.describe())}", file=sys.stderr)
            return 0
        period = Period.last_days(args.days, args.time_zone or choice.time_zone)
        total = reader.count(period.since)
        progress = ProgressBar(total) if total > PROGRESS_ABOVE else None
        summary = summarize(reader.rows(period.since), period, progress=progress)
        sys.stdout.write(render(summary, top=args.top, store=reader.location.describe()))
        return 0
    finally:
        reader.close()


if __name__ == "__main__":
    sys.exit(main())
