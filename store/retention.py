"""Retention (SPEC R13): reading the audit log, and purging records past their period.

Persistence only. What "past its period" means is the flow's (``flows/records.py``) and is
documented in docs/data-protection.md; these functions take the cut-off dates and the time
from the caller.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import String, and_, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import (
    AlertRecipient,
    AllocationRun,
    Audit,
    AuditAction,
    AuditLogEntry,
    Case,
    DomainGrade,
    Moderation,
    ModerationDomain,
    OutboxMessage,
    PartB,
    Remedial,
    RemedialRecipient,
    SafeguardingAlert,
)

#: Log entities about a case's records: they go with the case, never by age alone.
CASE_ENTITIES = ("audit", "audit_action", "case", "moderation", "part_b", "remedial",
                 "retention")

__all__ = ["PURGED_ACTIVITY", "PurgePlan", "clear_sent_content", "log_entries", "plan_purge",
           "purge"]

#: What a message's content becomes once cleared: the row stays (its dedupe key keeps a
#: replayed job from sending again), the words do not.
PURGED_ACTIVITY = {"purged": True}
_CHUNK = 500


async def log_entries(session: AsyncSession, *, since: datetime, until: datetime | None = None,
                      case_ref: str | None = None, staff_id: str | None = None,
                      limit: int = 5000) -> list[AuditLogEntry]:
    """Audit-log entries from ``since``, about one case (its audits and their actions) or
    by or about one member of staff, oldest first."""
    stmt = select(AuditLogEntry).where(AuditLogEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditLogEntry.at < until)
    if case_ref is not None:
        audit_ids = select(cast(Audit.id, String)).where(
            Audit.case_ref == case_ref)
        action_ids = (select(cast(AuditAction.id, String))
                      .join(Audit, Audit.id == AuditAction.audit_id)
                      .where(Audit.case_ref == case_ref))
        part_b_ids = (select(cast(PartB.id, String)).join(Audit, Audit.id == PartB.audit_id)
                      .where(Audit.case_ref == case_ref))
        remedial_ids = select(cast(Remedial.id, String)).where(Remedial.case_ref == case_ref)
        moderation_ids = (select(cast(Moderation.id, String))
                          .join(Audit, Audit.id == Moderation.audit_id)
                          .where(Audit.case_ref == case_ref))
        stmt = stmt.where(or_(
            and_(AuditLogEntry.entity == "audit", AuditLogEntry.entity_id.in_(audit_ids)),
            and_(AuditLogEntry.entity == "audit_action", AuditLogEntry.entity_id.in_(action_ids)),
            and_(AuditLogEntry.entity == "part_b", AuditLogEntry.entity_id.in_(part_b_ids)),
            and_(AuditLogEntry.entity == "remedial", AuditLogEntry.entity_id.in_(remedial_ids)),
            and_(AuditLogEntry.entity == "moderation",
                 AuditLogEntry.entity_id.in_(moderation_ids)),
            and_(AuditLogEntry.entity == "case", AuditLogEntry.entity_id == case_ref)))
    if staff_id is not None:
        stmt = stmt.where(or_(AuditLogEntry.actor == staff_id,
                              and_(AuditLogEntry.entity == "staff",
                                   AuditLogEntry.entity_id == staff_id)))
    stmt = stmt.order_by(AuditLogEntry.at, AuditLogEntry.id).limit(limit)
    return list((await session.scalars(stmt)).all())


@dataclass
class PurgePlan:
    """What a purge removes: closed cases and everything hanging off them, old log entries."""

    cases: list[tuple[str, date]] = field(default_factory=list)  # (case ref, closed on)
    audits: list[int] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    part_bs: list[int] = field(default_factory=list)
    alerts: list[int] = field(default_factory=list)
    remedials: list[int] = field(default_factory=list)
    moderations: list[int] = field(default_factory=list)
    domain_grades: int = 0
    runs: list[int] = field(default_factory=list)  # allocation runs left with no audit
    log_entries: int = 0

    def counts(self) -> dict[str, int]:
        return {"cases": len(self.cases), "audits": len(self.audits),
                "actions": len(self.actions), "part_b": len(self.part_bs),
                "safeguarding_alerts": len(self.alerts), "remedial_plans": len(self.remedials),
                "moderations": len(self.moderations), "domain_grades": self.domain_grades,
                "allocation_runs": len(self.runs), "audit_log_entries": self.log_entries}


def _chunks(items: Sequence[int] | Sequence[str]) -> list[list]:  # type: ignore[type-arg]
    return [list(items[i:i + _CHUNK]) for i in range(0, len(items), _CHUNK)]


def _log_about(plan: PurgePlan, log_before: datetime) -> list:  # type: ignore[type-arg]
    """Conditions for the log entries that go: about a purged record, or simply too old
    and about nothing that is kept (staff, conversations, runs, jobs)."""
    terms = []
    for entity, ids in (("audit", plan.audits), ("audit_action", plan.actions),
                        ("part_b", plan.part_bs), ("remedial", plan.remedials),
                        ("moderation", plan.moderations),
                        ("case", [r for r, _ in plan.cases])):
        terms += [and_(AuditLogEntry.entity == entity, AuditLogEntry.entity_id.in_(c))
                  for c in _chunks([str(i) for i in ids])]
    terms.append(and_(AuditLogEntry.at < log_before, AuditLogEntry.entity.not_in(CASE_ENTITIES)))
    return terms


async def plan_purge(session: AsyncSession, *, closed_before: date,
                     log_before: datetime) -> PurgePlan:
    """Cases closed before ``closed_before`` (never open ones), with their audits, grades,
    actions, the allocation runs they leave empty, and the log entries about them; plus
    log entries older than ``log_before`` about anything else."""
    plan = PurgePlan()
    plan.cases = [(r, d) for r, d in (await session.execute(
        select(Case.case_ref, Case.closed_on)
        .where(Case.status == "closed", Case.closed_on.is_not(None),
               Case.closed_on < closed_before).order_by(Case.closed_on, Case.case_ref))).all()]
    refs = [r for r, _ in plan.cases]
    for chunk in _chunks(refs):
        plan.audits += list((await session.scalars(
            select(Audit.id).where(Audit.case_ref.in_(chunk)))).all())
    for chunk in _chunks(plan.audits):
        plan.actions += list((await session.scalars(
            select(AuditAction.id).where(AuditAction.audit_id.in_(chunk)))).all())
        plan.domain_grades += int(await session.scalar(
            select(func.count()).select_from(DomainGrade)
            .where(DomainGrade.audit_id.in_(chunk))) or 0)
        plan.part_bs += list((await session.scalars(
            select(PartB.id).where(PartB.audit_id.in_(chunk)))).all())
        plan.alerts += list((await session.scalars(
            select(SafeguardingAlert.id).where(SafeguardingAlert.audit_id.in_(chunk)))).all())
        plan.moderations += list((await session.scalars(
            select(Moderation.id).where(Moderation.audit_id.in_(chunk)))).all())
    for chunk in _chunks(refs):
        plan.remedials += list((await session.scalars(
            select(Remedial.id).where(Remedial.case_ref.in_(chunk)))).all())
    purged_by_run: Counter[int] = Counter()
    for chunk in _chunks(plan.audits):
        purged_by_run.update(int(r) for r in (await session.scalars(
            select(Audit.run_id).where(Audit.id.in_(chunk)))).all())
    runs = sorted(purged_by_run)
    for chunk in _chunks(runs):
        for run_id, total in (await session.execute(
                select(Audit.run_id, func.count()).where(Audit.run_id.in_(chunk))
                .group_by(Audit.run_id))).all():
            if int(total) == purged_by_run[int(run_id)]:
                plan.runs.append(int(run_id))
    for term in _log_about(plan, log_before):
        plan.log_entries += int(await session.scalar(
            select(func.count()).select_from(AuditLogEntry).where(term)) or 0)
    return plan


async def purge(session: AsyncSession, plan: PurgePlan, *, log_before: datetime) -> None:
    """Remove what the plan lists, children before parents, inside the caller's transaction."""
    refs = [r for r, _ in plan.cases]
    for term in _log_about(plan, log_before):
        await session.execute(delete(AuditLogEntry).where(term)
                              .execution_options(synchronize_session=False))
    for chunk in _chunks(plan.alerts):
        await session.execute(delete(AlertRecipient).where(AlertRecipient.alert_id.in_(chunk))
                              .execution_options(synchronize_session=False))
        await session.execute(delete(SafeguardingAlert).where(SafeguardingAlert.id.in_(chunk))
                              .execution_options(synchronize_session=False))
    for chunk in _chunks(plan.remedials):
        await session.execute(delete(RemedialRecipient)
                              .where(RemedialRecipient.remedial_id.in_(chunk))
                              .execution_options(synchronize_session=False))
        await session.execute(delete(Remedial).where(Remedial.id.in_(chunk))
                              .execution_options(synchronize_session=False))
    for chunk in _chunks(plan.moderations):
        await session.execute(delete(ModerationDomain)
                              .where(ModerationDomain.moderation_id.in_(chunk))
                              .execution_options(synchronize_session=False))
        await session.execute(delete(Moderation).where(Moderation.id.in_(chunk))
                              .execution_options(synchronize_session=False))
    for chunk in _chunks(plan.part_bs):
        await session.execute(delete(PartB).where(PartB.id.in_(chunk))
                              .execution_options(synchronize_session=False))
    for chunk in _chunks(plan.audits):
        await session.execute(delete(DomainGrade).where(DomainGrade.audit_id.in_(chunk))
                              .execution_options(synchronize_session=False))
        await session.execute(delete(AuditAction).where(AuditAction.audit_id.in_(chunk))
                              .execution_options(synchronize_session=False))
        await session.execute(delete(Audit).where(Audit.id.in_(chunk))
                              .execution_options(synchronize_session=False))
    for chunk in _chunks(plan.runs):
        await session.execute(delete(AllocationRun).where(AllocationRun.id.in_(chunk))
                              .execution_options(synchronize_session=False))
    for chunk in _chunks(refs):
        await session.execute(delete(Case).where(Case.case_ref.in_(chunk))
                              .execution_options(synchronize_session=False))


async def clear_sent_content(session: AsyncSession, *, sent_before: datetime,
                             dry_run: bool = False) -> int:
    """Clear the content of messages delivered before ``sent_before``; returns how many."""
    condition = and_(OutboxMessage.status == "sent", OutboxMessage.sent_at < sent_before,
                     OutboxMessage.activity["purged"].as_string().is_(None))
    if dry_run:
        return int(await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(condition)) or 0)
    result = await session.execute(
        update(OutboxMessage).where(condition)
        .values(activity=PURGED_ACTIVITY, last_error=None)
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)
