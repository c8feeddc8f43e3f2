"""Turning hit rows into the report's numbers. Pure.

A row is a page view, or an event when its request carries ``ct`` (what the browser script's
``track()`` sends); the two are counted apart everywhere. To count something new (anonymous
visits by temporary session id, say), add a field to :class:`ReportRow`, a counter to :class:`Day`
and a line to :meth:`Day.add`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from .period import Period


class ReportRow(NamedTuple):
    """What the report needs of one stored hit."""

    received_at: datetime  # aware
    anonymous: bool
    ever_id: str | None
    page_name: str
    event: str | None  # the ``ct`` value; None for a page view
    # The identified session id, or an anonymous row's temporary one (anonymous_session).
    session_id: str | None = None


@dataclass
class Day:
    """The counts of one day."""

    identified_views: int = 0
    anonymous_views: int = 0
    identified_events: int = 0
    anonymous_events: int = 0
    visitors: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    anonymous_sessions: set[str] = field(default_factory=set)

    def add(self, row: ReportRow) -> None:
        if row.event is None:
            if row.anonymous:
                self.anonymous_views += 1
            else:
                self.identified_views += 1
        elif row.anonymous:
            self.anonymous_events += 1
        else:
            self.identified_events += 1
        if not row.anonymous and row.ever_id:
            self.visitors.add(row.ever_id)
        if row.session_id:
            (self.anonymous_sessions if row.anonymous else self.sessions).add(row.session_id)

    @property
    def views(self) -> int:
        return self.identified_views + self.anonymous_views

    @property
    def events(self) -> int:
        return self.identified_events + self.anonymous_events

    @property
    def identified_visitors(self) -> int:
        """Distinct everIDs; anonymous visitors carry no identifier and cannot be counted."""
        return len(self.visitors)

    @property
    def identified_visits(self) -> int:
        """Distinct session ids of identified visitors."""
        return len(self.sessions)

    @property
    def anonymous_visits(self) -> int:
        """Distinct temporary session ids (anonymous_session): visits, never visitors."""
        return len(self.anonymous_sessions)


@dataclass
class Summary:
    """Page views and events per day, each split into identified and anonymous; identified
    visitors per day; the most viewed pages and the most frequent events."""

    period: Period
    days: dict[date, Day]
    pages: Counter[str]
    events: Counter[str]

    @property
    def total(self) -> Day:
        """All days added up (``visitors`` are distinct per day, so they are not added)."""
        total = Day()
        for day in self.days.values():
            total.identified_views += day.identified_views
            total.anonymous_views += day.anonymous_views
            total.identified_events += day.identified_events
            total.anonymous_events += day.anonymous_events
        return total

    @property
    def anonymous_share(self) -> float:
        """The share of page views that were anonymous."""
        total = self.total
        return total.anonymous_views / total.views if total.views else 0.0

    @property
    def anonymous_event_share(self) -> float:
        total = self.total
        return total.anonymous_events / total.events if total.events else 0.0

    def top_pages(self, n: int = 10) -> list[tuple[str, int]]:
        return self.pages.most_common(n)

    def top_events(self, n: int = 10) -> list[tuple[str, int]]:
        return self.events.most_common(n)


def summarize(
    rows: Iterable[ReportRow],
    period: Period,
    *,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Aggregate rows in one pass; every day of ``period`` is in the result, hits or not."""
    days = {day: Day() for day in period.days()}
    pages: Counter[str] = Counter()
    events: Counter[str] = Counter()
    seen = 0
    for row in rows:
        day = days.get(period.day_of(row.received_at))
        seen += 1
        if progress is not None and seen % 1_000 == 0:
            progress(seen)
        if day is None:
            continue  # received after the period (a clock ahead), or before it
        day.add(row)
        if row.event is None:
            pages[row.page_name] += 1
        else:
            events[row.event] += 1
    if progress is not None:
        progress(seen)
    return Summary(period=period, days=days, pages=pages, events=events)
