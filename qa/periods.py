"""Months, quarters and working-day deadlines: the one place dates of the audit cycle are made.

A month is written ``2026-12`` and handled as the date of its first day; a quarter is
``2026-Q4``. Allocation, completion, reports and the CLI all parse, name and shift months
here, so "which month is this" has one answer. Pure: the caller passes dates in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final

from qa.calendar import WorkingCalendar

__all__ = [
    "MONTH_NAMES",
    "Period",
    "add_months",
    "first_of_month",
    "local_date",
    "local_midnight_utc",
    "month_key",
    "month_last_day",
    "month_name",
    "month_names",
    "parse_month",
    "shift_month",
    "working_deadline",
]

MONTH_NAMES: Final = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)  # fmt: skip

_MONTH_RE: Final = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER_RE: Final = re.compile(r"^(\d{4})-[Qq]([1-4])$")


# --------------------------------------------------------------------------- months


def parse_month(text: str) -> date:
    """'2026-12' -> date(2026, 12, 1); ValueError with the expected shape otherwise."""
    m = _MONTH_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a month: expected YYYY-MM, e.g. 2026-12")
    return date(int(m.group(1)), int(m.group(2)), 1)


def first_of_month(d: date) -> date:
    """The first day of ``d``'s month: how a month is held in code."""
    return d.replace(day=1)


def month_key(month: date) -> str:
    """'2026-12': how a month is stored (``Audit.month``) and written on the command line."""
    return f"{month.year:04d}-{month.month:02d}"


def month_name(month: date) -> str:
    """'December 2026'."""
    return f"{MONTH_NAMES[month.month - 1]} {month.year}"


def month_names(numbers: Iterable[int]) -> tuple[str, ...]:
    """Month numbers (1-12) as names, in calendar order: for blackout months."""
    return tuple(MONTH_NAMES[m - 1] for m in sorted(numbers))


def shift_month(month: date, months: int) -> date:
    """The first day of the month ``months`` after (or before) ``month``'s month."""
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_last_day(month: date) -> date:
    """The last day of ``month``'s calendar month."""
    return shift_month(month, 1) - timedelta(days=1)


def add_months(d: date, months: int) -> date:
    """``d`` moved by whole calendar months, the day clamped to the target month's length.

    31 August + 6 months is 28 (or 29) February: used for look-back and re-audit dates.
    """
    first = shift_month(d, months)
    return first.replace(day=min(d.day, month_last_day(first).day))


# --------------------------------------------------------------------------- clock helpers


def local_date(moment: datetime, zone: tzinfo) -> date:
    """The calendar date of an instant in the council's timezone (naive means UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(zone).date()


def local_midnight_utc(day: date, zone: tzinfo) -> datetime:
    """The UTC instant a local day starts: period edges follow the council's clock."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def working_deadline(calendar: WorkingCalendar, start: date, working_days: int) -> date:
    """A due date ``working_days`` working days after ``start`` (bank holidays skipped)."""
    return calendar.add_working_days(start, working_days)


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """A calendar month ('2026-10') or quarter ('2026-Q3'), in the framework's timezone."""

    start: date  # first day, inclusive
    months: int  # 1 or 3

    @classmethod
    def parse(cls, key: str) -> Period:
        """Read 'YYYY-MM' or 'YYYY-Qn'; ValueError says which forms are accepted."""
        text = key.strip() if isinstance(key, str) else ""
        if m := _MONTH_RE.match(text):
            return cls(date(int(m[1]), int(m[2]), 1), 1)
        if m := _QUARTER_RE.match(text):
            return cls(date(int(m[1]), 3 * int(m[2]) - 2, 1), 3)
        raise ValueError(f"period {key!r} is not a month (2026-10) or a quarter (2026-Q3)")

    @classmethod
    def month_of(cls, d: date) -> Period:
        """The calendar month holding ``d``."""
        return cls(first_of_month(d), 1)

    @classmethod
    def quarter_of(cls, month: date) -> Period:
        """The calendar quarter holding ``month``."""
        return cls(date(month.year, 3 * ((month.month - 1) // 3) + 1, 1), 3)

    def __post_init__(self) -> None:
        if self.months not in (1, 3) or self.start.day != 1:
            raise ValueError("a period is a calendar month or a calendar quarter")
        if self.months == 3 and self.start.month % 3 != 1:
            raise ValueError("a quarter starts in January, April, July or October")

    @property
    def key(self) -> str:
        if self.months == 3:
            return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
        return month_key(self.start)

    @property
    def kind(self) -> str:
        return "quarter" if self.months == 3 else "month"

    @property
    def end(self) -> date:
        """The day after the period (exclusive end)."""
        return shift_month(self.start, self.months)

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def month_keys(self) -> tuple[str, ...]:
        """The 'YYYY-MM' values of ``Audit.month`` inside the period."""
        return tuple(month_key(shift_month(self.start, i)) for i in range(self.months))

    @property
    def label(self) -> str:
        """How people name the period: 'October 2026', 'Q3 2026 (July to September)'."""
        if self.months == 1:
            return month_name(self.start)
        last = shift_month(self.start, 2)
        q = (self.start.month - 1) // 3 + 1
        return (f"Q{q} {self.start.year} ({MONTH_NAMES[self.start.month - 1]} to "
                f"{MONTH_NAMES[last.month - 1]})")

    def contains(self, d: date) -> bool:
        return self.start <= d < self.end

    def previous(self) -> Period:
        return Period(shift_month(self.start, -self.months), self.months)

    def next(self) -> Period:
        return Period(self.end, self.months)

    def __str__(self) -> str:
        return self.key
