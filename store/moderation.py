"""Moderation as stored (SPEC R10): the month's candidates, rounds allocated to moderators,
decisions, returning an audit for rework, and what calibration reads.

Persistence only, inside the caller's transaction, with time from the caller. A decision is
a conditional UPDATE on the round still being ``allocated``, so a double click or two
moderators at once decide it once. Who may decide, and who is told, is the flow's choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from sqlalchemy import case, delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from qa.errors import Code, NotFound
from qa.moderation import OVERALL, Calibration
from store.audit_log import record
from store.grading import clear_regrade, record_regrade
from store.models import (
    Audit,
    AuditAction,
    Case,
    DomainGrade,
    Moderation,
    ModerationDomain,
    Staff,
)

__all__ = [
    "ALLOCATED",
    "AGREED",
    "DECIDED",
    "REGRADED",
    "RETURNED",
    "CandidateRow",
    "PendingModeration",
    "candidates",
    "decide",
    "calibration",
    "insert_round",
    "latest_round",
    "moderation",
    "open_action_count",
    "pending",
    "reassign",
    "return_for_rework",
]

ALLOCATED: Final = "allocated"
AGREED: Final = "agreed"
REGRADED: Final = "regraded"
RETURNED: Final = "returned"
#: Decided rounds whose grades stand (a returned round has no moderated grades).
DECIDED: Final = (AGREED, REGRADED)


@dataclass(frozen=True)
class CandidateRow:
    """A submitted audit not yet moderated, with the people it concerns."""

    audit_id: int
    case_ref: str
    case_team_id: int
    social_worker_id: str | None
    auditor_id: str
    submitted_by: str | None
    delegate_id: str | None
    overall: str


async def candidates(session: AsyncSession, start: datetime, end: datetime) -> list[CandidateRow]:
    """Audits submitted in [start, end) that stand (status submitted) and have never been
    moderated (a resubmission after a return is moderated by its own round, not sampled)."""
    moderated = select(Moderation.id).where(Moderation.audit_id == Audit.id).exists()
    rows = await session.execute(
        select(Audit.id, Audit.case_ref, Case.team_id, Case.social_worker_id, Audit.auditor_id,
               Audit.submitted_by, Audit.delegate_id, Audit.overall_grade)
        .join(Case, Case.case_ref == Audit.case_ref)
        .where(Audit.status == "submitted", Audit.submitted_at >= start,
               Audit.submitted_at < end, Audit.overall_grade.is_not(None), ~moderated)
        .order_by(Audit.id))
    return [CandidateRow(*row) for row in rows.all()]


async def insert_round(session: AsyncSession, run_id: int,
                       rows: Sequence[tuple[int, str, str | None]], *, round_: int,
                       at: datetime, due_on: date, actor: str) -> dict[int, int]:
    """Allocate (audit id, moderator id, auditor's overall grade) rows; audit id -> round id."""
    if not rows:
        return {}
    ids = (await session.scalars(
        insert(Moderation).returning(Moderation.id, sort_by_parameter_order=True),
        [{"run_id": run_id, "audit_id": audit_id, "round": round_, "moderator_id": moderator,
          "status": ALLOCATED, "allocated_at": at, "due_on": due_on,
          "auditor_overall": overall} for audit_id, moderator, overall in rows])).all()
    out = {}
    for (audit_id, moderator, _), mid in zip(rows, ids, strict=True):
        out[audit_id] = int(mid)
        record(session, at=at, actor=actor, action="moderation.allocated", entity="moderation",
               entity_id=str(mid), after={"audit_id": audit_id, "round": round_,
                                          "moderator_id": moderator,
                                          "due_on": due_on.isoformat()})
    return out


async def moderation(session: AsyncSession, moderation_id: int) -> Moderation:
    found = await session.get(Moderation, moderation_id)
    if found is None:
        raise NotFound(Code.MODERATION_NOT_FOUND)
    return found


async def latest_round(session: AsyncSession, audit_id: int) -> Moderation | None:
    """The audit's latest moderation round, if it has been sampled."""
    return await session.scalar(select(Moderation).where(Moderation.audit_id == audit_id)
                                .order_by(Moderation.round.desc()).limit(1))


async def decide(session: AsyncSession, row: Moderation, *, status: str, by: str, at: datetime,
                 overall: str | None = None, reason: str | None = None,
                 domains: Mapping[str, tuple[str, str]] | None = None) -> bool:
    """Record the round's decision once; False (nothing written) when it was decided before.

    ``domains`` maps each domain to (auditor's grade, moderator's grade).
    """
    result = await session.execute(
        update(Moderation)
        .where(Moderation.id == row.id, Moderation.status == ALLOCATED)
        .values(status=status, decided_at=at, decided_by=by, overall_grade=overall,
                reason=reason)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.refresh(row)
    if domains:
        await session.execute(insert(ModerationDomain), [
            {"moderation_id": row.id, "domain": d, "auditor_grade": a, "moderator_grade": m}
            for d, (a, m) in domains.items()])
    if status == REGRADED and overall is not None:
        await record_regrade(session, row.audit_id, overall,
                             {d: m for d, (_, m) in (domains or {}).items()})
    changed = {d: list(g) for d, g in (domains or {}).items() if g[0] != g[1]}
    record(session, at=at, actor=by, action=f"moderation.{status}", entity="moderation",
           entity_id=str(row.id), before={"status": ALLOCATED},
           after={"status": status, "audit_id": row.audit_id, "round": row.round,
                  "auditor_overall": row.auditor_overall, "overall_grade": overall,
                  "domains_changed": changed})
    return True


async def reassign(session: AsyncSession, row: Moderation, moderator_id: str, *,
                   due_on: date, at: datetime, actor: str) -> None:
    """Give a round still to decide to another moderator, with a new due date."""
    before = {"moderator_id": row.moderator_id, "due_on": row.due_on.isoformat()}
    row.moderator_id = moderator_id
    row.due_on = due_on
    record(session, at=at, actor=actor, action="moderation.reassigned", entity="moderation",
           entity_id=str(row.id), before=before,
           after={"moderator_id": moderator_id, "due_on": due_on.isoformat()})


async def return_for_rework(session: AsyncSession, audit: Audit, *, draft: dict[str, str],
                            deadline: date, at: datetime, actor: str) -> None:
    """Put a submitted audit back in its auditor's hands: not submitted, its grades cleared
    (the round keeps the auditor's), the form's entries kept as a draft, a new deadline.

    Its actions stay open with their owners: they were told of them and the work for the
    child does not wait for the rework.
    """
    before = {"status": audit.status, "overall_grade": audit.overall_grade,
              "deadline": audit.deadline.isoformat()}
    await session.execute(delete(DomainGrade).where(DomainGrade.audit_id == audit.id))
    audit.status = "returned"
    clear_regrade(audit)
    audit.submitted_at = None
    audit.overall_grade = None
    audit.draft = dict(draft)
    audit.draft_saved_at = None
    audit.deadline = deadline
    audit.reworks = (audit.reworks or 0) + 1
    audit.version = (audit.version or 0) + 1
    record(session, at=at, actor=actor, action="audit.returned", entity="audit",
           entity_id=str(audit.id), before=before,
           after={"status": "returned", "deadline": deadline.isoformat(),
                  "reworks": audit.reworks})


async def open_action_count(session: AsyncSession, audit_id: int) -> int:
    """The audit's actions that are not cancelled (kept through a rework)."""
    return int(await session.scalar(
        select(func.count()).select_from(AuditAction)
        .where(AuditAction.audit_id == audit_id, AuditAction.status != "cancelled")) or 0)


@dataclass(frozen=True)
class PendingModeration:
    """A round still to decide, with what a reminder or a manager note needs."""

    moderation_id: int
    audit_id: int
    case_ref: str
    round: int
    moderator_id: str
    moderator_name: str
    due_on: date


async def pending(session: AsyncSession, *, due_on: date | None = None,
                  before: date | None = None) -> list[PendingModeration]:
    """Undecided rounds due on a day, or overdue (due before a day)."""
    stmt = (select(Moderation.id, Moderation.audit_id, Audit.case_ref, Moderation.round,
                   Moderation.moderator_id, Staff.name, Moderation.due_on)
            .join(Audit, Audit.id == Moderation.audit_id)
            .join(Staff, Staff.staff_id == Moderation.moderator_id)
            .where(Moderation.status == ALLOCATED)
            .order_by(Moderation.moderator_id, Audit.case_ref))
    if due_on is not None:
        stmt = stmt.where(Moderation.due_on == due_on)
    if before is not None:
        stmt = stmt.where(Moderation.due_on < before)
    return [PendingModeration(*row) for row in (await session.execute(stmt)).all()]


async def calibration(session: AsyncSession, ranks: Mapping[str, int], *,
                      since: datetime | None = None,
                      audit_months: tuple[str | None, str | None] = (None, None)
                      ) -> list[Calibration]:
    """Per grader (who submitted the audit) and domain, with the overall grade as the domain
    ``overall``: moderated audits, grades, how many the moderator agreed with, and how many
    the grader put higher (a better grade, a lower rank) or lower than the moderator.

    Decided rounds only (agreed or regraded), decided from ``since``, of audits allocated in
    the months [audit_months); grades the framework no longer has are left out. Counted in
    the database (GROUP BY), so it costs the same memory whatever the history.
    """
    if not ranks:  # no scale to compare grades on (an export without a framework)
        return []
    where = [Moderation.status.in_(DECIDED)]
    if since is not None:
        where.append(Moderation.decided_at >= since)
    if audit_months[0] is not None:
        where.append(Audit.month >= audit_months[0])
    if audit_months[1] is not None:
        where.append(Audit.month < audit_months[1])
    grader = func.coalesce(Audit.submitted_by, Audit.auditor_id)
    keys = sorted(ranks)
    out: list[Calibration] = []
    for domain, given, moderated, joined in (
            (ModerationDomain.domain, ModerationDomain.auditor_grade,
             ModerationDomain.moderator_grade, True),
            (literal(OVERALL), Moderation.auditor_overall, Moderation.overall_grade, False)):
        mine, theirs = case(dict(ranks), value=given), case(dict(ranks), value=moderated)
        stmt = (select(grader, domain, func.count(func.distinct(Moderation.audit_id)),
                       func.count(), func.sum(case((mine == theirs, 1), else_=0)),
                       func.sum(case((mine < theirs, 1), else_=0)),
                       func.sum(case((mine > theirs, 1), else_=0)))
                .select_from(Moderation).join(Audit, Audit.id == Moderation.audit_id)
                .where(*where, given.in_(keys), moderated.in_(keys))
                .group_by(grader, domain))
        if joined:
            stmt = stmt.join(ModerationDomain, ModerationDomain.moderation_id == Moderation.id)
        out += [Calibration(str(a), str(d), int(n), int(g), int(s or 0), int(h or 0),
                            int(lo or 0))
                for a, d, n, g, s, h, lo in (await session.execute(stmt)).all()]
    return sorted(out, key=lambda c: (c.auditor_id, c.domain != OVERALL, c.domain))
