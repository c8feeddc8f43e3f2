"""Consent receipts for the command line and the HTML report: the export, and choices per day.

Pure: rows in (as :meth:`StoreReader.receipts` yields them), text or counts out.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, TextIO

from ..receipts import ACTIONS
from ..sinks.schema import RECEIPT_COLUMNS
from .period import Period

FORMATS = ("csv", "json")


def parse_since(text: str) -> datetime:
    """``YYYY-MM-DD`` as the first moment of that day in UTC."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date: use YYYY-MM-DD") from None
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _plain(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """A receipt row with its time as ISO 8601 UTC text (what CSV and JSON can hold)."""
    out = {column: receipt[column] for column in RECEIPT_COLUMNS}
    received = receipt["received_at"]
    if isinstance(received, datetime):
        out["received_at"] = received.astimezone(UTC).isoformat()
    out["gpc"] = bool(out["gpc"])
    return out


def export(receipts: Iterable[Mapping[str, Any]], fmt: str, out: TextIO) -> int:
    """Write ``receipts`` to ``out`` as CSV (a header row, ``gpc`` as true/false) or as one
    JSON array; how many were written. Rows are streamed, never held whole."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=RECEIPT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for receipt in receipts:
            row = _plain(receipt)
            row["gpc"] = "true" if row["gpc"] else "false"
            writer.writerow(row)
            count += 1
        return count
    if fmt != "json":
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out.write("[")
    for receipt in receipts:
        out.write(("," if count else "") + "\n" + json.dumps(_plain(receipt), sort_keys=True))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def choices_per_day(
    receipts: Iterable[Mapping[str, Any]], period: Period
) -> list[tuple[date, dict[str, int]]]:
    """For every day of ``period`` (in its time zone), how many receipts of each action."""
    days: dict[date, dict[str, int]] = {day: dict.fromkeys(ACTIONS, 0) for day in period.days()}
    for receipt in receipts:
        received = receipt["received_at"]
        if not isinstance(received, datetime):
            continue
        counts = days.get(period.day_of(received))
        action = str(receipt["action"])
        if counts is not None and action in counts:
            counts[action] += 1
    return list(days.items())
