"""The report as an HTML page with a server-rendered SVG chart: no script, no CDN.

The chart has a bar a day for every day of the period (days without hits show as an empty slot,
so a single day is one bar among many, not a block), a y axis with round numbers, the date under
the bars and the day's page views above each bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from ..resources import environment
from .consents import choices_per_day
from .period import Period
from .store import open_store
from .summary import Summary, summarize

WIDTH = 720
HEIGHT = 280
_LEFT = 48  # y-axis labels
_RIGHT = 28  # room for the last date label, centred under the last bar
_TOP = 22  # the numbers above the bars
_BOTTOM = 44  # dates and the axis title
_MAX_BAR = 44  # a week's bars stay bars, not slabs
_MIN_LABEL_GAP = 46  # between two date labels, in chart units
# On a phone the chart is drawn at about half size with twice the font size (see the template's
# media query), so only every few labels stay: those a label this far from the next.
_MIN_NARROW_LABEL_GAP = 110


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    identified_y: float
    identified_height: float
    anonymous_y: float
    anonymous_height: float
    value: int
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class DayLabel:
    x: float
    label: str
    minor: bool  # hidden on narrow screens


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[DayLabel]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = _LEFT
    right: int = WIDTH - _RIGHT
    baseline: int = HEIGHT - _BOTTOM


def nice_step(peak: int, most: int = 5) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … reaching ``peak`` in at most ``most`` steps."""
    if peak <= most:
        return 1
    magnitude: int = 10 ** int(math.log10(peak / most))
    for factor in (1, 2, 5, 10):
        if peak / (factor * magnitude) <= most:
            return factor * magnitude
    return 10 * magnitude


def chart(summary: Summary) -> Chart:
    """Stacked bars of page views, one a day: identified below, anonymous on top."""
    days = list(summary.days.items())
    step = nice_step(max((d.views for _, d in days), default=0))
    peak = max(step, math.ceil(max((d.views for _, d in days), default=0) / step) * step)
    plot_height = HEIGHT - _TOP - _BOTTOM
    baseline = HEIGHT - _BOTTOM
    slot = (WIDTH - _LEFT - _RIGHT) / max(len(days), 1)
    width = min(slot * 0.7, _MAX_BAR)
    every = max(1, math.ceil(_MIN_LABEL_GAP / slot))
    every_narrow = every * max(1, math.ceil(_MIN_NARROW_LABEL_GAP / (slot * every)))
    bars, labels = [], []
    for i, (day, counts) in enumerate(days):
        x = _LEFT + i * slot + (slot - width) / 2
        ident_h = plot_height * counts.identified_views / peak
        anon_h = plot_height * counts.anonymous_views / peak
        bars.append(
            Bar(
                x=x,
                width=width,
                identified_y=baseline - ident_h,
                identified_height=ident_h,
                anonymous_y=baseline - ident_h - anon_h,
                anonymous_height=anon_h,
                value=counts.views,
                title=(
                    f"{day:%a %d %b}: {counts.views} page views "
                    f"({counts.identified_views} identified, {counts.anonymous_views} anonymous)"
                ),
            )
        )
        # Label the last day always, and every few days back from it, so today is never lost.
        back = len(days) - 1 - i
        if back % every == 0:
            labels.append(DayLabel(x + width / 2, f"{day:%d %b}", minor=back % every_narrow != 0))
    ticks = [
        Tick(baseline - plot_height * value / peak, str(value))
        for value in range(0, peak + 1, step)
    ]
    return Chart(bars=bars, ticks=ticks, labels=labels)


def render(
    summary: Summary, *, top: int = 10, choices: list[tuple[date, dict[str, int]]] | None = None
) -> str:
    """The report page; ``choices`` (consent receipts per day and action, see
    :func:`~pixel_middleware.report.consents.choices_per_day`) adds the "choices per day" table."""
    return (
        environment()
        .get_template("pixel/report.html")
        .render(
            summary=summary, total=summary.total, chart=chart(summary), top=top, choices=choices
        )
    )


def report_page(store: str, days: int, time_zone: str = "UTC") -> str:
    """Read ``store`` and render the last ``days`` days (a store not created yet is empty)."""
    period = Period.last_days(days, time_zone)
    reader = open_store(store)
    try:
        summary = summarize(reader.rows(period.since), period)
        choices = choices_per_day(reader.receipts(period.since), period)
        return render(summary, choices=choices)
    finally:
        reader.close()
