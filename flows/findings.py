"""Findings and Part B (SPEC R7, Hillingdon 4.1.1, Bedford 5.1): on submit, the case's social
worker and team manager each get the findings 1:1 with their response to record (Part B:
agree or disagree with a reason, reflections, when it was discussed in supervision); the QA
team is copied; the auditor is told when each Part B is in. Part B still missing after the
framework's ``part_b_working_days`` is chased like an overdue action (flows/nudges.py).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING, Any

from bot.router import Request, Router
from bot.turn import Reply
from cards import messages
from cards.followups import FindingAction, FindingsView, PartBAsk, findings_card, part_b_ids
from cards.payloads import SubmitPartB
from flows.base import Submitted, Work, today, unit_of_work
from flows.nudges import todo_reply
from qa import form_rules as fr
from qa.errors import Code, NotAllowed
from qa.people import LineOfManagement, Person
from qa.periods import working_deadline
from store import followups as stored
from store.audits import SubmittedAudit, people_around_case, submitted_audit
from store.directory import staff_with_roles
from store.models import PartB, Staff
from store.outbox import Message

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()
jobs = ()

RELATIONS = {"social_worker": "social worker", "team_manager": "team manager",
             "manager": "line manager"}
REFLECTIONS_MAX = 2000
REASON_MAX = 1500


def owed_by(case_team_id: int, social_worker_id: str | None,
            line: LineOfManagement) -> list[tuple[Person, str]]:
    """Who owes Part B for a case: its social worker, then its managers (their line
    manager and the team's team managers), with how each relates to the case."""
    out: dict[str, tuple[Person, str]] = {}
    worker = line.person(social_worker_id)
    if worker is not None and worker.active:
        out[worker.staff_id] = (worker, "social_worker")
    for manager in line.case_managers(case_team_id, social_worker_id):
        out.setdefault(manager.staff_id,
                       (manager, "team_manager" if manager.has("team_manager") else "manager"))
    return list(out.values())


def findings_view(services: Services, done: SubmittedAudit, *, part_b: PartBAsk | None = None,
                  copy_note: str | None = None, revised: bool = False) -> FindingsView:
    fw = services.framework
    audit = done.audit
    tool = fw.tools.get(audit.tool)
    titles = {d.key: d.title for d in tool.domains} if tool else {}
    answers = audit.answers or {}
    area = fw.areas.get(audit.area)

    assert audit.submitted_at is not None
    return FindingsView(
        audit_id=audit.id, case_ref=audit.case_ref, area_label=area.label if area else audit.area,
        auditor_name=done.names.get(audit.submitted_by or "", audit.submitted_by or ""),
        submitted_at=audit.submitted_at.astimezone(fw.zone),
        overall_label=fw.grade_label(audit.overall_grade),
        outcomes_label=fr.label_for(fr.OUTCOME_CHOICES, audit.outcomes),
        domain_grades=tuple((titles.get(k, k), fw.grade_label(v)) for k, v in done.grades.items()),
        strengths=str(answers.get(fr.STRENGTHS, "")), worries=str(answers.get(fr.WORRIES, "")),
        better=str(answers.get(fr.BETTER, "")), celebrate=str(answers.get(fr.CELEBRATE, "")),
        actions=tuple(FindingAction(a.what, done.names.get(a.owner_id, a.owner_id), a.due_on,
                                    fr.label_for(fr.PRIORITY_CHOICES, a.priority))
                      for a in done.actions),
        part_b=part_b, copy_note=copy_note, revised=revised)


def recorded_text(row: PartB) -> str:
    agreed = "You agreed with the findings." if row.agrees else (
        f"You disagreed with the findings: {row.disagree_reason}")
    parts = [agreed]
    if row.reflections:
        parts.append(f"Your reflections: {row.reflections}")
    if row.discussed_on:
        parts.append(f"Discussed in supervision on {row.discussed_on.day} "
                     f"{row.discussed_on:%b %Y}.")
    return " ".join(parts)


def _ask(row: PartB, values: dict[str, str] | None = None,
         errors: dict[str, str] | None = None) -> PartBAsk:
    return PartBAsk(RELATIONS.get(row.relation, row.relation), row.due_on, values or {},
                    errors or {}, recorded_text(row) if row.status == "submitted" else None)


async def on_audit_submitted(services: Services, work: Work, done: Submitted) -> list[str]:
    """Queue the findings to the social worker and managers (with Part B asked for) and a
    copy to the QA team, in the submit's transaction."""
    case = done.case
    line = LineOfManagement(await people_around_case(work.session, case))
    owing = [(p, rel) for p, rel in owed_by(case.team_id, case.social_worker_id, line)
             if p.staff_id != done.actor]
    due = working_deadline(services.calendar, today(services, work.at),
                           services.framework.escalation.part_b_working_days)
    stored_audit = await submitted_audit(work.session, done.audit.id)
    # A resubmission after a moderator's return sends the revised findings; a Part B
    # already asked for (or recorded) stands.
    revision = done.audit.reworks or 0
    key = f"findings:{done.audit.id}:" + (f"r{revision}:" if revision else "")
    asked = {row.staff_id: row for row in await stored.part_bs_of(work.session, done.audit.id)}
    for person, relation in owing:
        row = asked.get(person.staff_id) or await stored.request_part_b(
            work.session, done.audit.id, person.staff_id, relation, due_on=due, at=work.at,
            actor=done.actor)
        view = findings_view(services, stored_audit, part_b=_ask(row), revised=bool(revision))
        await work.tell(Message(findings_card(view), staff_id=person.staff_id,
                                dedupe_key=f"{key}{person.staff_id}"))
    owing_names = [p.name for p, _ in owing]
    copy = messages.findings_copy_note(owing_names, due)
    for lead in await staff_with_roles(work.session, services.framework.qa_roles):
        if lead.staff_id in {p.staff_id for p, _ in owing} or lead.staff_id == done.actor:
            continue
        await work.tell(Message(findings_card(findings_view(services, stored_audit,
                                                            copy_note=copy,
                                                            revised=bool(revision))),
                                staff_id=lead.staff_id, dedupe_key=f"{key}copy:{lead.staff_id}"))
    log.info("findings queued", extra={"audit_id": done.audit.id, "part_b": len(owing),
                                       "revision": revision})
    return [messages.findings_queued(owing_names, due)]


def _part_b_values(audit_id: int, inputs: dict[str, Any]) -> dict[str, str]:
    ids = part_b_ids(audit_id)
    return {v: inputs[v].strip() for v in ids.values() if isinstance(inputs.get(v), str)}


def _validate(audit_id: int, values: dict[str, str], today_: date
              ) -> tuple[dict[str, Any] | None, dict[str, str]]:
    ids = part_b_ids(audit_id)
    errors: dict[str, str] = {}
    agrees = values.get(ids["agrees"], "")
    reason = values.get(ids["reason"], "")
    reflections = values.get(ids["reflections"], "")
    if agrees not in ("yes", "no"):
        errors[ids["agrees"]] = "Please say whether you agree with the findings."
    if agrees == "no" and not reason:
        errors[ids["reason"]] = "Please say why you disagree."
    if len(reason) > REASON_MAX:
        errors[ids["reason"]] = f"Please keep this to {REASON_MAX:,} characters or fewer."
    if len(reflections) > REFLECTIONS_MAX:
        errors[ids["reflections"]] = f"Please keep this to {REFLECTIONS_MAX:,} characters or fewer."
    discussed: date | None = None
    raw = values.get(ids["discussed_on"], "")
    if raw:
        try:
            discussed = date.fromisoformat(raw)
        except ValueError:
            errors[ids["discussed_on"]] = "Please give the date as a calendar date."
        else:
            if discussed > today_:
                errors[ids["discussed_on"]] = "The supervision date cannot be in the future."
    if errors:
        return None, errors
    return {"agrees": agrees == "yes", "disagree_reason": reason if agrees == "no" else "",
            "reflections": reflections, "discussed_on": discussed}, {}


@router.card(SubmitPartB)
async def submit_part_b(request: Request, ask: SubmitPartB) -> Reply:
    """Only the person asked records their Part B, once; a second press shows what they
    said. The auditor is told it is in."""
    if request.staff is None:
        raise NotAllowed(Code.NOT_STAFF)
    services = request.services
    at = services.clock()
    values = _part_b_values(ask.audit_id, request.inputs)
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        row = await stored.part_b(work.session, ask.audit_id, request.actor)
        done = await submitted_audit(work.session, ask.audit_id)
        if row.status != "submitted":
            fields, errors = _validate(ask.audit_id, values, today(services, at))
            if fields is None:
                log.info("part B refused", extra={"audit_id": ask.audit_id,
                                                  "errors": len(errors)})
                return Reply(card=findings_card(findings_view(
                    services, done, part_b=_ask(row, values, errors))))
            if await stored.submit_part_b(work.session, row.id, by=request.actor, at=at,
                                          **fields):
                await work.session.refresh(row)
                await _tell_auditor(work, done, row, request.staff)
    if ask.where == "todo":
        return await todo_reply(services, request.staff, confirmation=messages.part_b_recorded(
            done.audit.case_ref))
    return Reply(card=findings_card(findings_view(services, done, part_b=_ask(row))))


async def _tell_auditor(work: Work, done: SubmittedAudit, row: PartB, who: Staff) -> None:
    auditor = done.audit.submitted_by
    if not auditor:
        return
    await work.tell(Message(
        messages.part_b_in(who.name, RELATIONS.get(row.relation, row.relation),
                           done.audit.case_ref, bool(row.agrees)),
        staff_id=auditor, dedupe_key=f"partb:{done.audit.id}:{row.staff_id}:in"))
