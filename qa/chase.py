"""When something owed is chased, and who is told (SPEC R8, R6): pure rules, no I/O.

Anything owed by a date (an audit action, a Part B response, a remedial plan) is chased the
same way, as of a day:

* a **reminder** once it is within ``remind_before`` working days of its due date;
* the day after the due date (the first working day after it) it is **overdue**: step 0,
  the owner is nudged;
* every ``step_days`` calendar days after that (moved to the next working day), one more
  **step** up the escalation ladder: step k tells the k-th person of the ladder. A rung
  nobody holds is skipped (the ladder is the people who hold its rungs); past the top, the
  top of the ladder is told again each step, so nothing goes quiet while it is owed.

The chase keeps the last step told (``step``), so a missed day is caught up on the next one
and a replayed day tells nobody twice.

Safeguarding acknowledgements count **working hours** (the framework's working day on
working days): :func:`add_working_hours`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Final

from qa.calendar import WorkingCalendar
from qa.people import Person, Rung

__all__ = [
    "ACTION_OPEN_STATES",
    "Chase",
    "add_working_hours",
    "chase_today",
    "climbing_ladder",
    "overdue_from",
    "state_of",
    "step_date",
]

#: Action states in which the action is still owed (and so chased).
ACTION_OPEN_STATES: Final = frozenset({"open", "extension_requested", "extended"})
ACTION_STATES: Final = ("open", "extension_requested", "extended", "overdue", "done",
                        "cancelled")


def state_of(status: str, due_on: date, today: date) -> str:
    """An action's state as people see it: "overdue" once an owed action is past due."""
    if status in ACTION_OPEN_STATES and today > due_on:
        return "overdue"
    return status


def overdue_from(calendar: WorkingCalendar, due_on: date) -> date:
    """The first working day after the due date: the day an action is first overdue."""
    return calendar.add_working_days(due_on, 1)


def step_date(calendar: WorkingCalendar, due_on: date, step: int, step_days: int) -> date:
    """The working day step ``step`` falls on (step 0 is the first overdue day)."""
    start = overdue_from(calendar, due_on)
    return calendar.next_working_day(start + timedelta(days=step * step_days))


@dataclass(frozen=True)
class Chase:
    """What is due today for one owed item: a reminder, and the steps to take."""

    remind: bool
    new_steps: tuple[int, ...]  # steps reached since the last one told, oldest first

    @property
    def anything(self) -> bool:
        return self.remind or bool(self.new_steps)

    @property
    def latest(self) -> int | None:
        return self.new_steps[-1] if self.new_steps else None


def chase_today(calendar: WorkingCalendar, *, due_on: date, today: date, remind_before: int,
                reminded: bool, step: int, step_days: int) -> Chase:
    """What to do today for an item owed by ``due_on`` (``step``: the last step told)."""
    remind = (not reminded and remind_before > 0 and today <= due_on
              and today >= calendar.add_working_days(due_on, -remind_before))
    new: list[int] = []
    if today >= overdue_from(calendar, due_on):
        k = step + 1
        while step_date(calendar, due_on, k, step_days) <= today:
            new.append(k)
            k += 1
    return Chase(remind, tuple(new))


def climbing_ladder(rungs: Sequence[Rung]) -> list[Person]:
    """The people a chase climbs, in order: the rungs somebody holds (others skipped)."""
    return [r.person for r in rungs if r.person is not None]


def told_at_step(ladder: Sequence[Person], step: int) -> Person | None:
    """Who step ``step`` tells: the ladder's step-th person, the top once past it."""
    if not ladder or step < 0:
        return None
    return ladder[min(step, len(ladder) - 1)]


def add_working_hours(calendar: WorkingCalendar, start: datetime, hours: float, zone: tzinfo,
                      day_starts: time, day_ends: time) -> datetime:
    """``start`` plus ``hours`` of working time (working days, between the day's hours).

    A concern raised at 16:00 with 4 hours to acknowledge falls due at 12:00 the next
    working day (09:00-17:00); one raised on a Saturday counts from Monday 09:00.
    """
    remaining = timedelta(hours=hours)
    moment = start.astimezone(zone)
    while True:
        day = moment.date()
        opens = datetime.combine(day, day_starts, tzinfo=zone)
        closes = datetime.combine(day, day_ends, tzinfo=zone)
        if not calendar.is_working_day(day) or moment >= closes:
            nxt = calendar.next_working_day(day + timedelta(days=1))
            moment = datetime.combine(nxt, day_starts, tzinfo=zone)
            continue
        moment = max(moment, opens)
        available = closes - moment
        if remaining <= available:
            return moment + remaining
        remaining -= available
        moment = closes
