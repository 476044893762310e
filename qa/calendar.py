"""Working days for deadlines and schedules (SPEC R3, R8).

Action due dates, escalation steps and the monthly allocation run are counted in working days:
weekends and bank holidays are closed, plus any closures the council configures (for example a
Christmas shutdown). Bank holidays come from the ``holidays`` package, whose GB tables follow the
gov.uk list, including substitute days and one-off days such as state funerals. England and Wales
share one list; gov.uk calls that division ``england-and-wales``.

Everything here is pure: the caller passes the date in, nothing reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import holidays

__all__ = ["REGIONS", "WorkingCalendar"]

#: gov.uk bank-holiday divisions (plus the two halves of England and Wales) -> ``holidays`` subdivision.
REGIONS: dict[str, str] = {
    "england-and-wales": "ENG",
    "england": "ENG",
    "wales": "WLS",
    "scotland": "SCT",
    "northern-ireland": "NIR",
}

_ONE_DAY = timedelta(days=1)


def _weekdays_up_to(d: date) -> int:
    """Number of Monday-Friday dates from 1 Jan year 1 (a Monday) up to and including ``d``."""
    n = d.toordinal()
    weeks, rest = divmod(n, 7)
    return weeks * 5 + min(rest, 5)


class WorkingCalendar:
    """Answers "is this a working day" and counts working days, for one bank-holiday region."""

    def __init__(
        self, region: str = "england-and-wales", extra_closures: Iterable[date] = ()
    ) -> None:
        try:
            self._subdiv = REGIONS[region]
        except KeyError:
            known = ", ".join(sorted(REGIONS))
            raise ValueError(
                f"unknown bank-holiday region {region!r}; expected one of: {known}"
            ) from None
        self.region = region
        self._extra: frozenset[date] = frozenset(extra_closures)
        # Closed weekdays per year, filled on first use so any year works without a fixed range.
        self._closed: dict[int, frozenset[date]] = {}

    def _closed_weekdays(self, year: int) -> frozenset[date]:
        """Bank holidays and extra closures in ``year`` that fall Monday to Friday."""
        closed = self._closed.get(year)
        if closed is None:
            bank = holidays.country_holidays("GB", subdiv=self._subdiv, years=year)
            days = {d for d in bank if d.year == year}
            days.update(d for d in self._extra if d.year == year)
            closed = frozenset(d for d in days if d.weekday() < 5)
            self._closed[year] = closed
        return closed

    def is_working_day(self, d: date) -> bool:
        """True for a Monday-Friday that is neither a bank holiday nor an extra closure."""
        return d.weekday() < 5 and d not in self._closed_weekdays(d.year)

    def next_working_day(self, d: date) -> date:
        """``d`` itself if it is a working day, otherwise the first working day after it."""
        while not self.is_working_day(d):
            d += _ONE_DAY
        return d

    def previous_working_day(self, d: date) -> date:
        """``d`` itself if it is a working day, otherwise the last working day before it."""
        while not self.is_working_day(d):
            d -= _ONE_DAY
        return d

    def add_working_days(self, d: date, n: int) -> date:
        """The ``n``-th working day after ``d`` (before it when ``n`` is negative).

        ``d`` itself is never counted, so "due in 5 working days" from a Friday lands on the next
        Friday, and +1 from a bank holiday is the first working day after it. ``n == 0`` means
        "today if open, else the next working day", which is what a same-day deadline needs.
        For every ``n != 0``: ``working_days_between(d, add_working_days(d, n)) == n`` when ``n``
        is positive, and also for negative ``n`` when ``d`` is a working day.
        """
        if n == 0:
            return self.next_working_day(d)
        step = _ONE_DAY if n > 0 else -_ONE_DAY
        remaining = abs(n)
        while remaining:
            d += step
            if self.is_working_day(d):
                remaining -= 1
        return d

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in ``(start, end]``; negative (``-count`` of ``(end, start]``) if end < start.

        Antisymmetric so that ``working_days_between(due, today)`` reads as "working days
        overdue" when positive and "working days left" (negated) when negative.
        """
        if end < start:
            return -self.working_days_between(end, start)
        count = _weekdays_up_to(end) - _weekdays_up_to(start)
        for year in range(start.year, end.year + 1):
            count -= sum(1 for d in self._closed_weekdays(year) if start < d <= end)
        return count

    def first_working_day(self, year: int, month: int) -> date:
        """First working day of a month: the default day for the monthly allocation run (R3)."""
        return self.next_working_day(date(year, month, 1))

    def last_working_day(self, year: int, month: int) -> date:
        """Last working day of a month: a natural deadline for that month's audits (R11)."""
        first_of_next = date(year + month // 12, month % 12 + 1, 1)
        return self.previous_working_day(first_of_next - _ONE_DAY)
