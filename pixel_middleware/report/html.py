"""The report as an HTML page with a server-rendered SVG chart: no script, no CDN."""

from __future__ import annotations

from dataclasses import dataclass

from ..resources import environment
from .summary import Summary, as_rows

CHART_WIDTH = 720
CHART_HEIGHT = 240
_LABEL_SPACE = 40


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    identified_y: float
    identified_height: float
    anonymous_y: float
    anonymous_height: float
    label: str
    title: str


def bars(summary: Summary) -> list[Bar]:
    """Stacked bars, one a day: identified views below, anonymous views on top."""
    rows = as_rows(summary)
    if not rows:
        return []
    peak = max(r["identified_views"] + r["anonymous_views"] for r in rows) or 1
    plot = CHART_HEIGHT - _LABEL_SPACE
    slot = CHART_WIDTH / len(rows)
    out = []
    for i, r in enumerate(rows):
        ident_h = plot * r["identified_views"] / peak
        anon_h = plot * r["anonymous_views"] / peak
        out.append(
            Bar(
                x=i * slot + slot * 0.15,
                width=slot * 0.7,
                identified_y=plot - ident_h,
                identified_height=ident_h,
                anonymous_y=plot - ident_h - anon_h,
                anonymous_height=anon_h,
                label=r["day"][5:],
                title=(
                    f"{r['day']}: {r['identified_views']} identified, "
                    f"{r['anonymous_views']} anonymous"
                ),
            )
        )
    return out


def render(summary: Summary, *, days: int) -> str:
    return (
        environment()
        .get_template("pixel/report.html")
        .render(
            summary=summary,
            rows=as_rows(summary),
            bars=bars(summary),
            days=days,
            width=CHART_WIDTH,
            height=CHART_HEIGHT,
            label_y=CHART_HEIGHT - _LABEL_SPACE + 16,
        )
    )
