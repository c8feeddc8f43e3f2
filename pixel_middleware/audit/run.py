"""One audit: every check over the store's rows, the spool files, the receipts and the
settings, gathered into an :class:`AuditReport`. Reads only through the iterators it is given,
so tests can hand it lists."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from .config import AuditSettings
from .model import AuditReport, CheckResult, Tally
from .receipts import receipt_id, receipt_personal_data
from .rows import ROW_CHECKS, RowRules
from .settings_checks import check_settings
from .sources import HitsSource, SpoolLine

DEFAULT_EXAMPLES = 5


class _RowTallies:
    """The row checks over one source of rows, with their counts."""

    def __init__(self, source: str, rules: RowRules, limit: int) -> None:
        self.rules = rules
        self.skipped = {c.name: reason for c in ROW_CHECKS if (reason := c.skip(rules))}
        self.active = [c for c in ROW_CHECKS if c.name not in self.skipped]
        self.tallies = {c.name: Tally(c.name, source, c.description, limit) for c in ROW_CHECKS}
        self.rows = 0
        self.anonymous = 0

    def add(self, where: str, row: Mapping[str, Any]) -> None:
        self.rows += 1
        self.anonymous += bool(row.get("anonymous"))
        for check in self.active:
            finding = check.test(row, self.rules)
            if finding is not None:
                self.tallies[check.name].add(where, finding)

    def results(self, skip_all: str | None = None) -> list[CheckResult]:
        out = []
        for name, tally in self.tallies.items():
            reason = skip_all or self.skipped.get(name)
            if reason:
                out.append(
                    CheckResult(name, tally.source, "skip", 0, tally.description, (), reason)
                )
            else:
                out.append(tally.result())
        return out


def run_audit(
    settings: AuditSettings,
    *,
    source: HitsSource | None,
    spool: Iterable[SpoolLine],
    folders: Sequence[str],
    now: datetime,
    examples: int = DEFAULT_EXAMPLES,
) -> AuditReport:
    """Audit ``source`` (None: the settings keep no store), the ``spool`` lines found in
    ``folders``, and ``settings``, as of ``now``; keep ``examples`` row ids per check."""
    rules = RowRules.from_settings(settings, now)
    store = _RowTallies("store", rules, examples)
    if source is not None:
        for row in source.rows():
            store.add(str(row.get("hit_id")), row)
    files = _RowTallies("spool", rules, examples)
    unreadable = Tally(
        "unreadable_spool_lines",
        "spool",
        "spool, dead-letter or rejected lines that are no hit, so cannot be checked",
        examples,
    )
    spooled_receipts: list[tuple[str, dict[str, Any]]] = []
    for line in spool:
        if line.receipt is not None:
            # Checked with the stored receipts: the same promise, not yet in the table.
            spooled_receipts.append((line.where, line.receipt))
        elif line.row is None:
            unreadable.add(line.where, ())
        else:
            files.add(line.where, line.row)
    results = store.results(None if source is not None else "the settings keep no store")
    results += files.results()
    results.append(unreadable.result())
    receipts = None if source is None else source.receipts()
    results.append(_receipts(receipts, spooled_receipts, examples, source is None))
    results += check_settings(settings)
    return AuditReport(
        generated_at=now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        store=source.location.describe() if source is not None else "none",
        store_source=settings.store_source,
        settings_source=settings.source,
        spool_dir=os.path.abspath(settings.spool_dir),
        folders=tuple(folders),
        rows_checked=store.rows,
        anonymous_rows=store.anonymous,
        spool_lines=files.rows + unreadable.count + len(spooled_receipts),
        results=results,
    )


def _receipts(
    receipts: Iterator[dict[str, Any]] | None,
    spooled: list[tuple[str, dict[str, Any]]],
    examples: int,
    no_store: bool,
) -> CheckResult:
    tally = Tally(
        "receipts_with_personal_data",
        "receipts",
        "consent receipts holding an everID or session id, an IP address or a user agent",
        examples,
    )
    if receipts is None and not spooled:
        reason = "the settings keep no store" if no_store else "no receipts table"
        return CheckResult(tally.name, tally.source, "skip", 0, tally.description, (), reason)
    for position, row in enumerate(receipts or (), 1):
        finding = receipt_personal_data(row)
        if finding is not None:
            tally.add(receipt_id(row, position, finding), finding)
    for where, row in spooled:
        finding = receipt_personal_data(row)
        if finding is not None:
            tally.add(where, finding)
    return tally.result()
