"""Turning hit rows into the report's numbers. Pure."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass
class Day:
    identified_views: int = 0
    anonymous_views: int = 0
    visitors: set[str] = field(default_factory=set)

    @property
    def identified_visitors(self) -> int:
        return len(self.visitors)


@dataclass
class Summary:
    """Page views per day split into identified and anonymous, identified visitors per day
    (anonymous visitors carry no identifier, so they cannot be counted), and top pages."""

    days: dict[date, Day]
    pages: Counter[str]
    total: int

    @property
    def anonymous_share(self) -> float:
        anonymous = sum(d.anonymous_views for d in self.days.values())
        return anonymous / self.total if self.total else 0.0

    def top_pages(self, n: int = 10) -> list[tuple[str, int]]:
        return self.pages.most_common(n)


def summarize(
    rows: Iterable[tuple[datetime, bool, str | None, str]],
    *,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Aggregate ``(received_at, anonymous, ever_id, page_name)`` rows in one pass."""
    days: dict[date, Day] = defaultdict(Day)
    pages: Counter[str] = Counter()
    total = 0
    for received, anonymous, ever_id, page in rows:
        day = days[received.date()]
        if anonymous:
            day.anonymous_views += 1
        else:
            day.identified_views += 1
            if ever_id:
                day.visitors.add(ever_id)
        pages[page] += 1
        total += 1
        if progress is not None and total % 1_000 == 0:
            progress(total)
    if progress is not None:
        progress(total)
    return Summary(days=dict(sorted(days.items())), pages=pages, total=total)


def as_rows(summary: Summary) -> list[dict[str, Any]]:
    """One dict a day, for the text and HTML reports."""
    return [
        {
            "day": day.isoformat(),
            "identified_views": d.identified_views,
            "anonymous_views": d.anonymous_views,
            "identified_visitors": d.identified_visitors,
        }
        for day, d in summary.days.items()
    ]
