"""``python -m pixel_middleware audit``: the command line around :func:`run_audit`.

Exit status: 0 when every check passed (warnings and skipped checks included), 1 when a check
found a violation, 2 when the audit cannot be made (the store, the settings, a spool folder or
the output file cannot be read or written; argparse's own usage errors are 2 as well), so cron
and CI can tell "violations" from "could not look".
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..report.source import SourceError
from ..report.terminal import safe
from .config import resolve
from .model import EXIT_UNREADABLE
from .render import FORMATS, render, verdict
from .run import DEFAULT_EXAMPLES, run_audit
from .sources import (
    HitsSource,
    Unreadable,
    existing,
    open_source,
    read_errors,
    spool_folders,
    spool_lines,
)

DESCRIPTION = (
    "Check every privacy promise of the README against the store, the spool and dead-letter "
    "files, the relay's rejected folder, the consent receipts and the settings. Prints row ids "
    "and parameter names, never the values found. Exit status: 0 passed, 1 violations, 2 the "
    "audit could not be made."
)


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not more than 0")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def add_audit_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``audit`` to the ``python -m pixel_middleware`` subcommands."""
    audit = commands.add_parser(
        "audit",
        parents=parents,
        help="check every privacy promise against the store, spool, receipts and settings",
        description=DESCRIPTION,
    )
    audit.add_argument(
        "--format", choices=FORMATS, default="text", help="output format (default text)"
    )
    audit.add_argument(
        "--output", metavar="FILE", default=None, help="write the report to FILE, not stdout"
    )
    audit.add_argument(
        "--retention-days",
        type=_positive_number,
        default=None,
        metavar="N",
        help="rows older than N days are violations (default: the settings' retention_days; "
        "without either, the check is skipped)",
    )
    audit.add_argument(
        "--examples",
        type=_count,
        default=DEFAULT_EXAMPLES,
        metavar="N",
        help=f"row ids shown per check (default {DEFAULT_EXAMPLES})",
    )


def _cannot(message: str) -> int:
    print(f"error: {safe(message)}", file=sys.stderr)
    return EXIT_UNREADABLE


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run the audit the parsed ``args`` ask for; the exit status."""
    try:
        settings = resolve(
            store=getattr(args, "store", None),
            settings_ref=getattr(args, "settings", None),
            environ=environ,
            retention_days=args.retention_days,
        )
    except SourceError as exc:
        return _cannot(str(exc))
    source: HitsSource | None = None
    try:
        if settings.store is not None:
            source = open_source(settings.store)
        folders = spool_folders(settings)
        report = run_audit(
            settings,
            source=source,
            spool=spool_lines(folders),
            folders=existing(folders),
            now=datetime.now(UTC),
            examples=args.examples,
        )
    except Unreadable as exc:
        where = f"store from {settings.store_source}; working directory {os.getcwd()}"
        return _cannot(f"{exc} ({where})")
    except read_errors() as exc:
        # A store that fails while it is read (a lost connection, a corrupt page): the audit
        # is incomplete, which must not look like a pass or a violation.
        return _cannot(f"reading failed: {type(exc).__name__}: {exc}")
    finally:
        if source is not None:
            source.close()
    text = render(report, args.format)
    if args.output is None:
        sys.stdout.write(text)
        return report.exit_status
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        return _cannot(f"cannot write {args.output}: {exc}")
    print(f"audit written to {safe(args.output)}: {verdict(report)}")
    return report.exit_status
