"""What follows a submitted audit, as stored: Part B responses (SPEC R7), safeguarding
alerts and who was told (R6), remedial plans and the cases tracked to Good (R8).

Persistence only, inside the caller's transaction; each change is conditional on the
state it expects and writes its audit-log row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from qa.errors import Code, NotFound
from store.audit_log import record
from store.models import (
    AlertRecipient,
    Audit,
    Case,
    PartB,
    Remedial,
    RemedialRecipient,
    SafeguardingAlert,
)

# ---------------------------------------------------------------------------- Part B


async def request_part_b(session: AsyncSession, audit_id: int, staff_id: str, relation: str, *,
                         due_on: date, at: datetime, actor: str) -> PartB:
    row = PartB(audit_id=audit_id, staff_id=staff_id, relation=relation, status="requested",
                requested_at=at, due_on=due_on, step=-1)
    session.add(row)
    await session.flush()
    record(session, at=at, actor=actor, action="part_b.requested", entity="part_b",
           entity_id=str(row.id), after={"audit_id": audit_id, "staff_id": staff_id,
                                          "relation": relation, "due_on": due_on.isoformat()})
    return row


async def part_b(session: AsyncSession, audit_id: int, staff_id: str) -> PartB:
    row = await session.scalar(select(PartB).where(PartB.audit_id == audit_id,
                                                   PartB.staff_id == staff_id))
    if row is None:
        raise NotFound(Code.PART_B_NOT_FOUND)
    return row


async def part_bs_of(session: AsyncSession, audit_id: int) -> list[PartB]:
    return list(await session.scalars(select(PartB).where(PartB.audit_id == audit_id)
                                      .order_by(PartB.id)))


async def submit_part_b(session: AsyncSession, row_id: int, *, agrees: bool,
                        disagree_reason: str, reflections: str, discussed_on: date | None,
                        by: str, at: datetime) -> bool:
    """Record the response once; False when it was already recorded."""
    result = await session.execute(
        update(PartB).where(PartB.id == row_id, PartB.status == "requested")
        .values(status="submitted", agrees=agrees, disagree_reason=disagree_reason,
                reflections=reflections, discussed_on=discussed_on, submitted_at=at)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record(session, at=at, actor=by, action="part_b.submitted", entity="part_b",
           entity_id=str(row_id), after={"agrees": agrees,
                                         "discussed_on": discussed_on.isoformat()
                                         if discussed_on else None})
    return True


@dataclass(frozen=True)
class OwedPartB:
    id: int
    audit_id: int
    case_ref: str
    staff_id: str
    relation: str
    due_on: date
    step: int
    stepped_on: date | None


async def owed_part_bs(session: AsyncSession) -> list[OwedPartB]:
    rows = await session.execute(
        select(PartB.id, PartB.audit_id, Audit.case_ref, PartB.staff_id, PartB.relation,
               PartB.due_on, PartB.step, PartB.stepped_on)
        .join(Audit, Audit.id == PartB.audit_id)
        .where(PartB.status == "requested").order_by(PartB.due_on, PartB.id))
    return [OwedPartB(*r) for r in rows.all()]


# ---------------------------------------------------------------------------- safeguarding


async def raise_alert(session: AsyncSession, audit_id: int, case_ref: str, *, by: str,
                      at: datetime) -> SafeguardingAlert:
    alert = SafeguardingAlert(audit_id=audit_id, case_ref=case_ref, raised_by=by, raised_at=at,
                              rung=0, rung_at=at)
    session.add(alert)
    await session.flush()
    return alert


async def tell(session: AsyncSession, alert_id: int, staff_ids: Iterable[str], rung: int, *,
               at: datetime) -> list[str]:
    """Record who is told at this rung (people told before are not added again)."""
    known = set(await session.scalars(select(AlertRecipient.staff_id)
                                      .where(AlertRecipient.alert_id == alert_id)))
    new = [s for s in dict.fromkeys(staff_ids) if s not in known]
    session.add_all(AlertRecipient(alert_id=alert_id, staff_id=s, rung=rung, told_at=at)
                    for s in new)
    return new


async def alert(session: AsyncSession, alert_id: int) -> tuple[SafeguardingAlert, list[str]]:
    found = await session.get(SafeguardingAlert, alert_id)
    if found is None:
        raise NotFound(Code.ALERT_NOT_FOUND)
    told = list(await session.scalars(select(AlertRecipient.staff_id)
                                      .where(AlertRecipient.alert_id == alert_id)
                                      .order_by(AlertRecipient.rung, AlertRecipient.staff_id)))
    return found, told


async def acknowledge(session: AsyncSession, alert: SafeguardingAlert, *, by: str,
                      at: datetime) -> bool:
    """The first acknowledgement wins; False when it was acknowledged already."""
    result = await session.execute(
        update(SafeguardingAlert)
        .where(SafeguardingAlert.id == alert.id, SafeguardingAlert.acknowledged_at.is_(None))
        .values(acknowledged_by=by, acknowledged_at=at)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record(session, at=at, actor=by, action="safeguarding.acknowledged", entity="audit",
           entity_id=str(alert.audit_id), after={"alert_id": alert.id})
    return True


async def unacknowledged(session: AsyncSession) -> list[SafeguardingAlert]:
    return list(await session.scalars(select(SafeguardingAlert)
                                      .where(SafeguardingAlert.acknowledged_at.is_(None))
                                      .order_by(SafeguardingAlert.id)))


async def climb(session: AsyncSession, alert_id: int, rung: int, *, at: datetime) -> bool:
    """Move the alert to the next rung; False when someone acknowledged it meanwhile or it
    moved already (two instances checking at once)."""
    result = await session.execute(
        update(SafeguardingAlert)
        .where(SafeguardingAlert.id == alert_id, SafeguardingAlert.acknowledged_at.is_(None),
               SafeguardingAlert.rung == rung - 1)
        .values(rung=rung, rung_at=at).execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- remedial


async def open_remedial(session: AsyncSession, audit: Audit, grade: str, *, due_on: date,
                        recipients: Iterable[str], at: datetime, actor: str) -> Remedial:
    row = Remedial(audit_id=audit.id, case_ref=audit.case_ref, grade=grade, created_at=at,
                   due_on=due_on, step=-1)
    session.add(row)
    await session.flush()
    ids = list(dict.fromkeys(recipients))
    session.add_all(RemedialRecipient(remedial_id=row.id, staff_id=s) for s in ids)
    record(session, at=at, actor=actor, action="remedial.opened", entity="remedial",
           entity_id=str(row.id), after={"audit_id": audit.id, "grade": grade,
                                         "due_on": due_on.isoformat(), "recipients": ids})
    return row


async def remedial_of_audit(session: AsyncSession, audit_id: int) -> Remedial | None:
    """The remedial plan an audit's grade asked for, if any (one per audit)."""
    return await session.scalar(select(Remedial).where(Remedial.audit_id == audit_id))


async def alert_of_audit(session: AsyncSession, audit_id: int) -> SafeguardingAlert | None:
    """The safeguarding alert raised on an audit, if any (one per audit)."""
    return await session.scalar(select(SafeguardingAlert)
                                .where(SafeguardingAlert.audit_id == audit_id))


async def remedial(session: AsyncSession, remedial_id: int) -> tuple[Remedial, list[str]]:
    row = await session.get(Remedial, remedial_id)
    if row is None:
        raise NotFound(Code.REMEDIAL_NOT_FOUND)
    ids = list(await session.scalars(select(RemedialRecipient.staff_id)
                                     .where(RemedialRecipient.remedial_id == remedial_id)
                                     .order_by(RemedialRecipient.staff_id)))
    return row, ids


async def record_plan(session: AsyncSession, remedial_id: int, *, plan: str, by: str,
                      at: datetime) -> bool:
    """The remedial plan, recorded once; False when one was recorded already."""
    result = await session.execute(
        update(Remedial).where(Remedial.id == remedial_id, Remedial.plan_at.is_(None))
        .values(plan=plan, plan_by=by, plan_at=at).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record(session, at=at, actor=by, action="remedial.plan_recorded", entity="remedial",
           entity_id=str(remedial_id), after={"plan_chars": len(plan)})
    return True


async def close_tracking(session: AsyncSession, case_ref: str, *, audit_id: int, at: datetime,
                         actor: str) -> list[int]:
    """A case graded Good or better leaves the tracking list: close its open remedial rows."""
    ids = list(await session.scalars(select(Remedial.id).where(Remedial.case_ref == case_ref,
                                                               Remedial.closed_at.is_(None))))
    if ids:
        await session.execute(update(Remedial).where(Remedial.id.in_(ids))
                              .values(closed_at=at, closed_by_audit_id=audit_id)
                              .execution_options(synchronize_session=False))
        for rid in ids:
            record(session, at=at, actor=actor, action="remedial.closed", entity="remedial",
                   entity_id=str(rid), after={"closed_by_audit_id": audit_id})
    return ids


@dataclass(frozen=True)
class Tracked:
    """An open remedial row with what the chase and the tracking list need."""

    id: int
    audit_id: int
    case_ref: str
    case_team_id: int
    social_worker_id: str | None
    grade: str
    created_at: datetime
    due_on: date
    planned: bool
    step: int
    stepped_on: date | None
    reminded_on: date | None
    recipients: tuple[str, ...]


async def tracked_cases(session: AsyncSession) -> list[Tracked]:
    rows = (await session.execute(
        select(Remedial.id, Remedial.audit_id, Remedial.case_ref, Case.team_id,
               Case.social_worker_id, Remedial.grade, Remedial.created_at, Remedial.due_on,
               Remedial.plan_at.is_not(None), Remedial.step, Remedial.stepped_on,
               Remedial.reminded_on)
        .join(Case, Case.case_ref == Remedial.case_ref)
        .where(Remedial.closed_at.is_(None)).order_by(Remedial.created_at, Remedial.id))).all()
    recipients: dict[int, list[str]] = {}
    if rows:
        for rid, sid in await session.execute(
                select(RemedialRecipient.remedial_id, RemedialRecipient.staff_id)
                .where(RemedialRecipient.remedial_id.in_([r[0] for r in rows]))
                .order_by(RemedialRecipient.staff_id)):
            recipients.setdefault(rid, []).append(sid)
    return [Tracked(*r, recipients=tuple(recipients.get(r[0], ()))) for r in rows]
