"""Audits as stored: load for the form, save a draft, submit, name a delegate (SPEC R5).

Persistence only: every function works inside the caller's transaction (the flow owns it,
so its audit-log rows and outbox messages commit with the change), takes its time from
the caller, and raises :mod:`qa.errors` codes, never sentences. Who may act and who is told
are the flow's decisions.

Submitting is idempotent and safe under concurrency: a conditional UPDATE on the status
lets exactly one submit win, on SQLite and PostgreSQL alike; the loser writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from qa.errors import Code, NotFound
from qa.form_rules import ActionEntry, Submission
from qa.people import Person
from store.audit_log import record
from store.directory import as_person, line_above
from store.models import Audit, AuditAction, Case, DomainGrade, Staff

SUBMITTED: Final = "submitted"
#: Audits in these states are finished (or withdrawn) and no longer take a delegate.
CLOSED_STATUSES: Final = frozenset({SUBMITTED, "cancelled"})


@dataclass(frozen=True)
class SubmittedAudit:
    """A submitted audit as stored, with the names the summary shows."""

    audit: Audit
    grades: dict[str, str]  # domain key -> grade key
    actions: tuple[AuditAction, ...]
    names: dict[str, str]  # staff id -> name, for action owners and the submitter


async def audit_and_case(session: AsyncSession, audit_id: int) -> tuple[Audit, Case]:
    """An audit and its case, or NotFound."""
    audit = await session.get(Audit, audit_id)
    if audit is None:
        raise NotFound(Code.AUDIT_NOT_FOUND)
    case = await session.get(Case, audit.case_ref)
    if case is None:  # the foreign key makes this a broken database, not user error
        raise NotFound(Code.AUDIT_CASE_MISSING)
    return audit, case


async def people_around_case(session: AsyncSession, case: Case, *,
                             levels_above: int = 2) -> list[Person]:
    """The case team's staff, its social worker, and ``levels_above`` levels of managers
    above the social worker and the team's managers.

    Enough for the line of management to answer "who manages this case" (and "who is
    above them") in a few queries, without loading the whole council on a click.
    """
    team = [as_person(s) for s in await session.scalars(
        select(Staff).where(or_(Staff.team_id == case.team_id,
                                Staff.staff_id == (case.social_worker_id or ""))))]
    starts = [p.manager_id for p in team
              if p.manager_id and (p.staff_id == case.social_worker_id
                                   or p.has("team_manager"))]
    above = await line_above(session, starts, levels=levels_above - 1) if starts else []
    return list({p.staff_id: p for p in [*team, *above]}.values())


async def submitted_audit(session: AsyncSession, audit_id: int) -> SubmittedAudit:
    """A submitted audit with its grades, actions and the names to show."""
    audit = await session.get(Audit, audit_id)
    if audit is None or audit.status != SUBMITTED:
        raise NotFound(Code.AUDIT_NOT_SUBMITTED)
    grades = {g.domain: g.grade for g in await session.scalars(
        select(DomainGrade).where(DomainGrade.audit_id == audit_id).order_by(DomainGrade.id))}
    actions = tuple(await session.scalars(
        select(AuditAction).where(AuditAction.audit_id == audit_id,
                                  AuditAction.status != "cancelled").order_by(AuditAction.seq)))
    ids = {a.owner_id for a in actions} | {audit.submitted_by or ""}
    names = {s.staff_id: s.name for s in await session.scalars(
        select(Staff).where(Staff.staff_id.in_(ids)))}
    return SubmittedAudit(audit, grades, actions, names)


async def save_draft(session: AsyncSession, audit_id: int, values: dict[str, str], *,
                     actor: str, at: datetime) -> bool:
    """Keep the form's entries for later; False (nothing written) once it is submitted."""
    result = await session.execute(
        update(Audit)
        .where(Audit.id == audit_id, Audit.status != SUBMITTED)
        .values(draft=dict(values), draft_saved_at=at, version=Audit.version + 1)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record(session, at=at, actor=actor, action="audit.draft_saved", entity="audit",
           entity_id=str(audit_id), after={"fields": sorted(values)})
    return True


async def submit(session: AsyncSession, audit: Audit, submission: Submission, *, actor: str,
                 at: datetime) -> list[int] | None:
    """Record the audit once, returning its new actions' ids; None when it was already
    submitted (nothing written)."""
    if audit.status == SUBMITTED:
        return None
    before = {"status": audit.status}
    result = await session.execute(
        update(Audit)
        .where(Audit.id == audit.id, Audit.status != SUBMITTED)
        .values(status=SUBMITTED, submitted_at=at, submitted_by=actor,
                overall_grade=submission.overall, outcomes=submission.outcomes,
                answers=submission.answers(), safeguarding_concern=submission.safeguarding,
                draft=None, version=Audit.version + 1)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None  # another submit won the race; this transaction wrote nothing
    await session.refresh(audit)  # what follows a submit reads it back in this transaction
    # One executemany per table rather than a statement per row.
    await session.execute(insert(DomainGrade), [
        {"audit_id": audit.id, "domain": domain, "grade": grade}
        for domain, grade in submission.domain_grades.items()])
    record(session, at=at, actor=actor, action="audit.submitted", entity="audit",
           entity_id=str(audit.id), before=before,
           after={"status": SUBMITTED, "overall_grade": submission.overall,
                  "outcomes": submission.outcomes,
                  "domain_grades": dict(submission.domain_grades),
                  "actions": len(submission.actions),
                  "safeguarding_concern": submission.safeguarding})
    return await add_actions(session, audit.id, submission.actions, at=at, actor=actor)


async def add_actions(session: AsyncSession, audit_id: int, entries: Sequence[ActionEntry], *,
                      at: datetime, actor: str) -> list[int]:
    """Record an audit's actions (on submit, or added by a moderator's regrade), numbered
    after any it has already (a resubmission after rework keeps those); their ids."""
    if not entries:
        return []
    base = int(await session.scalar(select(func.coalesce(func.max(AuditAction.seq), 0))
                                    .where(AuditAction.audit_id == audit_id)) or 0)
    action_rows: list[dict[str, Any]] = [
        {"audit_id": audit_id, "seq": base + a.seq, "what": a.what, "owner_id": a.owner_id,
         "due_on": a.due_on, "first_due_on": a.due_on, "priority": a.priority,
         "status": "open", "created_at": at, "step": -1}
        for a in entries]
    action_ids = list((await session.scalars(
        insert(AuditAction).returning(AuditAction.id, sort_by_parameter_order=True),
        action_rows)).all())
    for action_id, row in zip(action_ids, action_rows, strict=True):
        record(session, at=at, actor=actor, action="action.created", entity="audit_action",
               entity_id=str(action_id),
               after={"audit_id": audit_id, "seq": row["seq"], "owner_id": row["owner_id"],
                      "due_on": row["due_on"].isoformat(), "priority": row["priority"]})
    return [int(i) for i in action_ids]


async def open_audit_of_case(session: AsyncSession, case_ref: str) -> tuple[Case, Audit]:
    """A case and its latest audit still to be done; NotFound names which is missing."""
    case = await session.get(Case, case_ref)
    if case is None:
        raise NotFound(Code.CASE_NOT_FOUND, case_ref=case_ref)
    audit = await session.scalar(
        select(Audit)
        .where(Audit.case_ref == case_ref, Audit.status.not_in(CLOSED_STATUSES))
        .order_by(Audit.allocated_at.desc(), Audit.id.desc()).limit(1))
    if audit is None:
        raise NotFound(Code.DELEGATE_NO_OPEN_AUDIT, case_ref=case_ref)
    return case, audit


async def active_staff_by_email(session: AsyncSession, email: str) -> Staff:
    """The current member of staff with this email (case-insensitive), or NotFound."""
    staff = await session.scalar(
        select(Staff).where(func.lower(Staff.email) == email.strip().lower(),
                            Staff.active.is_(True)).order_by(Staff.staff_id).limit(1))
    if staff is None:
        raise NotFound(Code.STAFF_EMAIL_UNKNOWN, email=email)
    return staff


async def set_delegate(session: AsyncSession, audit: Audit, delegate_id: str, *, actor: str,
                       at: datetime) -> bool:
    """Name who may do the audit besides its auditor; False when they already may."""
    if audit.delegate_id == delegate_id:
        return False
    before = {"delegate_id": audit.delegate_id}
    audit.delegate_id = delegate_id
    audit.version = (audit.version or 0) + 1
    record(session, at=at, actor=actor, action="audit.delegated", entity="audit",
           entity_id=str(audit.id), before=before, after={"delegate_id": delegate_id})
    return True
