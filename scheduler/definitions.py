"""Every scheduled job, imported once so that each registers itself.

Each job is a named, idempotent function of (context, as-of time) that returns a one-line
summary; the scheduler and ``qabot jobs run NAME --at ISO`` call the same function.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from cards.allocation import AllocatedCase, ReminderView, long_date, reminder_card
from scheduler.jobs import job
from store.allocations import allocate_month, scheduled_day
from store.completion import PendingAudit, overdue_audits, unsubmitted_due_on
from store.outbox import queue_in

if TYPE_CHECKING:
    from qa.framework import Framework, Schedule
    from qabot.context import AppContext


def _daily(pick: Callable[[Schedule], time]) -> Callable[[Framework], BaseTrigger]:
    """Every day at a time of the framework's schedule, in the framework's zone."""

    def trigger(fw: Framework) -> BaseTrigger:
        at = pick(fw.schedule)
        return CronTrigger(hour=at.hour, minute=at.minute, timezone=fw.zone)

    return trigger


@job("allocation", "monthly case allocation (acts from the allocation working day on)",
     trigger=_daily(lambda s: s.allocation_time))
async def allocation(ctx: AppContext, at: datetime) -> str:
    """Allocate the as-of month once it is due; a no-op before that and after it is done.

    The trigger fires daily so that a service that was down on the allocation day catches
    up at the next run later in the same month (deadlines then count from that day). The
    month's unique run key makes every run after the first report "already allocated".
    """
    fw = ctx.framework
    local = at.astimezone(fw.zone)
    month = date(local.year, local.month, 1)
    if month.month in fw.blackout_months:
        return f"{month:%Y-%m} is a blackout month: nothing to allocate"
    day = scheduled_day(fw, ctx.calendar, month)
    due = datetime.combine(day, fw.schedule.allocation_time, tzinfo=fw.zone)
    if local < due:
        return (f"{month:%Y-%m} is allocated on {day.isoformat()} at "
                f"{fw.schedule.allocation_time:%H:%M}: nothing to do yet")
    outcome = await allocate_month(ctx.sessions, fw, ctx.calendar, month, as_of=at,
                                   actor="job:allocation")
    return outcome.headline()


def _allocated_case(item: PendingAudit, ctx: AppContext) -> AllocatedCase:
    area = ctx.framework.areas.get(item.area)
    return AllocatedCase(item.audit_id, item.case_ref, area.label if area else item.area,
                         item.reason, item.look_back_from, item.look_back_to, item.deadline)


def _manager_note(deadline: date, by_auditor: dict[str, list[PendingAudit]]) -> str:
    """Names, counts and case refs of the manager's own staff only; sent 1:1."""
    lines = [f"**Case audits overdue** (deadline was {long_date(deadline)})", "",
             "These audits allocated to people you manage are not submitted yet:", ""]
    for items in sorted(by_auditor.values(), key=lambda xs: xs[0].auditor_name):
        refs = ", ".join(i.case_ref for i in items)
        lines.append(f"- {items[0].auditor_name}: {len(items)} ({refs})")
    lines += ["", "Please ask them to submit, or tell the QA team who should take them over."]
    return "\n".join(lines)


@job("completion_reminders", "reminders before the audit deadline, manager notes after it",
     trigger=_daily(lambda s: s.daily_time))
async def completion_reminders(ctx: AppContext, at: datetime) -> str:
    """Remind auditors N working days before their deadline; tell managers once it passes.

    Runs on working days only. Dedupe keys (auditor + deadline for reminders, manager +
    deadline for notes) make re-runs and catch-ups send nothing twice.
    """
    fw, cal = ctx.framework, ctx.calendar
    today = at.astimezone(fw.zone).date()
    if not cal.is_working_day(today):
        return f"{today.isoformat()} is not a working day: no reminders"
    n = fw.reminder_working_days_before
    target = cal.add_working_days(today, n)
    reminders = notes = overdue_count = unmanaged = 0
    async with ctx.sessions.begin() as session:
        due = await unsubmitted_due_on(session, target)
        by_auditor: dict[str, list[PendingAudit]] = defaultdict(list)
        for item in due:
            by_auditor[item.auditor_id].append(item)
        for auditor_id, items in sorted(by_auditor.items()):
            card = reminder_card(ReminderView(
                fw.authority, items[0].auditor_name, target, n,
                tuple(_allocated_case(i, ctx) for i in items)))
            if await queue_in(session, message=card, staff_id=auditor_id,
                              dedupe_key=f"completion:reminder:{auditor_id}:{target}"):
                reminders += 1

        overdue = await overdue_audits(session, today)
        overdue_count = len(overdue)
        grouped: dict[tuple[str, date], dict[str, list[PendingAudit]]] = defaultdict(
            lambda: defaultdict(list))
        for item in overdue:
            if item.manager_id is None or not item.manager_active:
                unmanaged += 1
                continue
            grouped[(item.manager_id, item.deadline)][item.auditor_id].append(item)
        for (manager_id, deadline), staff_items in sorted(grouped.items()):
            if await queue_in(session, message=_manager_note(deadline, staff_items),
                              staff_id=manager_id,
                              dedupe_key=f"completion:overdue:{manager_id}:{deadline}"):
                notes += 1
    summary = (f"{today.isoformat()}: {reminders} reminder(s) for audits due "
               f"{target.isoformat()}, {notes} manager note(s) about {overdue_count} overdue "
               "audit(s)")
    if unmanaged:
        summary += f", {unmanaged} overdue audit(s) whose auditor has no active line manager"
    return summary
