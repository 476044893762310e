"""Grade escalation (SPEC R8, Lambeth): an Inadequate audit goes to the framework's
``remedial_roles`` (director and assistant director) for a remedial plan within
``remedial_days.inadequate`` (7), Requires Improvement within ``remedial_days.
requires_improvement`` (14). They record the plan on a card and are chased until they do
(flows/nudges.py); the case stays on its service manager's weekly "tracking to Good" list
until an audit grades it Good or better, which takes it off.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.router import Request, Router
from bot.turn import Reply
from cards import messages
from cards.followups import RemedialView, remedial_card
from cards.payloads import RecordPlan
from flows.base import Submitted, Work, today, unit_of_work
from flows.nudges import todo_reply
from qa.errors import Code, NotAllowed, Refused
from qa.people import LineOfManagement, Person
from store import followups as stored
from store.audits import people_around_case
from store.directory import line_above, staff_with_roles
from store.models import Audit, Case, Remedial, Staff, Team
from store.outbox import Message

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()
jobs = ()

PLAN_MAX = 3000


async def _recipients(services: Services, work: Work, case: Case) -> list[Person]:
    """Each remedial role, nearest above the case's managers; failing that, whoever in the
    council holds it (a council has one director)."""
    around = LineOfManagement(await people_around_case(work.session, case))
    managers = around.case_managers(case.team_id, case.social_worker_id)
    line = LineOfManagement([*around.people.values(),
                             *await line_above(work.session, [m.staff_id for m in managers])])
    chain = [p for m in managers for p in [m, *line.chain(m.staff_id)]]
    out: dict[str, Person] = {}
    for role in services.framework.escalation.remedial_roles:
        holder = next((p for p in chain if p.has(role) and p.active), None)
        if holder is None:
            anyone = await staff_with_roles(work.session, [role])
            holder = (Person(anyone[0].staff_id, anyone[0].name, frozenset(anyone[0].roles))
                      if anyone else None)
        if holder is None:
            log.warning("no one holds a remedial role", extra={"role": role,
                                                               "case_team": case.team_id})
            continue
        out.setdefault(holder.staff_id, holder)
    return list(out.values())


async def _view(services: Services, work: Work, row: Remedial, audit: Audit,
                error: str | None = None) -> RemedialView:
    fw = services.framework
    case = await work.session.get(Case, row.case_ref)
    team = await work.session.get(Team, case.team_id) if case else None
    area = fw.areas.get(audit.area)
    by = await work.session.get(Staff, row.plan_by) if row.plan_by else None
    return RemedialView(
        row.id, row.case_ref, fw.grade_label(row.grade), area.label if area else audit.area,
        team.name if team else "", row.created_at.astimezone(fw.zone).date(), row.due_on,
        str((audit.answers or {}).get("better", "")), row.plan, by.name if by else row.plan_by,
        row.plan_at.astimezone(fw.zone) if row.plan_at else None, error)


async def on_audit_submitted(services: Services, work: Work, done: Submitted) -> list[str]:
    """A poor grade opens a remedial plan; a Good or better one ends the case's tracking."""
    return await grade_given(services, work, done.audit, done.case, done.submission.overall,
                             actor=done.actor)


async def grade_given(services: Services, work: Work, audit: Audit, case: Case, grade: str, *,
                      actor: str) -> list[str]:
    """What a final grade means for escalation, whoever gave it (the auditor on submit, a
    moderator's regrade): Good or better takes the case off the tracking list; a
    ``remedial_days`` grade asks for a remedial plan, once per audit (a resubmission or a
    regrade of an audit that already has one keeps it)."""
    fw = services.framework
    notes: list[str] = []
    if fw.is_good_or_better(grade):
        closed = await stored.close_tracking(work.session, case.case_ref, audit_id=audit.id,
                                             at=work.at, actor=actor)
        if closed:
            notes.append(messages.tracking_closed(case.case_ref, fw.grade_label(grade)))
    days = fw.escalation.remedial_days.get(grade)
    if days is None or await stored.remedial_of_audit(work.session, audit.id) is not None:
        return notes
    recipients = await _recipients(services, work, case)
    due = today(services, work.at) + timedelta(days=days)
    row = await stored.open_remedial(work.session, audit, grade, due_on=due,
                                     recipients=[p.staff_id for p in recipients], at=work.at,
                                     actor=actor)
    body = remedial_card(await _view(services, work, row, audit))
    for person in recipients:
        await work.tell(Message(body, staff_id=person.staff_id,
                                dedupe_key=f"remedial:{audit.id}:{person.staff_id}"))
    notes.append(messages.remedial_queued(fw.grade_label(grade), [p.name for p in recipients], due))
    return notes


@router.card(RecordPlan)
async def record_plan(request: Request, ask: RecordPlan) -> Reply:
    """The people asked for the plan (or the QA team) record it, once."""
    if request.staff is None:
        raise NotAllowed(Code.NOT_STAFF)
    services = request.services
    at = services.clock()
    plan = request.inputs.get(f"plan.{ask.remedial_id}")
    plan = plan.strip()[:PLAN_MAX] if isinstance(plan, str) else ""
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        row, recipients = await stored.remedial(work.session, ask.remedial_id)
        qa = services.framework.qa_roles.intersection(request.roles)
        if request.staff_id not in recipients and not qa:
            raise NotAllowed(Code.REMEDIAL_NOT_YOURS)
        audit = await work.session.get(Audit, row.audit_id)
        assert audit is not None
        if row.plan_at is None:
            if not plan:
                raise Refused(Code.REMEDIAL_PLAN_EMPTY)
            if await stored.record_plan(work.session, row.id, plan=plan, by=request.actor,
                                        at=at):
                await work.session.refresh(row)
                for lead in await staff_with_roles(work.session, services.framework.qa_roles):
                    await work.tell(Message(
                        messages.remedial_plan_in(request.staff.name, row.case_ref),
                        staff_id=lead.staff_id,
                        dedupe_key=f"remedial:{row.audit_id}:plan:{lead.staff_id}"))
        view = await _view(services, work, row, audit)
    if ask.where == "todo":
        return await todo_reply(services, request.staff,
                                confirmation=messages.remedial_recorded(row.case_ref))
    return Reply(card=remedial_card(view))
