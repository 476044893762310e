"""Working-day rules against real England and Wales bank holidays (facts checked in holidays 0.109)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import holidays
import pytest

from qa.calendar import WorkingCalendar

CAL = WorkingCalendar()


@pytest.mark.parametrize(
    ("day", "why"),
    [
        (date(2026, 1, 1), "New Year's Day (Thu)"),
        (date(2026, 4, 3), "Good Friday 2026"),
        (date(2026, 4, 6), "Easter Monday 2026"),
        (date(2026, 5, 4), "Early May bank holiday 2026"),
        (date(2026, 5, 25), "Spring bank holiday 2026"),
        (date(2026, 8, 31), "Summer bank holiday 2026"),
        (date(2026, 12, 25), "Christmas Day 2026 (Fri)"),
        (date(2026, 12, 26), "Boxing Day 2026 (Sat)"),
        (date(2026, 12, 28), "Boxing Day 2026 substitute (Mon)"),
        (date(2027, 1, 1), "New Year's Day 2027 (Fri)"),
        (date(2027, 3, 26), "Good Friday 2027"),
        (date(2027, 3, 29), "Easter Monday 2027"),
        (date(2027, 5, 3), "Early May bank holiday 2027"),
        (date(2027, 5, 31), "Spring bank holiday 2027"),
        (date(2027, 8, 30), "Summer bank holiday 2027"),
        (date(2027, 12, 27), "Christmas Day 2027 substitute (Mon)"),
        (date(2027, 12, 28), "Boxing Day 2027 substitute (Tue)"),
        (date(2022, 9, 19), "State funeral of Queen Elizabeth II"),
        (date(2023, 5, 8), "Coronation of King Charles III"),
        (date(2022, 6, 3), "Platinum Jubilee"),
        (date(2026, 6, 6), "a Saturday"),
        (date(2026, 6, 7), "a Sunday"),
    ],
)
def test_closed_days(day: date, why: str) -> None:
    assert not CAL.is_working_day(day), why


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 12, 24),  # Christmas Eve is not a bank holiday
        date(2026, 12, 29),
        date(2026, 12, 31),
        date(2027, 1, 4),  # 2 January (Sat) is a holiday in Scotland only, so no substitute here
        date(2027, 3, 25),  # Maundy Thursday
        date(2027, 3, 30),  # Tuesday after Easter
        date(2027, 5, 4),
        date(2026, 11, 30),  # St Andrew's Day is Scotland only
        date(2026, 3, 17),  # St Patrick's Day is Northern Ireland only
    ],
)
def test_open_days(day: date) -> None:
    assert CAL.is_working_day(day)


@pytest.mark.parametrize("year", range(2020, 2031))
def test_agrees_with_holidays_package_and_wales_matches_england(year: int) -> None:
    eng = holidays.country_holidays("GB", subdiv="ENG", years=year)
    wales = WorkingCalendar("wales")
    day = date(year, 1, 1)
    while day.year == year:
        expected = day.weekday() < 5 and day not in eng
        assert CAL.is_working_day(day) is expected, day
        assert wales.is_working_day(day) is expected, day
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2027, 1, date(2027, 1, 4)),  # Fri 1 Jan holiday, then the weekend
        (2026, 1, date(2026, 1, 2)),  # Thu 1 Jan holiday
        (2026, 8, date(2026, 8, 3)),  # 1 Aug 2026 is a Saturday
        (2026, 5, date(2026, 5, 1)),  # Friday; the May holiday is Mon 4th
        (2027, 5, date(2027, 5, 4)),  # Sat 1, Sun 2, Mon 3 May bank holiday
        (2026, 6, date(2026, 6, 1)),  # Monday
        (2026, 2, date(2026, 2, 2)),  # 1 Feb 2026 is a Sunday
        (2022, 1, date(2022, 1, 4)),  # Sat 1 Jan, substitute Mon 3 Jan
        (2028, 1, date(2028, 1, 4)),  # Sat 1 Jan 2028, substitute Mon 3 Jan
    ],
)
def test_first_working_day(year: int, month: int, expected: date) -> None:
    assert CAL.first_working_day(year, month) == expected


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2026, 12, date(2026, 12, 31)),
        (2026, 5, date(2026, 5, 29)),  # Sun 31, Sat 30
        (2027, 8, date(2027, 8, 31)),
        (2026, 8, date(2026, 8, 28)),  # Mon 31 Aug is the summer bank holiday
    ],
)
def test_last_working_day(year: int, month: int, expected: date) -> None:
    assert CAL.last_working_day(year, month) == expected


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 12, 24), 1, date(2026, 12, 29)),  # over Christmas and the substitute day
        (date(2026, 12, 29), -1, date(2026, 12, 24)),
        (date(2026, 4, 1), 5, date(2026, 4, 10)),  # Good Friday and Easter Monday skipped
        (date(2026, 4, 2), 1, date(2026, 4, 7)),
        (date(2026, 6, 5), 5, date(2026, 6, 12)),  # Friday + 5 = next Friday
        (date(2026, 6, 6), 1, date(2026, 6, 8)),  # from a Saturday
        (date(2026, 6, 6), 0, date(2026, 6, 8)),  # 0 on a closed day -> next working day
        (date(2026, 6, 8), 0, date(2026, 6, 8)),  # 0 on a working day -> itself
        (date(2026, 12, 25), 0, date(2026, 12, 29)),
        (date(2027, 3, 25), 1, date(2027, 3, 30)),
        (date(2027, 3, 30), -1, date(2027, 3, 25)),
        (date(2026, 5, 1), 1, date(2026, 5, 5)),
        (date(2026, 1, 1), 7, date(2026, 1, 12)),  # 7 working days from New Year's Day
        (date(2027, 12, 24), 1, date(2027, 12, 29)),
        (date(2026, 12, 23), 14, date(2027, 1, 15)),  # the 14-day RI escalation over Christmas
    ],
)
def test_add_working_days(start: date, n: int, expected: date) -> None:
    assert CAL.add_working_days(start, n) == expected


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2026, 12, 24), date(2026, 12, 29), 1),
        (date(2026, 12, 29), date(2026, 12, 24), -1),
        (date(2026, 12, 24), date(2026, 12, 24), 0),
        (date(2026, 4, 1), date(2026, 4, 10), 5),
        # 2026 and 2027 each have 261 weekdays, 8 of them bank holidays: 253 working days.
        (date(2025, 12, 31), date(2026, 12, 31), 253),
        (date(2026, 1, 1), date(2026, 12, 31), 253),  # 1 Jan is excluded but was closed anyway
        (date(2026, 1, 2), date(2026, 12, 31), 252),  # Fri 2 Jan excluded
        (date(2026, 12, 31), date(2027, 12, 31), 253),
        (date(2026, 6, 6), date(2026, 6, 7), 0),  # weekend only
    ],
)
def test_working_days_between(start: date, end: date, expected: int) -> None:
    assert CAL.working_days_between(start, end) == expected


def _brute_between(cal: WorkingCalendar, start: date, end: date) -> int:
    lo, hi, sign = (start, end, 1) if start <= end else (end, start, -1)
    count, d = 0, lo
    while d < hi:
        d += timedelta(days=1)
        count += cal.is_working_day(d)
    return sign * count


@pytest.mark.parametrize("seed", range(60))
def test_between_and_add_are_consistent(seed: int) -> None:
    rng = random.Random(seed)
    cal = WorkingCalendar(extra_closures=[date(2026, 12, 29), date(2026, 12, 30)])
    for _ in range(20):
        start = date(2025, 1, 1) + timedelta(days=rng.randrange(4 * 365))
        end = start + timedelta(days=rng.randrange(-120, 120))
        assert cal.working_days_between(start, end) == _brute_between(cal, start, end)
        assert cal.working_days_between(start, end) == -cal.working_days_between(end, start)
        n = rng.randrange(-40, 41)
        target = cal.add_working_days(start, n)
        assert cal.is_working_day(target)
        if n > 0 or (n < 0 and cal.is_working_day(start)):
            assert cal.working_days_between(start, target) == n
        if n > 0:
            assert target > start
        elif n < 0:
            assert target < start
        else:
            assert target == cal.next_working_day(start)


def test_extra_closures_are_closed_even_mid_week() -> None:
    cal = WorkingCalendar(
        extra_closures=[date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31)]
    )
    assert not cal.is_working_day(date(2026, 12, 30))
    assert cal.add_working_days(date(2026, 12, 24), 1) == date(2027, 1, 4)
    assert cal.working_days_between(date(2026, 12, 24), date(2027, 1, 4)) == 1
    # A weekend closure changes nothing.
    weekend = WorkingCalendar(extra_closures=[date(2026, 6, 6)])
    assert weekend.working_days_between(date(2026, 6, 5), date(2026, 6, 8)) == 1


def test_scotland_is_a_different_list() -> None:
    scot = WorkingCalendar("scotland")
    assert not scot.is_working_day(date(2027, 1, 4))  # 2 Jan holiday (Sat) observed Monday 4 Jan
    assert not scot.is_working_day(date(2027, 8, 2))  # Scottish summer holiday
    assert scot.is_working_day(date(2027, 3, 29))  # no Easter Monday in Scotland
    assert CAL.is_working_day(date(2027, 8, 2))


@pytest.mark.parametrize("region", ["", "England & Wales", "GB", "uk"])
def test_unknown_region_is_refused(region: str) -> None:
    with pytest.raises(ValueError, match="unknown bank-holiday region"):
        WorkingCalendar(region)
