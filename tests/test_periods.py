"""Months and quarters (qa/periods.py): the one place the audit cycle's dates are made."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from qa.calendar import WorkingCalendar
from qa.periods import (
    Period,
    add_months,
    local_date,
    local_midnight_utc,
    month_key,
    month_last_day,
    month_name,
    month_names,
    parse_month,
    shift_month,
    working_deadline,
)

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(("text", "month"), [
    ("2026-12", date(2026, 12, 1)), (" 2027-01 ", date(2027, 1, 1)), ("1999-09", date(1999, 9, 1))])
def test_parse_month(text: str, month: date) -> None:
    assert parse_month(text) == month
    assert month_key(month) == text.strip()


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "26-12", "December", "", "2026-12-01"])
def test_parse_month_says_what_it_wants(text: str) -> None:
    with pytest.raises(ValueError, match="expected YYYY-MM"):
        parse_month(text)


def test_names() -> None:
    assert month_name(date(2026, 12, 1)) == "December 2026"
    assert month_names({12, 8}) == ("August", "December")


@pytest.mark.parametrize(("month", "n", "expected"), [
    (date(2026, 12, 1), 1, date(2027, 1, 1)), (date(2026, 1, 1), -1, date(2025, 12, 1)),
    (date(2026, 6, 1), -6, date(2025, 12, 1)), (date(2026, 6, 15), 0, date(2026, 6, 1)),
    (date(2026, 1, 1), 24, date(2028, 1, 1))])
def test_shift_month(month: date, n: int, expected: date) -> None:
    assert shift_month(month, n) == expected


@pytest.mark.parametrize(("d", "n", "expected"), [
    (date(2026, 8, 31), 6, date(2027, 2, 28)), (date(2027, 8, 31), 6, date(2028, 2, 29)),
    (date(2026, 12, 1), -6, date(2026, 6, 1)), (date(2026, 3, 31), -1, date(2026, 2, 28)),
    (date(2026, 1, 15), 8, date(2026, 9, 15))])
def test_add_months_clamps_the_day(d: date, n: int, expected: date) -> None:
    assert add_months(d, n) == expected


def test_month_last_day() -> None:
    assert month_last_day(date(2028, 2, 1)) == date(2028, 2, 29)
    assert month_last_day(date(2026, 12, 9)) == date(2026, 12, 31)


def test_local_dates_follow_the_council_clock() -> None:
    late = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # already 1 July in London (BST)
    assert local_date(late, LONDON) == date(2026, 7, 1)
    naive = datetime(2026, 6, 30, 23, 30)  # noqa: DTZ001  (as some drivers return aggregates)
    assert local_date(naive, LONDON) == date(2026, 7, 1)  # naive is taken as UTC
    assert local_midnight_utc(date(2026, 7, 1), LONDON) == datetime(2026, 6, 30, 23, tzinfo=UTC)


def test_working_deadline_skips_bank_holidays() -> None:
    cal = WorkingCalendar("england-and-wales")
    # Tuesday 22 December 2026 + 3: Wed 23, Thu 24, then Christmas, the weekend and Boxing Day
    # (substitute, Monday 28) are skipped
    assert working_deadline(cal, date(2026, 12, 22), 3) == date(2026, 12, 29)


@pytest.mark.parametrize(("key", "start", "months", "label"), [
    ("2026-10", date(2026, 10, 1), 1, "October 2026"),
    ("2026-Q3", date(2026, 7, 1), 3, "Q3 2026 (July to September)"),
    ("2027-q1", date(2027, 1, 1), 3, "Q1 2027 (January to March)")])
def test_periods(key: str, start: date, months: int, label: str) -> None:
    p = Period.parse(key)
    assert (p.start, p.months, p.label) == (start, months, label)
    assert Period.parse(p.key) == p
    assert p.next().previous() == p
    assert p.contains(start) and p.contains(p.last_day) and not p.contains(p.end)


def test_period_helpers() -> None:
    q = Period.quarter_of(date(2026, 11, 1))
    assert q.key == "2026-Q4" and q.month_keys == ("2026-10", "2026-11", "2026-12")
    assert q.next().key == "2027-Q1" and q.previous().key == "2026-Q3"
    assert Period.month_of(date(2026, 12, 25)).key == "2026-12"
    with pytest.raises(ValueError, match="not a month"):
        Period.parse("2026-Q5")
    with pytest.raises(ValueError):
        Period(date(2026, 2, 1), 3)  # a quarter starts in Jan, Apr, Jul or Oct
