"""Which days a report covers, in which time zone, and the cutoff ``prune`` deletes before. Pure."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*$")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1, "": 86_400}


def zone(name: str) -> tzinfo:
    """The time zone called ``name`` (IANA); UTC needs no time zone database."""
    return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


@dataclass(frozen=True)
class Period:
    """``days`` whole days ending today, as days in ``time_zone``."""

    first: date
    last: date
    time_zone: str

    @classmethod
    def last_days(cls, days: int, time_zone: str = "UTC", now: datetime | None = None) -> Period:
        today = (now or datetime.now(UTC)).astimezone(zone(time_zone)).date()
        return cls(first=today - timedelta(days=days - 1), last=today, time_zone=time_zone)

    @property
    def since(self) -> datetime:
        """The first moment of the first day, as an aware datetime (what the stores compare)."""
        return datetime.combine(self.first, datetime.min.time(), tzinfo=zone(self.time_zone))

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def day_of(self, moment: datetime) -> date:
        """The day ``moment`` (aware) falls on in this period's time zone."""
        return moment.astimezone(zone(self.time_zone)).date()


def parse_age(text: str) -> timedelta:
    """``30`` or ``30d`` days, ``12h`` hours, ``90m`` minutes, ``45s`` seconds; decimals allowed."""
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an age: use days (30, 0.5) or 30d, 12h, 90m, 45s")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNIT_SECONDS[unit])


def cutoff(age: timedelta, now: datetime | None = None) -> datetime:
    """``now`` minus ``age``, to the second: hits received before it are older than ``age``."""
    return ((now or datetime.now(UTC)) - age).replace(microsecond=0)
