"""Moderation (SPEC R10; Hillingdon 4.1.3, Leicester 4.3.2, Lambeth's audit moderation).

Each month, on the allocation working day, a sample of the audits submitted the month
before (framework ``moderation.rate``, every grade in ``moderation.always`` included) is
given to moderators 1:1 (``qa/moderation.py`` has the rules: never the auditor, nobody in
the case's team or managing it, spread evenly). The run's unique key ``moderation:YYYY-MM``
makes a month's sample happen once, as the allocation's does.

The moderator opens the audit read-only and either **agrees**, **regrades** (per domain and
overall, with a reason; lowering to an ``actions_required`` grade needs an added action,
which is then chased like any other) or **returns it for rework** (the auditor gets the form
back with their entries and the comment; their resubmission is the next round, for the same
moderator). A regrade is the audit's final grade (``store/grading.py``): every report reads
it, the remedial plan and tracking follow it. Moderators are reminded before their due date
and their line manager is told after it, as auditors are.

Logs carry ids and counts only.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.router import QA_TEAM, Request, Router
from bot.turn import Reply
from cards import messages
from cards.followups import FindingAction
from cards.moderation import (
    ADDED_ACTIONS,
    CalibrationAuditor,
    CalibrationRow,
    CalibrationView,
    DecidedView,
    InviteView,
    ModerationItem,
    ModerationView,
    calibration_cards,
    invite_card,
    moderation_card,
    regrade_ids,
)
from cards.payloads import AgreeModeration, OpenModeration, RegradeModeration, ReturnModeration
from flows.allocation import scheduled_day
from flows.audit_form import form_card, owners_of
from flows.base import Submitted, Work, today, unit_of_work
from flows.findings import owed_by
from flows.remedial import grade_given
from qa import form_rules as fr
from qa import moderation as rules
from qa.allocation import new_seed
from qa.errors import Code, Conflict, NotAllowed, NotFound, Refused
from qa.framework import Framework
from qa.people import LineOfManagement
from qa.periods import (
    add_months,
    local_midnight_utc,
    month_key,
    month_name,
    shift_month,
    working_deadline,
)
from scheduler.jobs import Job
from store import audits as audit_store
from store import moderation as stored
from store.allocations import insert_run, run_by_key
from store.directory import people, staff_with_roles
from store.models import (
    Audit,
    AuditAction,
    Case,
    DomainGrade,
    Moderation,
    ModerationDomain,
    Staff,
)
from store.outbox import Message

if TYPE_CHECKING:
    from qabot.services import Services

__all__ = ["SampleOutcome", "jobs", "moderation_key", "router", "sample_month"]

log = logging.getLogger(__name__)
router = Router()

REASON_MAX = 1500


def moderation_key(month: date) -> str:
    """The sample's unique key: one sample per month of submissions."""
    return f"moderation:{month_key(month)}"


# ---------------------------------------------------------------------------- the sample


@dataclass(frozen=True)
class SampleOutcome:
    status: str  # sampled | already | dry_run
    month: date
    seed: int | None = None
    submitted: int = 0
    sampled: int = 0
    per_moderator: tuple[tuple[str, int], ...] = ()
    unassigned: tuple[str, ...] = ()  # case refs
    due_on: date | None = None
    queued: int = 0

    def headline(self) -> str:
        m = month_key(self.month)
        if self.status == "already":
            return f"moderation of {m}'s audits is already allocated: nothing changed"
        verb = "would give" if self.status == "dry_run" else "gave"
        return (f"moderation of {m}'s audits: {verb} {self.sampled - len(self.unassigned)} of "
                f"{self.submitted} submitted audit(s) to {len(self.per_moderator)} "
                f"moderator(s), seed {self.seed}, due "
                f"{self.due_on.isoformat() if self.due_on else '-'}, "
                f"{len(self.unassigned)} without a moderator"
                + (f", {self.queued} message(s) queued" if self.status == "sampled" else ""))


def _moderator_ids(framework: Framework, staff: list[Staff]) -> list[str]:
    roles = frozenset(framework.moderation.moderators)
    return [s.staff_id for s in staff if s.active and roles.intersection(s.roles or [])]


def _excluded(row: stored.CandidateRow, line: LineOfManagement,
              moderators: list[str]) -> frozenset[str]:
    """Who may not moderate this audit: its auditor and submitter, the case's social worker
    and managers, anyone in the case's team, and anyone managing that team at any depth."""
    out = {row.auditor_id, row.submitted_by, row.delegate_id, row.social_worker_id}
    out |= {p.staff_id for p in line.case_managers(row.case_team_id, row.social_worker_id)}
    out |= {p.staff_id for p in line.people.values() if p.team_id == row.case_team_id}
    out |= {m for m in moderators if row.case_team_id in line.teams_below(m)}
    return frozenset(x for x in out if x)


async def sample_month(services: Services, month: date, *, at: datetime, actor: str,
                       seed: int | None = None, dry_run: bool = False) -> SampleOutcome:
    """Sample the audits submitted in ``month`` and give them to moderators, once."""
    fw = services.framework
    key = moderation_key(month)
    async with services.sessions() as session:
        if await run_by_key(session, key) is not None:
            return SampleOutcome("already", month)
    start = local_midnight_utc(month, fw.zone)
    end = local_midnight_utc(shift_month(month, 1), fw.zone)
    seed = new_seed() if seed is None else seed
    day = today(services, at)
    due = working_deadline(services.calendar, day, fw.moderation.working_days)
    try:
        async with unit_of_work(services, at=at, actor=actor) as work:
            rows = await stored.candidates(work.session, start, end)
            staff = list(await work.session.scalars(select(Staff).order_by(Staff.staff_id)))
            line = LineOfManagement(await people(work.session))
            moderators = _moderator_ids(fw, staff)
            by_id = {r.audit_id: r for r in rows}
            chosen = rules.sample(
                [rules.Candidate(r.audit_id, r.overall, _excluded(r, line, moderators))
                 for r in rows], rate=fw.moderation.rate, always=fw.moderation.always, seed=seed)
            given = rules.assign(chosen, moderators, seed=seed)
            names = {s.staff_id: s.name for s in staff}
            counts = Counter(given.moderators.values())
            outcome = SampleOutcome(
                "dry_run" if dry_run else "sampled", month, seed, len(rows), len(chosen),
                tuple(sorted((names[m], n) for m, n in counts.items())),
                tuple(by_id[i].case_ref for i in given.unassigned), due)
            if dry_run:
                raise _DryRun(outcome)
            run = await insert_run(work.session, key=key, kind="moderation",
                                   month=month_key(month), seed=seed, at=at, actor=actor,
                                   deadline=due, summary={
                                       "submitted": len(rows), "sampled": len(chosen),
                                       "moderators": dict(counts),
                                       # a count: run rows outlive purged cases
                                       "unassigned": len(outcome.unassigned)})
            ids = await stored.insert_round(
                work.session, run.id,
                [(i, m, by_id[i].overall) for i, m in sorted(given.moderators.items())],
                round_=1, at=at, due_on=due, actor=actor)
            work.log("moderation.sampled", "allocation_run", key,
                     after={"run_id": run.id, "seed": seed, "submitted": len(rows),
                            "sampled": len(chosen), "unassigned": len(given.unassigned)})
            await _tell_moderators(services, work, month, given.moderators, ids, due)
            await _tell_qa(services, work, month, outcome, staff)
    except _DryRun as dry:
        return dry.outcome
    except IntegrityError:  # another process sampled this month first
        return SampleOutcome("already", month)
    log.info("moderation sampled", extra={"month": month_key(month), "sampled": len(chosen),
                                          "queued": work.queued})
    return SampleOutcome(outcome.status, month, seed, outcome.submitted, outcome.sampled,
                         outcome.per_moderator, outcome.unassigned, due, work.queued)


class _DryRun(Exception):
    """Leaves the sample's transaction without writing (a preview)."""

    def __init__(self, outcome: SampleOutcome) -> None:
        self.outcome = outcome


async def _items(services: Services, work: Work, moderation_ids: list[int]
                 ) -> dict[str, list[ModerationItem]]:
    """The invitation lines of these rounds, by moderator."""
    fw = services.framework
    rows = (await work.session.execute(
        select(Moderation, Audit, Staff.name)
        .join(Audit, Audit.id == Moderation.audit_id)
        .join(Staff, Staff.staff_id == Audit.auditor_id)
        .where(Moderation.id.in_(moderation_ids))
        .order_by(Moderation.moderator_id, Audit.case_ref))).all()
    out: dict[str, list[ModerationItem]] = defaultdict(list)
    for mod, audit, auditor in rows:
        area = fw.areas.get(audit.area)
        out[mod.moderator_id].append(ModerationItem(
            mod.id, audit.case_ref, area.label if area else audit.area, auditor,
            fw.grade_label(mod.auditor_overall), mod.round, mod.due_on))
    return out


async def _tell_moderators(services: Services, work: Work, month: date,
                           given: dict[int, str], ids: dict[int, int], due: date) -> None:
    fw = services.framework
    names = {s.staff_id: s.name for s in await work.session.scalars(
        select(Staff).where(Staff.staff_id.in_(set(given.values()))))}
    for sid, items in sorted((await _items(services, work, list(ids.values()))).items()):
        view = InviteView(fw.authority, names.get(sid, sid),
                          messages.moderation_heading(month_name(month)), tuple(items))
        await work.tell(Message(invite_card(view), staff_id=sid,
                                dedupe_key=f"moderation:{month_key(month)}:{sid}"))


async def _tell_qa(services: Services, work: Work, month: date, outcome: SampleOutcome,
                   staff: list[Staff]) -> None:
    fw = services.framework
    linked = {s.staff_id for s in staff if s.teams_user_id}
    by_name = {s.name: s.staff_id for s in staff}
    unreachable = [name for name, _ in outcome.per_moderator if by_name.get(name) not in linked]
    always = [fw.grade_label(g) for g in sorted(fw.moderation.always,
                                                key=lambda k: fw.grade(k).rank)]
    assert outcome.due_on is not None
    note = messages.moderation_summary(month_name(month), outcome.sampled, outcome.submitted,
                                       fw.moderation.rate, always, outcome.per_moderator,
                                       outcome.due_on, outcome.unassigned, unreachable)
    for lead in await staff_with_roles(work.session, fw.qa_roles):
        await work.tell(Message(note, staff_id=lead.staff_id,
                                dedupe_key=f"moderation:{month_key(month)}:summary:"
                                           f"{lead.staff_id}"))


async def moderation_job(services: Services, at: datetime) -> str:
    """Sample last month's audits once it is due (the allocation working day, at the
    allocation time); before that, and after it is done, nothing."""
    fw = services.framework
    local = at.astimezone(fw.zone)
    this_month = date(local.year, local.month, 1)
    month = shift_month(this_month, -1)
    day = scheduled_day(fw, services.calendar, this_month)
    due = datetime.combine(day, fw.schedule.allocation_time, tzinfo=fw.zone)
    if local < due:
        return (f"moderation of {month_key(month)}'s audits starts on {day.isoformat()} at "
                f"{fw.schedule.allocation_time:%H:%M}: nothing to do yet")
    outcome = await sample_month(services, month, at=at, actor="job:moderation")
    return outcome.headline()


# ---------------------------------------------------------------------------- the card


@dataclass(frozen=True)
class _Loaded:
    row: Moderation
    audit: Audit
    case: Case


async def _load(request: Request, moderation_id: int, work: Work | None = None) -> _Loaded:
    if request.staff is None:
        raise NotAllowed(Code.NOT_STAFF)
    if work is not None:
        return await _load_in(work.session, request, moderation_id)
    async with request.services.sessions() as session:
        return await _load_in(session, request, moderation_id)


async def _load_in(session: Any, request: Request, moderation_id: int) -> _Loaded:
    row = await stored.moderation(session, moderation_id)
    if row.moderator_id != request.staff_id:
        log.info("moderation refused: not the moderator", extra={"moderation_id": moderation_id})
        raise NotAllowed(Code.MODERATION_NOT_YOURS)
    audit, case = await audit_store.audit_and_case(session, row.audit_id)
    return _Loaded(row, audit, case)


async def _view(services: Services, session: Any, loaded: _Loaded, *,
                values: dict[str, str] | None = None, errors: dict[str, str] | None = None
                ) -> ModerationView:
    fw = services.framework
    row, audit, case = loaded.row, loaded.audit, loaded.case
    tool = fw.tools.get(audit.tool)
    titles = {d.key: d.title for d in tool.domains} if tool else {}
    grades = {g.domain: g.grade for g in await session.scalars(
        select(DomainGrade).where(DomainGrade.audit_id == audit.id).order_by(DomainGrade.id))}
    if row.status != stored.ALLOCATED:  # decided: show the grades it was decided on
        grades = {d: a for d, a, _ in await _round_domains(session, row.id)} or grades
    actions = list(await session.scalars(
        select(AuditAction).where(AuditAction.audit_id == audit.id,
                                  AuditAction.status != "cancelled").order_by(AuditAction.seq)))
    ids = {a.owner_id for a in actions} | {audit.auditor_id, audit.submitted_by or "",
                                           row.decided_by or ""}
    names = {s.staff_id: s.name for s in await session.scalars(
        select(Staff).where(Staff.staff_id.in_(ids)))}
    line = LineOfManagement(await audit_store.people_around_case(session, case))
    owners = owners_of(case, line)
    answers = audit.answers or {}
    area = fw.areas.get(audit.area)
    previous = None
    if row.round > 1:
        before = await session.scalar(select(Moderation).where(
            Moderation.audit_id == audit.id, Moderation.round == row.round - 1))
        previous = before.reason if before is not None else None
    order = [k for k in titles if k in grades] + [k for k in grades if k not in titles]
    submitted = audit.submitted_at or row.allocated_at
    view = ModerationView(
        moderation_id=row.id, case_ref=audit.case_ref,
        area_label=area.label if area else audit.area,
        tool_label=tool.label if tool else audit.tool,
        auditor_name=names.get(audit.submitted_by or audit.auditor_id, audit.auditor_id),
        submitted_at=submitted.astimezone(fw.zone), round=row.round, due_on=row.due_on,
        domains=tuple((k, titles.get(k, k), grades[k]) for k in order),
        grades=tuple((g.key, g.label) for g in fw.grades),
        overall=row.auditor_overall or audit.overall_grade or "",
        outcomes_label=fr.label_for(fr.OUTCOME_CHOICES, audit.outcomes),
        answers=tuple(_answer_facts(answers)),
        narratives=tuple((t, str(answers.get(k, ""))) for t, k in (
            ("What is working well", fr.STRENGTHS), ("What we are worried about", fr.WORRIES),
            ("What needs to be better", fr.BETTER),
            ("What the child and family said", fr.FEEDBACK),
            ("Outstanding practice to celebrate", fr.CELEBRATE),
            ("Safeguarding concern", fr.SAFEGUARDING_DETAILS))),
        safeguarding=audit.safeguarding_concern,
        actions=tuple(FindingAction(a.what, names.get(a.owner_id, a.owner_id), a.due_on,
                                    fr.label_for(fr.PRIORITY_CHOICES, a.priority))
                      for a in actions),
        owner_choices=tuple((o.staff_id, o.name) for o in owners),
        action_grades=tuple(g.label for g in fw.grades if g.key in fw.actions_required),
        previous_return=previous, values=values or {}, errors=errors or {},
    )
    if row.status == stored.ALLOCATED:
        return view
    changes = tuple((titles.get(d, d), fw.grade_label(a), fw.grade_label(m))
                    for d, a, m in await _round_domains(session, row.id) if a != m)
    if row.overall_grade and row.auditor_overall and row.overall_grade != row.auditor_overall:
        changes += (("Overall", fw.grade_label(row.auditor_overall),
                     fw.grade_label(row.overall_grade)),)
    added = tuple(FindingAction(a.what, names.get(a.owner_id, a.owner_id), a.due_on,
                                fr.label_for(fr.PRIORITY_CHOICES, a.priority))
                  for a in actions if row.decided_at and a.created_at == row.decided_at)
    decided = DecidedView(row.status, names.get(row.decided_by or "", row.decided_by or ""),
                          (row.decided_at or row.allocated_at).astimezone(fw.zone),
                          fw.grade_label(row.overall_grade or row.auditor_overall),
                          row.reason, changes, added)
    return ModerationView(**{**view.__dict__, "decided": decided})


def _answer_facts(answers: dict[str, Any]) -> list[tuple[str, str]]:
    def yes_no(v: Any) -> str:
        return "Yes" if v is True else "No" if v is False else str(v or "")

    out = []
    if fr.SW_TOOK_PART in answers:
        out.append(("Social worker took part", yes_no(answers[fr.SW_TOOK_PART])))
    if fr.CHILD_CONTACTED in answers:
        out.append(("Child contacted", fr.label_for(fr.CHILD_CONTACT_CHOICES,
                                                    str(answers[fr.CHILD_CONTACTED]))))
    if fr.FAMILY_CONTACTED in answers:
        out.append(("Family contacted", yes_no(answers[fr.FAMILY_CONTACTED])))
    return out


async def _round_domains(session: Any, moderation_id: int) -> list[tuple[str, str, str]]:
    return [(d.domain, d.auditor_grade, d.moderator_grade) for d in await session.scalars(
        select(ModerationDomain).where(ModerationDomain.moderation_id == moderation_id)
        .order_by(ModerationDomain.domain))]


async def _card(services: Services, request: Request, moderation_id: int, **kw: Any) -> Reply:
    loaded = await _load(request, moderation_id)
    async with services.sessions() as session:
        return Reply(card=moderation_card(await _view(services, session, loaded, **kw)))


@router.card(OpenModeration)
async def open_moderation(request: Request, ask: OpenModeration) -> Reply:
    """The audit read-only with the three choices; once decided, what was decided."""
    return await _card(request.services, request, ask.moderation_id)


def _stale(loaded: _Loaded) -> bool:
    """The audit no longer stands as moderated (returned meanwhile, or not submitted)."""
    return loaded.audit.status != "submitted"


@router.card(AgreeModeration)
async def agree(request: Request, ask: AgreeModeration) -> Reply:
    services = request.services
    at = services.clock()
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        loaded = await _load(request, ask.moderation_id, work)
        if not _stale(loaded):
            grades = await _auditor_grades(work, loaded.audit.id)
            if await stored.decide(work.session, loaded.row, status=stored.AGREED,
                                   by=request.actor, at=at,
                                   overall=loaded.audit.overall_grade,
                                   domains={d: (g, g) for d, g in grades.items()}):
                await work.tell(Message(
                    messages.moderation_agreed_note(request.staff.name if request.staff
                                                    else request.actor, loaded.audit.case_ref),
                    staff_id=loaded.audit.submitted_by or loaded.audit.auditor_id,
                    dedupe_key=f"moderation:{loaded.row.id}:auditor"))
                log.info("moderation agreed", extra={"moderation_id": loaded.row.id})
    return await _card(services, request, ask.moderation_id)


async def _auditor_grades(work: Work, audit_id: int) -> dict[str, str]:
    return {g.domain: g.grade for g in await work.session.scalars(
        select(DomainGrade).where(DomainGrade.audit_id == audit_id).order_by(DomainGrade.id))}


def _regrade_values(inputs: dict[str, Any], domain_keys: list[str]) -> dict[str, str]:
    ids = regrade_ids(domain_keys)
    wanted = set(ids.values()) | {fr.action_id(n, f) for n in range(1, ADDED_ACTIONS + 1)
                                  for f in fr.ACTION_FIELDS}
    return {k: v.strip()[:REASON_MAX] for k, v in inputs.items()
            if k in wanted and isinstance(v, str)}


def check_regrade(framework: Framework, values: dict[str, str], *, auditor: dict[str, str],
                  auditor_overall: str, outcomes: str | None, today_: date,
                  owner_ids: frozenset[str]
                  ) -> tuple[dict[str, str], str, list[fr.ActionEntry], dict[str, str]]:
    """The regrade's grades, overall, added actions and errors (by input id)."""
    ids = regrade_ids(list(auditor))
    keys = {g.key for g in framework.grades}
    errors: dict[str, str] = {}
    grades: dict[str, str] = {}
    for d, given in auditor.items():
        value = values.get(ids[f"domain.{d}"]) or given
        if value not in keys:
            errors[ids[f"domain.{d}"]] = "Please choose a grade from the list."
        grades[d] = value
    overall = values.get(ids["overall"]) or auditor_overall
    if overall not in keys:
        errors[ids["overall"]] = "Please choose a grade from the list."
    elif outcomes == "not_met" and framework.is_good_or_better(overall):
        errors[ids["overall"]] = (f"{framework.grade(overall).label} is not possible when the "
                                  "child's outcomes are not met.")
    if not values.get(ids["reason"]):
        errors[ids["reason"]] = "Please say why you regraded the audit."
    if not errors and grades == auditor and overall == auditor_overall:
        errors[ids["overall"]] = ("These are the auditor's grades: change at least one, or "
                                  "press Agree.")
    added, action_errors = fr.actions_from(values, ADDED_ACTIONS, today_, owner_ids)
    errors.update(action_errors)
    lowered = (overall in keys and auditor_overall in keys
               and framework.grade(overall).rank > framework.grade(auditor_overall).rank)
    if lowered and framework.needs_actions(overall) and not added and not action_errors:
        errors[fr.action_id(1, "what")] = (
            f"Lowering the grade to {framework.grade(overall).label} needs at least one added "
            "action: please add it here.")
    return grades, overall, added, errors


@router.card(RegradeModeration)
async def regrade(request: Request, ask: RegradeModeration) -> Reply:
    services = request.services
    fw = services.framework
    at = services.clock()
    loaded = await _load(request, ask.moderation_id)
    if _stale(loaded) or loaded.row.status != stored.ALLOCATED:
        return await _card(services, request, ask.moderation_id)
    async with services.sessions() as session:
        auditor = {g.domain: g.grade for g in await session.scalars(
            select(DomainGrade).where(DomainGrade.audit_id == loaded.audit.id)
            .order_by(DomainGrade.id))}
        line = LineOfManagement(await audit_store.people_around_case(session, loaded.case))
    owner_ids = frozenset(o.staff_id for o in owners_of(loaded.case, line))
    values = _regrade_values(request.inputs, list(auditor))
    grades, overall, added, errors = check_regrade(
        fw, values, auditor=auditor, auditor_overall=loaded.audit.overall_grade or "",
        outcomes=loaded.audit.outcomes, today_=today(services, at), owner_ids=owner_ids)
    if errors:
        log.info("regrade rejected", extra={"moderation_id": ask.moderation_id,
                                            "errors": len(errors)})
        return await _card(services, request, ask.moderation_id, values=values, errors=errors)
    reason = values[regrade_ids(list(auditor))["reason"]]
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        loaded = await _load(request, ask.moderation_id, work)
        if not _stale(loaded) and await stored.decide(
                work.session, loaded.row, status=stored.REGRADED, by=request.actor, at=at,
                overall=overall, reason=reason,
                domains={d: (auditor[d], grades[d]) for d in auditor}):
            await audit_store.add_actions(work.session, loaded.audit.id, added, at=at,
                                          actor=request.actor)
            await _regraded(services, work, request, loaded, auditor, grades, overall, reason,
                            added)
    return await _card(services, request, ask.moderation_id)


async def _regraded(services: Services, work: Work, request: Request, loaded: _Loaded,
                    auditor: dict[str, str], grades: dict[str, str], overall: str,
                    reason: str, added: list[fr.ActionEntry]) -> None:
    """Who hears of a regrade (the auditor, the people who had the findings, the owners of
    added actions) and what the new final grade means for escalation."""
    fw = services.framework
    audit, case, row = loaded.audit, loaded.case, loaded.row
    tool = fw.tools.get(audit.tool)
    titles = {d.key: d.title for d in tool.domains} if tool else {}
    changes = [(titles.get(d, d), fw.grade_label(auditor[d]), fw.grade_label(grades[d]))
               for d in auditor if auditor[d] != grades[d]]
    moderator = request.staff.name if request.staff else request.actor
    note = messages.moderation_regraded_note(
        moderator, audit.case_ref, fw.grade_label(audit.overall_grade), fw.grade_label(overall),
        changes, reason, len(added))
    line = LineOfManagement(await audit_store.people_around_case(work.session, case))
    told = [audit.submitted_by or audit.auditor_id,
            *(p.staff_id for p, _ in owed_by(case.team_id, case.social_worker_id, line))]
    for sid in dict.fromkeys(told):
        if sid != request.staff_id:
            await work.tell(Message(note, staff_id=sid,
                                    dedupe_key=f"moderation:{row.id}:regraded:{sid}"))
    for n, a in enumerate(added, start=1):
        await work.tell(Message(
            messages.moderation_action_note(moderator, audit.case_ref, a.what, a.due_on),
            staff_id=a.owner_id, dedupe_key=f"moderation:{row.id}:action:{n}"))
    await grade_given(services, work, audit, case, overall, actor=request.actor)
    log.info("moderation regraded", extra={"moderation_id": row.id, "changes": len(changes),
                                           "actions": len(added)})


@router.card(ReturnModeration)
async def give_back(request: Request, ask: ReturnModeration) -> Reply:
    services = request.services
    fw = services.framework
    at = services.clock()
    loaded = await _load(request, ask.moderation_id)
    domain_keys = []
    async with services.sessions() as session:
        domain_keys = [g.domain for g in await session.scalars(
            select(DomainGrade).where(DomainGrade.audit_id == loaded.audit.id))]
    ids = regrade_ids(domain_keys)
    reason = request.inputs.get(ids["return_reason"])
    reason = reason.strip()[:REASON_MAX] if isinstance(reason, str) else ""
    if loaded.row.status == stored.ALLOCATED and not _stale(loaded) and not reason:
        return await _card(services, request, ask.moderation_id, errors={
            ids["return_reason"]: "Please say what needs redoing, for the auditor."})
    deadline = working_deadline(services.calendar, today(services, at),
                                fw.moderation.working_days)
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        loaded = await _load(request, ask.moderation_id, work)
        grades = await _auditor_grades(work, loaded.audit.id)
        # The round keeps the grades it was returned with (calibration counts only agreed
        # and regraded rounds); the audit's own are cleared for the rework.
        if not _stale(loaded) and await stored.decide(
                work.session, loaded.row, status=stored.RETURNED, by=request.actor, at=at,
                reason=reason, domains={d: (g, g) for d, g in grades.items()}):
            audit = loaded.audit
            draft = fr.entries_of(domain_grades=grades,
                                  overall=audit.overall_grade, outcomes=audit.outcomes,
                                  answers=audit.answers, safeguarding=audit.safeguarding_concern)
            auditor_id = audit.submitted_by or audit.auditor_id
            await stored.return_for_rework(work.session, audit, draft=draft, deadline=deadline,
                                           at=at, actor=request.actor)
            kept = await stored.open_action_count(work.session, audit.id)
            moderator = request.staff.name if request.staff else request.actor
            note = messages.returned_for_rework(moderator, reason, deadline, kept)
            body = await form_card(services, work.session, audit, loaded.case, draft, note)
            await work.tell(Message(body, staff_id=auditor_id,
                                    dedupe_key=f"moderation:{loaded.row.id}:returned"))
            log.info("moderation returned", extra={"moderation_id": loaded.row.id})
    return await _card(services, request, ask.moderation_id)


# ---------------------------------------------------------------------------- by hand


@router.command("moderate", usage=messages.MODERATE_USAGE,
                summary="moderate a case's latest audit yourself, or take it over (QA team)",
                roles=[QA_TEAM])
async def moderate_command(request: Request) -> Reply:
    """``moderate CASE_REF``: the QA lead moderates the case's latest submitted audit, one
    the sample could not give to anyone or one waiting with a moderator who cannot do it
    (the round is reassigned). The same independence rules as the sample apply."""
    words = request.args.split()
    if len(words) != 1 or request.staff is None:
        raise Refused(Code.MODERATE_USAGE)
    services, me, case_ref = request.services, request.staff, words[0]
    at = services.clock()
    due = working_deadline(services.calendar, today(services, at),
                           services.framework.moderation.working_days)
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        audit = await work.session.scalar(
            select(Audit).where(Audit.case_ref == case_ref,
                                Audit.status.in_(("submitted", "returned")))
            .order_by(Audit.allocated_at.desc(), Audit.id.desc()).limit(1))
        if audit is None or audit.status != "submitted":
            raise NotFound(Code.MODERATE_NO_AUDIT, case_ref=case_ref)
        latest = await stored.latest_round(work.session, audit.id)
        if latest is not None and latest.status != stored.ALLOCATED:
            raise Conflict(Code.MODERATE_DONE, case_ref=case_ref,
                           state=messages.MODERATION_STATES.get(latest.status, latest.status))
        case = await work.session.get(Case, audit.case_ref)
        assert case is not None
        row = stored.CandidateRow(audit.id, audit.case_ref, case.team_id, case.social_worker_id,
                                  audit.auditor_id, audit.submitted_by, audit.delegate_id,
                                  audit.overall_grade or "")
        line = LineOfManagement(await people(work.session))
        if me.staff_id in _excluded(row, line, [me.staff_id]):
            raise NotAllowed(Code.MODERATE_NOT_INDEPENDENT, case_ref=case_ref)
        before = None
        if latest is None:
            month = (audit.submitted_at or at).astimezone(services.framework.zone)
            run = await insert_run(work.session, key=f"moderation:by-hand:{audit.id}",
                                   kind="moderation", month=f"{month:%Y-%m}", seed=0, at=at,
                                   actor=request.actor, deadline=due, summary={"by_hand": 1})
            ids = await stored.insert_round(work.session, run.id,
                                            [(audit.id, me.staff_id, audit.overall_grade)],
                                            round_=1, at=at, due_on=due, actor=request.actor)
            moderation_id = ids[audit.id]
        else:
            moderation_id = latest.id
            if latest.moderator_id != me.staff_id:
                holder = await work.session.get(Staff, latest.moderator_id)
                before = holder.name if holder else latest.moderator_id
                await stored.reassign(work.session, latest, me.staff_id, due_on=due, at=at,
                                      actor=request.actor)
    log.info("moderation taken by hand", extra={"moderation_id": moderation_id,
                                                "reassigned": before is not None})
    loaded = await _load(request, moderation_id)
    async with services.sessions() as session:
        card = moderation_card(await _view(services, session, loaded))
    return Reply(messages=[messages.moderation_taken(case_ref, loaded.row.due_on, before), card])


# ---------------------------------------------------------------------------- resubmission


async def on_audit_submitted(services: Services, work: Work, done: Submitted) -> list[str]:
    """A resubmission after a return is moderated again, by the same moderator."""
    if not done.audit.reworks:
        return []
    back = await stored.latest_round(work.session, done.audit.id)
    if back is None or back.status != stored.RETURNED:
        return []
    due = working_deadline(services.calendar, today(services, work.at),
                           services.framework.moderation.working_days)
    ids = await stored.insert_round(work.session, back.run_id,
                                    [(done.audit.id, back.moderator_id, done.submission.overall)],
                                    round_=back.round + 1, at=work.at, due_on=due,
                                    actor=done.actor)
    moderator = await work.session.get(Staff, back.moderator_id)
    items = (await _items(services, work, list(ids.values()))).get(back.moderator_id, [])
    view = InviteView(services.framework.authority, moderator.name if moderator else "",
                      messages.moderation_again_heading(done.audit.case_ref), tuple(items))
    await work.tell(Message(invite_card(view), staff_id=back.moderator_id,
                            dedupe_key=f"moderation:{done.audit.id}:r{back.round + 1}"))
    return [messages.moderation_queued(moderator.name if moderator else back.moderator_id, due)]


# ---------------------------------------------------------------------------- chasing


async def moderation_reminders(services: Services, at: datetime) -> str:
    """Remind moderators before their due date; tell their line manager once it passes
    (the QA team when they have none). Working days only; dedupe keys make replays send
    nothing twice."""
    fw, cal = services.framework, services.calendar
    day = today(services, at)
    if not cal.is_working_day(day):
        return f"{day.isoformat()} is not a working day: no moderation reminders"
    target = cal.add_working_days(day, fw.reminder_working_days_before)
    reminders = notes = 0
    async with unit_of_work(services, at=at, actor="job:moderation_reminders") as work:
        due = await stored.pending(work.session, due_on=target)
        by_moderator: dict[str, list[int]] = defaultdict(list)
        for p in due:
            by_moderator[p.moderator_id].append(p.moderation_id)
        items = await _items(services, work, [p.moderation_id for p in due]) if due else {}
        names = {p.moderator_id: p.moderator_name for p in due}
        for sid in sorted(by_moderator):
            view = InviteView(fw.authority, names[sid], messages.moderation_reminder_heading(
                target), tuple(items.get(sid, [])))
            if await work.tell(Message(invite_card(view), staff_id=sid,
                                       dedupe_key=f"moderation:reminder:{sid}:{target}")):
                reminders += 1
        late = await stored.pending(work.session, before=day)
        line = LineOfManagement(await people(work.session)) if late else None
        qa = [s.staff_id for s in await staff_with_roles(work.session, fw.qa_roles)] if late else []
        grouped: dict[tuple[str, str, date], list[str]] = defaultdict(list)
        for p in late:
            manager = line.manager_of(p.moderator_id) if line is not None else None
            for who in ([manager.staff_id] if manager is not None else qa):
                grouped[(who, p.moderator_name, p.due_on)].append(p.case_ref)
        for (who, moderator, due_on), refs in sorted(grouped.items()):
            if await work.tell(Message(
                    messages.moderation_overdue_note([(moderator, due_on, refs)]), staff_id=who,
                    dedupe_key=f"moderation:overdue:{who}:{moderator}:{due_on}")):
                notes += 1
    return (f"{day.isoformat()}: {reminders} moderation reminder(s) for {target.isoformat()}, "
            f"{notes} note(s) about {len(late)} overdue moderation(s)")


# ---------------------------------------------------------------------------- calibration


async def calibration(services: Services, *, since: date) -> CalibrationView:
    """Agreement between each auditor and the moderators, per domain and overall."""
    fw = services.framework
    titles = {d.key: d.title for t in fw.tools.values() for d in t.domains}
    rank = {g.key: g.rank for g in fw.grades}
    async with services.sessions() as session:
        rows = await stored.calibration(session, rank, since=local_midnight_utc(since, fw.zone))
        ids = {c.auditor_id for c in rows}
        names = {s.staff_id: s.name for s in await session.scalars(
            select(Staff).where(Staff.staff_id.in_(ids)))}
    auditors: dict[str, list[rules.Calibration]] = defaultdict(list)
    for c in rows:
        auditors[c.auditor_id].append(c)
    out = []
    for sid, items in auditors.items():
        audits = max(c.audits for c in items)
        out.append(CalibrationAuditor(
            names.get(sid, sid), audits, audits >= rules.CALIBRATION_MIN,
            tuple(CalibrationRow("Overall" if c.domain == rules.OVERALL
                                 else titles.get(c.domain, c.domain), c.audits, c.agreement,
                                 c.tendency) for c in items)))
    return CalibrationView(since, rules.CALIBRATION_MIN,
                           tuple(sorted(out, key=lambda a: a.name)))


@router.command("calibration", usage="calibration [months]",
                summary="how often moderators agree with each auditor, per domain (QA team)",
                roles=[QA_TEAM])
async def calibration_command(request: Request) -> Reply:
    services = request.services
    words = request.args.split()
    months = int(words[0]) if words and words[0].isdigit() and 0 < int(words[0]) <= 120 else 12
    since = add_months(today(services, services.clock()), -months)
    view = await calibration(services, since=since)
    log.info("calibration shown", extra={"staff_id": request.actor,
                                         "auditors": len(view.auditors)})
    return Reply(messages=list(calibration_cards(view)))


jobs = (
    Job("moderation", "monthly moderation sample of last month's audits (from the allocation "
        "working day on)", moderation_job, lambda s: s.allocation_time),
    Job("moderation_reminders", "reminders before a moderation is due, manager notes after it",
        moderation_reminders, lambda s: s.daily_time),
)
