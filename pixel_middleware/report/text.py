"""The report as text, and the progress bar shown while a large table is read."""

from __future__ import annotations

import sys
from typing import TextIO

from .summary import Summary, as_rows

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


def render(summary: Summary, *, top: int = 10) -> str:
    header = ("day", "identified views", "anonymous views", "identified visitors")
    lines = [f"{header[0]:<10}  {header[1]:>16}  {header[2]:>15}  {header[3]:>19}"]
    for row in as_rows(summary):
        lines.append(
            f"{row['day']:<10}  {row['identified_views']:>16}  {row['anonymous_views']:>15}  "
            f"{row['identified_visitors']:>19}"
        )
    lines.append("")
    lines.append(f"page views: {summary.total}; anonymous share: {summary.anonymous_share:.1%}")
    lines.append("anonymous visitors carry no identifier, so they are not counted as visitors")
    lines.append("")
    lines.append("top pages:")
    for page, views in summary.top_pages(top):
        lines.append(f"  {views:>8}  {page}")
    return "\n".join(lines) + "\n"
