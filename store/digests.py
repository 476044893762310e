"""Digest channels as stored, and the case-level detail behind a digest (SPEC R12).

Persistence only: the flow decides who may register a channel or see the detail, and what
is said; these functions take their times from the caller and write the audit log with
the change.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from store.audit_log import record
from store.grading import final_overall_grade
from store.models import Audit, AuditAction, Case, Conversation, DigestChannel, Staff, Team

__all__ = ["active_channels", "register_channel", "unregister_channel"]


async def register_channel(session: AsyncSession, *, conversation_id: str, service_url: str,
                           tenant_id: str | None, reference: dict[str, Any],
                           team_id: str | None, team_name: str | None, actor: str,
                           at: datetime) -> bool:
    """Register (or re-activate) a channel; False when it was already registered.

    The channel's own conversation row is written too, with a reference to the channel
    (not the thread the command was typed in), so each digest is a new post.
    """
    conv = await session.get(Conversation, conversation_id)
    if conv is None:
        session.add(Conversation(id=conversation_id, kind="channel", tenant_id=tenant_id,
                                 service_url=service_url, reference=reference, team_id=team_id,
                                 team_name=team_name, updated_at=at))
    else:
        conv.reference, conv.service_url, conv.updated_at = reference, service_url, at
    row = await session.get(DigestChannel, conversation_id)
    if row is not None and row.active:
        return False
    if row is None:
        session.add(DigestChannel(conversation_id=conversation_id, team_id=team_id,
                                  team_name=team_name, registered_by=actor, registered_at=at,
                                  active=True))
    else:
        row.active, row.registered_by, row.registered_at = True, actor, at
    record(session, at=at, actor=actor, action="digest_channel.registered",
           entity="digest_channel", entity_id=conversation_id, after={"team_id": team_id})
    return True


async def unregister_channel(session: AsyncSession, conversation_id: str, *, actor: str,
                             at: datetime) -> bool:
    row = await session.get(DigestChannel, conversation_id)
    if row is None or not row.active:
        return False
    row.active = False
    record(session, at=at, actor=actor, action="digest_channel.unregistered",
           entity="digest_channel", entity_id=conversation_id, before={"active": True},
           after={"active": False})
    return True


async def active_channels(session: AsyncSession) -> list[str]:
    return list((await session.scalars(
        select(DigestChannel.conversation_id).where(DigestChannel.active.is_(True))
        .order_by(DigestChannel.conversation_id))).all())


async def case_detail(session: AsyncSession, *, start: datetime, end: datetime, end_day: date,
                      good_or_better: frozenset[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Case-level rows behind a digest: below-good audits, overdue actions, safeguarding
    concerns and celebrations in ``[start, end)`` (final grades, every audit)."""
    grade = final_overall_grade(Audit)
    done = and_(Audit.submitted_at >= start, Audit.submitted_at < end,
                Audit.status.not_in(("cancelled", "withdrawn", "returned")))
    rows = (await session.execute(
        select(Audit.case_ref, Team.name, grade, Audit.safeguarding_concern,
               Audit.answers["celebrate"].as_string())
        .join(Team, Team.id == Audit.team_id).where(done)
        .order_by(Team.name, Audit.case_ref))).all()
    owner = aliased(Staff)
    a = AuditAction
    overdue = (await session.execute(
        select(Audit.case_ref, Team.name, owner.name, a.due_on)
        .join(Audit, Audit.id == a.audit_id).join(Team, Team.id == Audit.team_id)
        .join(owner, owner.staff_id == a.owner_id)
        .where(a.status.not_in(("cancelled", "withdrawn")), a.created_at < end,
               or_(a.done_at.is_(None), a.done_at >= end), a.due_on < end_day)
        .order_by(a.due_on, Audit.case_ref))).all()
    return {
        "below_good": [(r[0], r[1], r[2]) for r in rows if r[2] and r[2] not in good_or_better],
        "safeguarding": [(r[0], r[1]) for r in rows if r[3]],
        "celebrate": [(r[0], r[1]) for r in rows if (r[4] or "").strip()],
        "overdue_actions": [(r[0], r[1], r[2], r[3]) for r in overdue],
    }


async def reaudits_overdue(session: AsyncSession, *, end: datetime,
                           grades: dict[str, int]) -> list[tuple[str, str, str, datetime]]:
    """(case ref, case's team, grade, submitted at) of each open case whose latest final
    grade is one of ``grades``; the caller works out which re-audit dates have passed."""
    later = aliased(Audit)
    grade = final_overall_grade(Audit)
    finished = ("cancelled", "withdrawn", "returned")
    superseded = (select(later.id).where(later.case_ref == Audit.case_ref,
                                         later.submitted_at > Audit.submitted_at,
                                         later.submitted_at < end,
                                         later.status.not_in(finished)).exists())
    stmt = (select(Audit.case_ref, Team.name, grade, Audit.submitted_at)
            .join(Case, Case.case_ref == Audit.case_ref).join(Team, Team.id == Audit.team_id)
            .where(grade.in_(sorted(grades)), Audit.submitted_at < end,
                   Audit.status.not_in(finished), Case.status == "open", ~superseded)
            .order_by(Audit.submitted_at))
    return [(r[0], r[1], r[2], r[3]) for r in (await session.execute(stmt)).all()]
