"""Audits from the form's point of view: open, save a draft, submit, delegate (SPEC R5).

Speaks in domain terms and raises store.errors with messages safe to show. Every change
writes an audit-log entry in the same transaction. Submitting is idempotent and safe
under concurrency: a conditional UPDATE on the status lets exactly one submit win, on
SQLite and PostgreSQL alike, and a replay returns the stored result and creates nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from qa.form_rules import Submission
from store.audit_log import record
from store.errors import Conflict, NotAllowed, NotFound
from store.models import Audit, AuditAction, Case, DomainGrade, Staff, utcnow
from store.outbox import queue_in

SUBMITTED: Final = "submitted"
#: Audits in these states are finished (or withdrawn) and no longer take a delegate.
CLOSED_STATUSES: Final = frozenset({SUBMITTED, "cancelled"})

NOT_YOURS: Final = ("This audit is allocated to someone else, so only they (or a delegate "
                    "named by the QA team) can open, save or submit it. Nothing was changed.")


@dataclass(frozen=True)
class Owner:
    """Someone who may own an action on the case, and why."""

    staff_id: str
    name: str
    relation: str  # social_worker | manager | team_manager


@dataclass(frozen=True)
class FormContext:
    """What the form needs: the audit, its case, who may act and who may own actions."""

    audit: Audit
    case: Case
    allowed: bool
    owners: tuple[Owner, ...]

    @property
    def submitted(self) -> bool:
        return self.audit.status == SUBMITTED

    @property
    def owner_ids(self) -> frozenset[str]:
        return frozenset(o.staff_id for o in self.owners)


@dataclass(frozen=True)
class SubmittedAudit:
    """A submitted audit as stored, with the names the summary shows."""

    audit: Audit
    grades: dict[str, str]  # domain key -> grade key
    actions: tuple[AuditAction, ...]
    names: dict[str, str]  # staff id -> name, for action owners and the submitter


@dataclass(frozen=True)
class SubmitOutcome:
    """``created`` is False when the audit had already been submitted (a replay)."""

    created: bool
    result: SubmittedAudit


@dataclass(frozen=True)
class Delegation:
    """A delegate named for a case's open audit; ``changed`` False when already so."""

    audit: Audit
    case: Case
    delegate: Staff
    auditor: Staff | None
    changed: bool


Compose = Callable[[Delegation], Sequence[tuple[str, str | dict[str, Any]]]]


async def _audit_for(session: AsyncSession, audit_id: int, actor: str | None) -> Audit:
    """The audit the actor is changing: NotFound, or NotAllowed unless it is theirs."""
    audit = await session.get(Audit, audit_id)
    if audit is None:
        raise NotFound("I cannot find that audit.")
    if not _may_act(audit, actor):
        raise NotAllowed(NOT_YOURS)
    return audit


def _may_act(audit: Audit, actor_staff_id: str | None) -> bool:
    return actor_staff_id is not None and actor_staff_id in (audit.auditor_id, audit.delegate_id)


class AuditStore:
    """Reads and changes audits for the form and the delegate command."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 qa_roles: frozenset[str] = frozenset()) -> None:
        self._sessions = sessions
        self._qa_roles = qa_roles

    # ---------------------------------------------------------------- reading

    async def load_for_form(self, audit_id: int, actor_staff_id: str | None) -> FormContext:
        """The audit, its case and the action owners; ``allowed`` says if the actor may act."""
        async with self._sessions() as session:
            audit = await session.get(Audit, audit_id)
            if audit is None:
                raise NotFound("I cannot find that audit. It may have been withdrawn; "
                               "ask the QA team if you think it should be there.")
            case = await session.get(Case, audit.case_ref)
            if case is None:  # the foreign key makes this a broken database, not user error
                raise NotFound("I cannot find the case for that audit; please tell the QA team.")
            owners = await self._owners(session, case)
            return FormContext(audit, case, _may_act(audit, actor_staff_id), owners)

    async def _owners(self, session: AsyncSession, case: Case) -> tuple[Owner, ...]:
        """The case's social worker, their manager, then the case team's team managers."""
        found: dict[str, Owner] = {}
        worker = await session.get(Staff, case.social_worker_id) if case.social_worker_id else None
        manager_id = worker.manager_id if worker is not None and worker.active else None
        # The manager and the case team's staff in one query.
        people = {s.staff_id: s for s in await session.scalars(
            select(Staff)
            .where(Staff.active.is_(True),
                   or_(Staff.team_id == case.team_id, Staff.staff_id == (manager_id or "")))
            .order_by(Staff.name, Staff.staff_id))}
        if worker is not None and worker.active:
            found[worker.staff_id] = Owner(worker.staff_id, worker.name, "social_worker")
            manager = people.get(manager_id or "")
            if manager is not None:
                found.setdefault(manager.staff_id, Owner(manager.staff_id, manager.name, "manager"))
        for staff in people.values():
            if staff.team_id == case.team_id and "team_manager" in (staff.roles or []):
                found.setdefault(staff.staff_id, Owner(staff.staff_id, staff.name, "team_manager"))
        return tuple(found.values())

    async def submitted(self, audit_id: int) -> SubmittedAudit:
        """A submitted audit with its grades, actions and the names to show."""
        async with self._sessions() as session:
            audit = await session.get(Audit, audit_id)
            if audit is None or audit.status != SUBMITTED:
                raise NotFound("That audit has not been submitted.")
            grades = {g.domain: g.grade for g in await session.scalars(
                select(DomainGrade).where(DomainGrade.audit_id == audit_id)
                .order_by(DomainGrade.id))}
            actions = tuple(await session.scalars(
                select(AuditAction).where(AuditAction.audit_id == audit_id)
                .order_by(AuditAction.seq)))
            ids = {a.owner_id for a in actions} | {audit.submitted_by or ""}
            names = {s.staff_id: s.name for s in await session.scalars(
                select(Staff).where(Staff.staff_id.in_(ids)))}
            return SubmittedAudit(audit, grades, actions, names)

    # ---------------------------------------------------------------- changing

    async def save_draft(self, audit_id: int, actor: str | None,
                         values: dict[str, str]) -> datetime:
        """Keep the form's entries for later; returns when it was saved."""
        now = utcnow()
        async with self._sessions.begin() as session:
            await _audit_for(session, audit_id, actor)
            result = await session.execute(
                update(Audit)
                .where(Audit.id == audit_id, Audit.status != SUBMITTED)
                .values(draft=dict(values), draft_saved_at=now, version=Audit.version + 1)
                .execution_options(synchronize_session=False))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise Conflict("This audit has already been submitted, so the draft was not saved.")
            record(session, actor=str(actor), action="audit.draft_saved", entity="audit",
                   entity_id=str(audit_id), after={"fields": sorted(values)})
        return now

    async def submit(self, audit_id: int, actor: str | None,
                     submission: Submission) -> SubmitOutcome:
        """Record the audit once; a replay or the loser of a race gets created=False."""
        created = await self._submit_once(audit_id, actor, submission)
        return SubmitOutcome(created, await self.submitted(audit_id))

    async def _submit_once(self, audit_id: int, actor: str | None,
                           submission: Submission) -> bool:
        async with self._sessions.begin() as session:
            audit = await _audit_for(session, audit_id, actor)
            assert actor is not None
            if audit.status == SUBMITTED:
                return False
            before = {"status": audit.status}
            now = utcnow()
            result = await session.execute(
                update(Audit)
                .where(Audit.id == audit_id, Audit.status != SUBMITTED)
                .values(status=SUBMITTED, submitted_at=now, submitted_by=actor,
                        overall_grade=submission.overall, outcomes=submission.outcomes,
                        answers=submission.answers(),
                        safeguarding_concern=submission.safeguarding,
                        draft=None, version=Audit.version + 1)
                .execution_options(synchronize_session=False))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False  # another submit won the race; this transaction wrote nothing
            # One executemany per table rather than a statement per row.
            await session.execute(insert(DomainGrade), [
                {"audit_id": audit_id, "domain": domain, "grade": grade}
                for domain, grade in submission.domain_grades.items()])
            action_rows = [{"audit_id": audit_id, "seq": a.seq, "what": a.what,
                            "owner_id": a.owner_id, "due_on": a.due_on,
                            "priority": a.priority, "status": "open", "created_at": now}
                           for a in submission.actions]
            action_ids = list((await session.scalars(
                insert(AuditAction).returning(AuditAction.id, sort_by_parameter_order=True),
                action_rows)).all()) if action_rows else []
            record(session, actor=actor, action="audit.submitted", entity="audit",
                   entity_id=str(audit_id), before=before,
                   after={"status": SUBMITTED, "overall_grade": submission.overall,
                          "outcomes": submission.outcomes,
                          "domain_grades": dict(submission.domain_grades),
                          "actions": len(action_rows),
                          "safeguarding_concern": submission.safeguarding})
            for action_id, row in zip(action_ids, action_rows, strict=True):
                record(session, actor=actor, action="action.created", entity="audit_action",
                       entity_id=str(action_id),
                       after={"audit_id": audit_id, "seq": row["seq"],
                              "owner_id": row["owner_id"], "due_on": row["due_on"].isoformat(),
                              "priority": row["priority"]})
            if submission.safeguarding:
                await self._alert_safeguarding(session, audit, actor, submission)
            return True

    async def _alert_safeguarding(self, session: AsyncSession, audit: Audit, actor: str,
                                  submission: Submission) -> None:
        """SPEC R6: the case's team manager(s), and their managers, are told at once, 1:1.

        Queued in the submit's own transaction, so a recorded concern is never left
        unannounced. With nobody to tell, the QA team is told instead.
        """
        case = await session.get(Case, audit.case_ref)
        assert case is not None
        staff = {s.staff_id: s for s in await session.scalars(
            select(Staff).where(Staff.active.is_(True)))}
        managers = {s.staff_id for s in staff.values()
                    if s.team_id == case.team_id and "team_manager" in (s.roles or [])}
        worker = staff.get(case.social_worker_id or "")
        if worker is not None and worker.manager_id in staff:
            managers.add(worker.manager_id)
        seniors = {staff[m].manager_id for m in managers
                   if staff[m].manager_id in staff} - managers
        recipients = sorted(managers | seniors) or sorted(
            s.staff_id for s in staff.values() if self._qa_roles.intersection(s.roles or []))
        auditor = staff.get(actor)
        text = (f"**Serious safeguarding concern** raised in the audit of case {case.case_ref} "
                f"by {auditor.name if auditor else 'the auditor'}: "
                f"{submission.safeguarding_details}\n\nPlease act on it now and record what "
                "was done on the child's record.")
        for staff_id in recipients:
            await queue_in(session, staff_id=staff_id, message=text,
                           dedupe_key=f"safeguarding:{audit.id}:{staff_id}")
        record(session, actor=actor, action="safeguarding.alerted", entity="audit",
               entity_id=str(audit.id), after={"recipients": recipients})

    async def delegate(self, case_ref: str, delegate_email: str, actor: str | None, *,
                       compose: Compose | None = None) -> Delegation:
        """A QA lead names who may do the case's open audit besides its auditor.

        ``compose`` (pure) returns the (staff id, message) pairs to queue in the same
        transaction, so the delegate is told exactly when the change is made.
        """
        async with self._sessions.begin() as session:
            lead = await session.get(Staff, actor) if actor else None
            if lead is None or not self._qa_roles.intersection(lead.roles or []):
                raise NotAllowed("Only the QA team can name a delegate for an audit.")
            case = await session.get(Case, case_ref)
            if case is None:
                raise NotFound(f"I cannot find case {case_ref}.")
            audit = await session.scalar(
                select(Audit)
                .where(Audit.case_ref == case_ref, Audit.status.not_in(CLOSED_STATUSES))
                .order_by(Audit.allocated_at.desc(), Audit.id.desc()).limit(1))
            if audit is None:
                raise NotFound(f"Case {case_ref} has no audit waiting to be done.")
            delegate = await session.scalar(
                select(Staff).where(func.lower(Staff.email) == delegate_email.strip().lower(),
                                    Staff.active.is_(True)).order_by(Staff.staff_id).limit(1))
            if delegate is None:
                raise NotFound(f"No current member of staff has the email {delegate_email}.")
            if delegate.staff_id == audit.auditor_id:
                raise Conflict(f"{delegate.name} is already the auditor for this case.")
            if delegate.staff_id == case.social_worker_id or delegate.team_id == case.team_id:
                raise NotAllowed(f"{delegate.name} works on this case's team, and nobody "
                                 "audits their own team's cases. Please name someone else.")
            auditor = await session.get(Staff, audit.auditor_id)
            changed = audit.delegate_id != delegate.staff_id
            if changed:
                before = {"delegate_id": audit.delegate_id}
                audit.delegate_id = delegate.staff_id
                audit.version = (audit.version or 0) + 1
                record(session, actor=str(actor), action="audit.delegated", entity="audit",
                       entity_id=str(audit.id), before=before,
                       after={"delegate_id": delegate.staff_id})
            outcome = Delegation(audit, case, delegate, auditor, changed)
            if changed and compose is not None:
                for staff_id, message in compose(outcome):
                    await queue_in(session, staff_id=staff_id, message=message)
            return outcome
