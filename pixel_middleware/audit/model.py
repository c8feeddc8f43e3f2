"""What an audit finds: one result per named check, and the whole report. Pure data.

A check never records the values it found, only where (a row id, a spool file and line) and
which column or parameter names: the audit's own output must not become a copy of the personal
data it looks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pass", "fail", "warn", "skip"]
# A check's verdict on one row: None when the row keeps the rule, else the column or parameter
# names that break it (empty when the row as a whole does, e.g. a missing nc=1).
Finding = tuple[str, ...] | None

EXIT_PASSED = 0
EXIT_VIOLATIONS = 1
EXIT_UNREADABLE = 2


@dataclass(frozen=True, slots=True)
class Example:
    """Where a violation is: a row id (``hit_id``, ``file:line``) and the names involved."""

    row: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One named check over one source (``store``, ``spool``, ``receipts``, ``settings``).

    ``count`` is how many rows (or settings) break the rule; ``status`` is ``fail`` for a
    violation, ``warn`` for what the README documents but an operator should know about (a
    warning never fails the audit), ``skip`` when the check cannot apply (``note`` says why).
    """

    name: str
    source: str
    status: Status
    count: int
    description: str
    examples: tuple[Example, ...] = ()
    note: str = ""


@dataclass
class Tally:
    """Counts one check's violations and keeps the first ``limit`` of them as examples."""

    name: str
    source: str
    description: str
    limit: int
    count: int = 0
    examples: list[Example] = field(default_factory=list)

    def add(self, row: str, names: tuple[str, ...]) -> None:
        self.count += 1
        if len(self.examples) < self.limit:
            self.examples.append(Example(row, names))

    def result(self, *, severity: Status = "fail", note: str = "") -> CheckResult:
        return CheckResult(
            name=self.name,
            source=self.source,
            status=severity if self.count else "pass",
            count=self.count,
            description=self.description,
            examples=tuple(self.examples),
            note=note,
        )


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Everything an audit run found, with what it looked at."""

    generated_at: str
    store: str
    store_source: str
    settings_source: str
    spool_dir: str
    folders: tuple[str, ...]
    rows_checked: int
    anonymous_rows: int
    spool_lines: int
    results: Sequence[CheckResult]

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def passed(self) -> bool:
        """No check failed; warnings and skipped checks do not fail an audit."""
        return self.count("fail") == 0

    @property
    def exit_status(self) -> int:
        return EXIT_PASSED if self.passed else EXIT_VIOLATIONS
