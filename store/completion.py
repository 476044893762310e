"""Completion queries (SPEC R11): who has not submitted, and completion per team.

Counting happens in SQL (GROUP BY with conditional sums), so the status command stays
one round trip whatever the number of audits. Who is reminded or told is the completion
flow's decision (through the line of management), not the store's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Audit, Staff, Team

__all__ = [
    "NO_TEAM_LABEL", "PendingAudit", "TeamCompletion", "completion_by_team", "overdue_audits",
    "unsubmitted_due_on",
]

NO_TEAM_LABEL = "No team"


@dataclass(frozen=True)
class PendingAudit:
    """An unsubmitted audit with what a reminder or a manager note needs."""

    audit_id: int
    case_ref: str
    area: str
    reason: str
    auditor_id: str
    auditor_name: str
    deadline: date
    look_back_from: date
    look_back_to: date


@dataclass(frozen=True)
class TeamCompletion:
    """One auditor team's month: allocated, submitted, saved as draft, overdue."""

    team: str
    allocated: int
    submitted: int
    draft: int
    overdue: int


def _pending_query() -> Select[Any]:
    return (
        select(Audit.id, Audit.case_ref, Audit.area, Audit.reason, Audit.auditor_id, Staff.name,
               Audit.deadline, Audit.look_back_from, Audit.look_back_to)
        .join(Staff, Staff.staff_id == Audit.auditor_id)
        .where(Audit.submitted_at.is_(None))
        .order_by(Audit.auditor_id, Audit.case_ref)
    )


async def unsubmitted_due_on(session: AsyncSession, deadline: date) -> list[PendingAudit]:
    """Audits not yet submitted whose deadline is ``deadline``."""
    rows = await session.execute(_pending_query().where(Audit.deadline == deadline))
    return [PendingAudit(*row) for row in rows.all()]


async def overdue_audits(session: AsyncSession, today: date) -> list[PendingAudit]:
    """Audits not submitted whose deadline has passed (before ``today``)."""
    rows = await session.execute(_pending_query().where(Audit.deadline < today))
    return [PendingAudit(*row) for row in rows.all()]


async def completion_by_team(session: AsyncSession, month: str,
                             today: date) -> list[TeamCompletion]:
    """Per auditor's team for one month (YYYY-MM): allocated, submitted, draft, overdue.

    ``draft`` counts saved but unsubmitted audits; ``overdue`` counts unsubmitted ones past
    the deadline (a draft can be both).
    """
    unsubmitted = Audit.submitted_at.is_(None)
    team = func.coalesce(Team.name, NO_TEAM_LABEL)
    rows = await session.execute(
        select(
            team,
            func.count(Audit.id),
            func.sum(case((Audit.submitted_at.is_not(None), 1), else_=0)),
            func.sum(case((and_(unsubmitted, or_(Audit.draft_saved_at.is_not(None),
                                                 Audit.status == "draft")), 1), else_=0)),
            func.sum(case((and_(unsubmitted, Audit.deadline < today), 1), else_=0)),
        )
        .select_from(Audit)
        .join(Staff, Staff.staff_id == Audit.auditor_id)
        .outerjoin(Team, Team.id == Staff.team_id)
        .where(Audit.month == month)
        .group_by(team)
        .order_by(team)
    )
    return [TeamCompletion(str(name), int(n), int(s or 0), int(d or 0), int(o or 0))
            for name, n, s, d, o in rows.all()]
