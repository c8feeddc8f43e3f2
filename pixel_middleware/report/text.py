"""The report as text for a terminal, and the progress bar shown while a large table is read.

Every string that came from a store passes through :func:`~.terminal.safe`.
"""

from __future__ import annotations

import sys
from typing import TextIO

from .summary import Day, Summary
from .terminal import safe

PROGRESS_ABOVE = 20_000  # rows; smaller tables are read too fast for a bar to help


class ProgressBar:
    """A one-line bar on ``stream`` (stderr), redrawn as rows arrive."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.width = width

    def __call__(self, done: int) -> None:
        share = min(done / self.total, 1.0)
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rreading hits [{bar}] {share:4.0%} ({done}/{self.total})")
        if share >= 1.0:
            self.stream.write("\n")
        self.stream.flush()


# Two header lines: a title over each pair of columns, then the columns' own names.
_GROUPS = (("page views", ("identified", "anonymous")), ("events", ("identified", "anonymous")))
_WIDTH = 11  # one number column
_GAP = "   "  # between the groups


def _columns(values: tuple[object, ...]) -> str:
    pairs = [values[i : i + 2] for i in range(0, len(values), 2)]
    return _GAP.join("".join(f"{v:>{_WIDTH}}" for v in pair) for pair in pairs)


def _day_line(label: str, day: Day, *, visitors: bool = True) -> str:
    numbers = (
        day.identified_views,
        day.anonymous_views,
        day.identified_events,
        day.anonymous_events,
    )
    last = (
        f"{day.identified_visitors:>{_WIDTH}}{day.identified_visits:>{_WIDTH}}"
        f"{day.anonymous_visits:>{_WIDTH}}"
        if visitors
        else ""
    )
    return f"{label:<10}{_GAP}{_columns(numbers)}{_GAP}{last}".rstrip()


def _header() -> list[str]:
    titles = _GAP.join(f"{title:^{_WIDTH * 2}}" for title, _ in _GROUPS)
    names = _columns(tuple(name for _, pair in _GROUPS for name in pair))
    return [
        f"{'':<10}{_GAP}{titles}{_GAP}{'identified':>{_WIDTH * 2}}{'anonymous':>{_WIDTH}}",
        f"{'day':<10}{_GAP}{names}{_GAP}{'visitors':>{_WIDTH}}{'visits':>{_WIDTH}}"
        f"{'visits':>{_WIDTH}}",
    ]


def _table(title: str, headers: tuple[str, str], rows: list[tuple[str, int]]) -> list[str]:
    if not rows:
        return [f"{title}: none"]
    count_header, name_header = headers
    return [f"{title}:", f"  {count_header:>10}  {name_header}"] + [
        f"  {count:>10}  {safe(name)}" for name, count in rows
    ]


def render(summary: Summary, *, top: int = 10, store: str = "") -> str:
    """The report: a line per day, totals, shares, top pages and top events, with headers."""
    period = summary.period
    lines = [
        f"Pixel report, {period.first} to {period.last} "
        f"({len(summary.days)} days; days are {safe(period.time_zone)} days)",
    ]
    if store:
        lines.append(f"store: {safe(store)}")
    lines.append("")
    lines.extend(_header())
    for day, counts in summary.days.items():
        lines.append(_day_line(day.isoformat(), counts))
    lines.append(_day_line("total", summary.total, visitors=False))
    lines.append("")
    total = summary.total
    lines.append(
        f"page views: {total.views} ({summary.anonymous_share:.1%} anonymous); "
        f"events: {total.events} ({summary.anonymous_event_share:.1%} anonymous)"
    )
    lines.append(
        "Anonymous visitors carry no identifier, so they are not counted as visitors; their "
        "visits are counted by temporary session id when anonymous_session is on."
    )
    lines.append("")
    lines.extend(_table("top pages", ("page views", "page"), summary.top_pages(top)))
    lines.append("")
    lines.extend(_table("top events", ("events", "event"), summary.top_events(top)))
    return "\n".join(lines) + "\n"
