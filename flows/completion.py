"""Auditor completion (SPEC R11): reminders before the deadline, the line manager told after
it, and the QA team's ``status`` of completion per team.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime
from typing import TYPE_CHECKING

from bot.router import QA_TEAM, Request, Router
from bot.turn import Reply
from cards import messages
from cards.allocation import (
    AllocatedCase,
    CompletionRow,
    CompletionView,
    ReminderView,
    completion_card,
    reminder_card,
)
from cards.common import long_date
from flows.allocation import reaudits_owed
from flows.base import today, unit_of_work
from qa.people import LineOfManagement
from qa.periods import first_of_month, month_key, month_last_day
from scheduler.jobs import Job
from store.completion import PendingAudit, completion_by_team, overdue_audits, unsubmitted_due_on
from store.directory import people
from store.outbox import Message

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()


def _allocated_case(item: PendingAudit, services: Services) -> AllocatedCase:
    area = services.framework.areas.get(item.area)
    return AllocatedCase(item.audit_id, item.case_ref, area.label if area else item.area,
                         item.reason, item.look_back_from, item.look_back_to, item.deadline)


def _manager_note(deadline: date, by_auditor: dict[str, list[PendingAudit]]) -> str:
    """Names, counts and case refs of the manager's own staff only; sent 1:1."""
    rows = [(items[0].auditor_name, [i.case_ref for i in items])
            for items in sorted(by_auditor.values(), key=lambda xs: xs[0].auditor_name)]
    return messages.overdue_note(long_date(deadline), rows)


async def completion_reminders(services: Services, at: datetime) -> str:
    """Remind auditors N working days before their deadline; tell managers once it passes.

    Runs on working days only. Dedupe keys (auditor + deadline for reminders, manager +
    deadline for notes) make re-runs and catch-ups send nothing twice. The manager is the
    auditor's nearest active manager in the line of management.
    """
    fw, cal = services.framework, services.calendar
    day = today(services, at)
    if not cal.is_working_day(day):
        return f"{day.isoformat()} is not a working day: no reminders"
    n = fw.reminder_working_days_before
    target = cal.add_working_days(day, n)
    reminders = notes = 0
    async with unit_of_work(services, at=at, actor="job:completion_reminders") as work:
        by_auditor: dict[str, list[PendingAudit]] = defaultdict(list)
        for item in await unsubmitted_due_on(work.session, target):
            by_auditor[item.auditor_id].append(item)
        for auditor_id, items in sorted(by_auditor.items()):
            card = reminder_card(ReminderView(
                fw.authority, items[0].auditor_name, target, n,
                tuple(_allocated_case(i, services) for i in items)))
            if await work.tell(Message(card, staff_id=auditor_id,
                                       dedupe_key=f"completion:reminder:{auditor_id}:{target}")):
                reminders += 1

        overdue = await overdue_audits(work.session, day)
        line = LineOfManagement(await people(work.session)) if overdue else None
        grouped: dict[tuple[str, date], dict[str, list[PendingAudit]]] = defaultdict(
            lambda: defaultdict(list))
        unmanaged = 0
        for item in overdue:
            manager = line.manager_of(item.auditor_id) if line is not None else None
            if manager is None:
                unmanaged += 1
                continue
            grouped[(manager.staff_id, item.deadline)][item.auditor_id].append(item)
        for (manager_id, deadline), staff_items in sorted(grouped.items()):
            if await work.tell(Message(_manager_note(deadline, staff_items), staff_id=manager_id,
                                       dedupe_key=f"completion:overdue:{manager_id}:{deadline}")):
                notes += 1
    summary = (f"{day.isoformat()}: {reminders} reminder(s) for audits due "
               f"{target.isoformat()}, {notes} manager note(s) about {len(overdue)} overdue "
               "audit(s)")
    if unmanaged:
        summary += f", {unmanaged} overdue audit(s) whose auditor has no active line manager"
    return summary


@router.command("status", summary="audit completion per team this month (QA team)",
                roles=[QA_TEAM])
async def status_command(request: Request) -> Reply:
    services = request.services
    day = today(services, services.clock())
    month = first_of_month(day)
    async with services.sessions() as session:
        rows = await completion_by_team(session, month_key(month), day)
        owed = await reaudits_owed(session, services.framework, month)
    log.info("status shown", extra={"staff_id": request.actor, "teams": len(rows),
                                    "reaudits": len(owed)})
    end = month_last_day(month)
    label = services.framework.grade_label
    view = CompletionView(
        month, day,
        tuple(CompletionRow(r.team, r.allocated, r.submitted, r.draft, r.overdue) for r in rows),
        reaudits_overdue=tuple((ref, label(g), due) for ref, g, due in owed if due < day),
        reaudits_due=tuple((ref, label(g), due) for ref, g, due in owed if day <= due <= end))
    return Reply(messages=[completion_card(view)])


jobs = (Job("completion_reminders", "reminders before the audit deadline, manager notes after it",
            completion_reminders, lambda s: s.daily_time),)
