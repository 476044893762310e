"""The audit form (SPEC R5): open, save a draft, submit.

Card actions answer with a card that replaces the clicked one in place (Action.Execute),
so every outcome here is a card: the form (with entries kept and errors by their fields)
or the read-only summary; a refusal is raised as a code and worded by the turn handler.
What follows a submit (findings, Part B, the safeguarding alert, remedial plans) belongs to
the flows that own it and runs in the submit's own transaction (``on_audit_submitted``).
Logs carry audit ids only, never entries or case details.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from bot.router import Request, Router
from bot.turn import Reply
from cards import messages
from cards.audit_form import (
    FormView,
    SummaryAction,
    SummaryView,
    audit_form_card,
    audit_summary_card,
)
from cards.common import fmt_date, fmt_datetime
from cards.payloads import OpenAudit, SaveDraft, SubmitAudit
from flows.base import Submitted, today, unit_of_work
from qa import form_rules as fr
from qa.errors import Code, Conflict, NotAllowed
from qa.framework import Framework, Tool
from qa.people import LineOfManagement
from store import audits as stored
from store import moderation as moderation_store
from store.audits import SUBMITTED, SubmittedAudit
from store.models import Audit, Case, Staff

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()
jobs = ()

#: An audit a moderator gave back for rework (SPEC R10): the form again, entries kept.
RETURNED: Final = "returned"

_RELATIONS: Final = {
    "social_worker": "case social worker",
    "manager": "social worker's manager",
    "team_manager": "team manager",
}


@dataclass(frozen=True)
class Owner:
    """Someone who may own an action on the case, and why."""

    staff_id: str
    name: str
    relation: str  # social_worker | manager | team_manager


@dataclass(frozen=True)
class FormContext:
    """What the form needs: the audit, its case and who may own actions."""

    audit: Audit
    case: Case
    owners: tuple[Owner, ...]

    @property
    def submitted(self) -> bool:
        return self.audit.status == SUBMITTED

    @property
    def owner_ids(self) -> frozenset[str]:
        return frozenset(o.staff_id for o in self.owners)


@dataclass(frozen=True)
class SubmitOutcome:
    """``created`` is False when the audit had already been submitted (a replay); ``notes``
    are what the features that follow a submit tell the auditor ("queued for ...")."""

    created: bool
    result: SubmittedAudit
    notes: tuple[str, ...] = ()


def may_act(audit: Audit, staff_id: str | None) -> bool:
    """Only the allocated auditor, or the delegate the QA team named, opens and submits."""
    return staff_id is not None and staff_id in (audit.auditor_id, audit.delegate_id)


def owners_of(case: Case, line: LineOfManagement) -> tuple[Owner, ...]:
    """The case's social worker, their manager, then the case team's team managers."""
    found: dict[str, Owner] = {}
    worker = line.person(case.social_worker_id)
    if worker is not None and worker.active:
        found[worker.staff_id] = Owner(worker.staff_id, worker.name, "social_worker")
        manager = line.manager_of(worker.staff_id)
        if manager is not None:
            found[manager.staff_id] = Owner(manager.staff_id, manager.name, "manager")
    for tm in line.team_managers(case.team_id):
        found.setdefault(tm.staff_id, Owner(tm.staff_id, tm.name, "team_manager"))
    return tuple(found.values())


def _tool(framework: Framework, audit: Audit) -> Tool:
    """The tool the audit was allocated with; the area's tool if that one was removed."""
    tool = framework.tools.get(audit.tool)
    if tool is not None:
        return tool
    try:
        return framework.tool_for_area(audit.area)
    except KeyError:
        raise Conflict(Code.AUDIT_TOOL_GONE) from None


def _area_label(framework: Framework, area: str) -> str:
    found = framework.areas.get(area)
    return found.label if found else area


def _local(services: Services, moment: datetime) -> datetime:
    return moment.astimezone(services.framework.zone)


# ---------------------------------------------------------------------------- views


def form_view(services: Services, fc: FormContext, values: dict[str, str], *,
              errors: dict[str, str] | None = None, note: str | None = None,
              confirm_grade: str | None = None, note_by_buttons: bool = False) -> FormView:
    framework = services.framework
    tool = _tool(framework, fc.audit)
    audit = fc.audit
    return FormView(
        audit_id=audit.id,
        case_ref=audit.case_ref,
        area_label=_area_label(framework, audit.area),
        tool_label=tool.label,
        domains=tool.domains,
        grades=framework.grades,
        look_back_from=audit.look_back_from,
        look_back_to=audit.look_back_to,
        deadline=audit.deadline,
        owner_choices=tuple((o.staff_id, f"{o.name} ({_RELATIONS.get(o.relation, o.relation)})")
                            for o in fc.owners),
        values=values,
        errors=errors or {},
        note=note,
        max_actions=framework.max_actions,
        action_grades=tuple(g.label for g in framework.grades
                            if g.key in framework.actions_required),
        confirm_grade=confirm_grade,
        note_by_buttons=note_by_buttons,
    )


def summary_view(services: Services, done: SubmittedAudit) -> SummaryView:
    framework = services.framework
    audit = done.audit
    tool = framework.tools.get(audit.tool)
    titles = {d.key: d.title for d in tool.domains} if tool else {}
    order = list(titles) + [k for k in done.grades if k not in titles]

    assert audit.submitted_at is not None
    return SummaryView(
        audit_id=audit.id,
        case_ref=audit.case_ref,
        area_label=_area_label(framework, audit.area),
        tool_label=tool.label if tool else audit.tool,
        domain_grades=tuple((titles.get(k, k), framework.grade_label(done.grades[k]))
                            for k in order if k in done.grades),
        overall_label=framework.grade_label(audit.overall_grade),
        outcomes_label=fr.label_for(fr.OUTCOME_CHOICES, audit.outcomes),
        actions=tuple(SummaryAction(what=a.what, owner_name=done.names.get(a.owner_id, a.owner_id),
                                    due_on=a.due_on,
                                    priority_label=fr.label_for(fr.PRIORITY_CHOICES, a.priority))
                      for a in done.actions),
        submitted_by=done.names.get(audit.submitted_by or "", audit.submitted_by or ""),
        submitted_at=_local(services, audit.submitted_at),
        safeguarding=audit.safeguarding_concern,
    )


async def _summary_reply(services: Services, audit_id: int) -> Reply:
    async with services.sessions() as session:
        done = await stored.submitted_audit(session, audit_id)
    return Reply(card=audit_summary_card(summary_view(services, done)))


async def _load(request: Request, audit_id: int) -> FormContext | Reply:
    """The form context if this person may act on the audit, the summary once submitted;
    a refusal (raised) otherwise."""
    if request.staff is None:
        raise NotAllowed(Code.AUDIT_NOT_STAFF)
    services = request.services
    async with services.sessions() as session:
        audit, case = await stored.audit_and_case(session, audit_id)
        if not may_act(audit, request.staff_id):
            log.info("audit action refused: not the auditor or delegate",
                     extra={"audit_id": audit_id, "verb": request.incoming.verb})
            raise NotAllowed(Code.AUDIT_NOT_YOURS)
        if audit.status == SUBMITTED:
            fc = None
        else:
            line = LineOfManagement(await stored.people_around_case(session, case))
            fc = FormContext(audit, case, owners_of(case, line))
    if fc is None:
        return await _summary_reply(services, audit_id)
    return fc


def _entries(services: Services, fc: FormContext, data: dict[str, Any]) -> dict[str, str]:
    tool = _tool(services.framework, fc.audit)
    return fr.values_from(data, known=fr.input_ids(tool, services.framework.max_actions))


# ---------------------------------------------------------------------------- use cases


async def submit(services: Services, audit_id: int, actor: str | None, submission: fr.Submission,
                 *, at: datetime | None = None) -> SubmitOutcome:
    """Record a valid audit once, with everything that follows it; a replay creates nothing.

    The permission is checked again inside the transaction (the delegate may have changed
    since the form was opened), and a conditional update lets exactly one of many
    concurrent submits win. The features that follow a submit (findings and Part B, the
    safeguarding alert, remedial plans: each flow's ``on_audit_submitted``) run in the same
    unit of work, so what they queue is committed with the audit or not at all.
    """
    at = at or services.clock()
    notes: list[str] = []
    async with unit_of_work(services, at=at, actor=str(actor)) as work:
        audit, case = await stored.audit_and_case(work.session, audit_id)
        if not may_act(audit, actor):
            raise NotAllowed(Code.AUDIT_NOT_YOURS)
        assert actor is not None
        action_ids = await stored.submit(work.session, audit, submission, actor=actor, at=at)
        if action_ids is not None:
            done = Submitted(audit, case, submission, tuple(action_ids), actor)
            for hook in services.submit_hooks:
                notes += await hook(services, work, done)
    async with services.sessions() as session:
        return SubmitOutcome(action_ids is not None,
                             await stored.submitted_audit(session, audit_id), tuple(notes))


# ---------------------------------------------------------------------------- card actions


@router.card(OpenAudit)
async def open_audit(request: Request, ask: OpenAudit) -> Reply:
    """Show the form with any saved draft, or the summary once submitted."""
    services = request.services
    loaded = await _load(request, ask.audit_id)
    if isinstance(loaded, Reply):
        return loaded
    audit = loaded.audit
    note = None
    if audit.draft_saved_at is not None:
        note = messages.draft_resumed(fmt_datetime(_local(services, audit.draft_saved_at)))
    elif audit.status == RETURNED:
        note = await returned_note(services, audit)
    values = {k: v for k, v in (audit.draft or {}).items() if isinstance(v, str)}
    return Reply(card=audit_form_card(form_view(services, loaded, values, note=note)))


async def returned_note(services: Services, audit: Audit) -> str | None:
    """What the form says when a moderator returned it: who, why, by when, and that the
    actions already recorded stay open."""
    async with services.sessions() as session:
        back = await moderation_store.latest_round(session, audit.id)
        kept = await moderation_store.open_action_count(session, audit.id)
        who = await session.get(Staff, back.decided_by) if back and back.decided_by else None
    if back is None or back.status != moderation_store.RETURNED:
        return None
    return messages.returned_for_rework(who.name if who else (back.decided_by or ""),
                                        back.reason or "", audit.deadline, kept)


async def form_card(services: Services, session: AsyncSession, audit: Audit, case: Case,
                    values: dict[str, str], note: str | None) -> dict[str, Any]:
    """The audit form as its auditor opens it (for a form sent to them, e.g. on a return)."""
    line = LineOfManagement(await stored.people_around_case(session, case))
    fc = FormContext(audit, case, owners_of(case, line))
    return audit_form_card(form_view(services, fc, values, note=note))


@router.card(SaveDraft)
async def save_draft(request: Request, ask: SaveDraft) -> Reply:
    """Keep the entries as they are (unchecked) so the auditor can come back later."""
    services = request.services
    loaded = await _load(request, ask.audit_id)
    if isinstance(loaded, Reply):
        return loaded
    values = _entries(services, loaded, request.inputs)
    at = services.clock()
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        saved = await stored.save_draft(work.session, ask.audit_id, values, actor=request.actor,
                                        at=at)
    if not saved:
        return await _summary_reply(services, ask.audit_id)  # submitted meanwhile
    log.info("audit draft saved", extra={"audit_id": ask.audit_id})
    note = messages.draft_saved(f"{_local(services, at):%H:%M}", fmt_date(loaded.audit.deadline))
    return Reply(card=audit_form_card(form_view(services, loaded, values, note=note,
                                                note_by_buttons=True)))


@router.card(SubmitAudit)
async def submit_audit(request: Request, ask: SubmitAudit) -> Reply:
    """Check the form; a valid one is recorded once and replaced by its summary."""
    services = request.services
    loaded = await _load(request, ask.audit_id)
    if isinstance(loaded, Reply):
        return loaded
    values = _entries(services, loaded, request.inputs)
    at = services.clock()
    kept = 0
    if loaded.audit.reworks:
        async with services.sessions() as session:
            kept = await moderation_store.open_action_count(session, ask.audit_id)
    submission, errors = fr.validate(values, tool=_tool(services.framework, loaded.audit),
                                     framework=services.framework, today=today(services, at),
                                     owner_ids=loaded.owner_ids, kept_actions=kept)
    if submission is None:
        log.info("audit submit rejected", extra={"audit_id": ask.audit_id, "errors": len(errors)})
        return Reply(card=audit_form_card(form_view(services, loaded, values, errors=errors)))
    if (fr.needs_confirmation(submission, services.framework)
            and request.inputs.get(fr.CONFIRM) != "true"):
        # A warning, not a refusal: the same form asks, by Submit, and one tick goes on.
        log.info("audit submit held for confirmation", extra={"audit_id": ask.audit_id})
        grade = services.framework.grade(submission.overall).label
        return Reply(card=audit_form_card(form_view(services, loaded, values,
                                                    confirm_grade=grade)))
    outcome = await submit(services, ask.audit_id, request.staff_id, submission, at=at)
    card = audit_summary_card(summary_view(services, outcome.result))
    if not outcome.created:
        log.info("audit submit replayed", extra={"audit_id": ask.audit_id})
        return Reply(card=card)
    log.info("audit submitted", extra={"audit_id": ask.audit_id,
                                       "actions": len(submission.actions)})
    first = (request.staff.name.split() or [""])[0] if request.staff else ""
    thanks = messages.audit_thanks(first, loaded.audit.case_ref, outcome.notes)
    return Reply(card=card, messages=[thanks])
