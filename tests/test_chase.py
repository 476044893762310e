"""When owed items are chased (qa/chase.py): reminders, overdue, a rung a week, working hours."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from qa.calendar import WorkingCalendar
from qa.chase import (
    add_working_hours,
    chase_today,
    climbing_ladder,
    overdue_from,
    state_of,
    step_date,
    told_at_step,
)
from qa.people import OWNER, LineOfManagement, Person

CAL = WorkingCalendar("england-and-wales")
LONDON = ZoneInfo("Europe/London")
NINE, FIVE = time(9), time(17)


def test_overdue_starts_the_first_working_day_after_the_due_date() -> None:
    assert overdue_from(CAL, date(2027, 3, 24)) == date(2027, 3, 25)  # Wed -> Thu
    # due Thursday 25 March 2027: Good Friday and Easter Monday are bank holidays
    assert overdue_from(CAL, date(2027, 3, 25)) == date(2027, 3, 30)


def test_steps_fall_a_week_apart_on_working_days() -> None:
    due = date(2027, 3, 18)  # Thursday
    steps = [step_date(CAL, due, k, 7) for k in range(4)]
    # 19 Mar; 26 Mar is Good Friday -> Tue 30 Mar (Easter Monday too); 2 Apr; 9 Apr
    assert steps == [date(2027, 3, 19), date(2027, 3, 30), date(2027, 4, 2), date(2027, 4, 9)]
    assert all(CAL.is_working_day(d) for d in steps)


@pytest.mark.parametrize(("today", "remind", "steps"), [
    (date(2027, 2, 10), False, ()),      # long before
    (date(2027, 2, 15), True, ()),       # 2 working days before Wed 17 Feb
    (date(2027, 2, 17), True, ()),       # due today, not reminded yet: still reminded
    (date(2027, 2, 18), False, (0,)),    # overdue: the owner is nudged
    (date(2027, 2, 24), False, (0,)),    # six days on: still step 0
    (date(2027, 2, 25), False, (0, 1)),  # a week on: the next rung
    (date(2027, 3, 11), False, (0, 1, 2, 3)),  # a missed fortnight is caught up
])
def test_what_is_due_today(today: date, remind: bool, steps: tuple[int, ...]) -> None:
    chase = chase_today(CAL, due_on=date(2027, 2, 17), today=today, remind_before=2,
                        reminded=False, step=-1, step_days=7)
    assert (chase.remind, chase.new_steps) == (remind, steps)


def test_a_step_told_is_not_told_again() -> None:
    kwargs = dict(due_on=date(2027, 2, 17), remind_before=2, reminded=True, step_days=7)
    assert chase_today(CAL, today=date(2027, 2, 25), step=1, **kwargs).new_steps == ()
    assert chase_today(CAL, today=date(2027, 3, 4), step=1, **kwargs).new_steps == (2,)
    assert chase_today(CAL, today=date(2027, 2, 15), step=-1, **kwargs).remind is False


def test_the_ladder_skips_empty_rungs_and_repeats_its_top() -> None:
    line = LineOfManagement([
        Person("SW", "Sam", frozenset({"social_worker"}), manager_id="TM"),
        Person("TM", "Tia", frozenset({"team_manager"}), manager_id="AD"),
        Person("AD", "Ade", frozenset({"assistant_director"})),
    ])
    ladder = climbing_ladder(line.ladder("SW", (OWNER, "team_manager", "service_manager",
                                                "assistant_director")))
    assert [p.staff_id for p in ladder] == ["SW", "TM", "AD"]  # no service manager: skipped
    assert [told_at_step(ladder, k).staff_id for k in range(5)] == ["SW", "TM", "AD", "AD",
                                                                     "AD"]
    assert told_at_step([], 0) is None and told_at_step(ladder, -1) is None


def test_action_states() -> None:
    due = date(2027, 1, 10)
    assert state_of("open", due, date(2027, 1, 10)) == "open"
    assert state_of("open", due, date(2027, 1, 11)) == "overdue"
    assert state_of("extended", due, date(2027, 1, 11)) == "overdue"
    assert state_of("done", due, date(2027, 2, 1)) == "done"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=LONDON)


@pytest.mark.parametrize(("start", "hours", "due"), [
    (at(2027, 1, 5, 10, 0), 4, at(2027, 1, 5, 14, 0)),    # within the day
    (at(2027, 1, 5, 16, 0), 4, at(2027, 1, 6, 12, 0)),    # over the evening
    (at(2027, 1, 8, 15, 30), 4, at(2027, 1, 11, 11, 30)),  # Friday -> Monday
    (at(2027, 1, 9, 11, 0), 4, at(2027, 1, 11, 13, 0)),   # raised on a Saturday
    (at(2027, 1, 5, 7, 0), 4, at(2027, 1, 5, 13, 0)),     # before the day opens
    # Easter 2027, across the start of British Summer Time (Sunday 28 March)
    (at(2027, 3, 25, 16, 0), 4, at(2027, 3, 30, 12, 0)),
    (at(2027, 1, 5, 9, 0), 16, at(2027, 1, 6, 17, 0)),    # two whole days
])
def test_working_hours(start: datetime, hours: int, due: datetime) -> None:
    assert add_working_hours(CAL, start, hours, LONDON, NINE, FIVE) == due
