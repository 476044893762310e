"""Allocation runs and allocated audits as stored (SPEC R3, R9): what the allocator reads,
and writing a run with its audits.

Persistence only. The allocation flow (``flows/allocation.py``) plans the month from
:func:`allocation_inputs`, then writes it with :func:`insert_run` and :func:`insert_audits`
inside its own transaction, with the audit log and the messages. The run's unique key
(``monthly:YYYY-MM``) is what makes a month happen exactly once: the run row is flushed
first, so a competing process fails at the key before anything else is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from qa.people import Person
from store.grading import final_overall_grade
from store.models import AllocationRun, Audit, Case, Conversation, Staff, Team

__all__ = [
    "AllocationInputs",
    "CaseHistory",
    "NewAudit",
    "StaffInfo",
    "allocation_inputs",
    "insert_audits",
    "insert_run",
    "run_by_key",
]


@dataclass(frozen=True)
class StaffInfo:
    """An active member of staff as allocation needs them."""

    staff_id: str
    name: str
    team_id: int | None
    roles: tuple[str, ...]
    linked: bool
    manager_id: str | None = None


@dataclass(frozen=True)
class CaseHistory:
    """An open case with what its audits so far say about it."""

    case_ref: str
    team_id: int
    social_worker_id: str | None
    area: str
    opened_on: date
    tags: tuple[str, ...]
    last_month: str | None  # YYYY-MM of its latest audit (allocated or submitted)
    last_submitted: datetime | None
    last_allocated: datetime | None
    latest_grade: str | None  # of its latest submitted audit
    latest_grade_at: datetime | None


@dataclass(frozen=True)
class AllocationInputs:
    staff: tuple[StaffInfo, ...]
    cases: tuple[CaseHistory, ...]
    team_names: dict[int, str]
    taken: frozenset[str]  # case refs already allocated this month (by any run)
    people: tuple[Person, ...] = ()  # everyone, leavers included, for the line of management
    teams_installed: int = 0  # teams (channels) the bot is installed in


async def allocation_inputs(session: AsyncSession, month_key: str) -> AllocationInputs:
    """Active staff, open cases with their audit history, team names, and this month's taken."""
    staff = tuple(
        StaffInfo(sid, name, team_id, tuple(roles or ()), bool(teams_user_id), manager_id)
        for sid, name, team_id, roles, teams_user_id, manager_id in (await session.execute(
            select(Staff.staff_id, Staff.name, Staff.team_id, Staff.roles, Staff.teams_user_id,
                   Staff.manager_id)
            .where(Staff.active.is_(True)).order_by(Staff.staff_id))).all())
    # Leavers too: a chain of management still runs through a manager who has left.
    people = tuple(
        Person(sid, name, frozenset(roles or ()), team_id, manager_id, bool(active))
        for sid, name, roles, team_id, manager_id, active in (await session.execute(
            select(Staff.staff_id, Staff.name, Staff.roles, Staff.team_id, Staff.manager_id,
                   Staff.active).order_by(Staff.staff_id))).all())
    team_names = dict((await session.execute(select(Team.id, Team.name))).all())
    history = {
        ref: (last_month, last_submitted, last_allocated)
        for ref, last_month, last_submitted, last_allocated in (await session.execute(
            select(Audit.case_ref, func.max(Audit.month), func.max(Audit.submitted_at),
                   func.max(Audit.allocated_at))
            .group_by(Audit.case_ref))).all()
    }
    ranked = (
        select(Audit.case_ref, Audit.submitted_at, final_overall_grade(Audit).label("grade"),
               func.row_number().over(partition_by=Audit.case_ref,
                                      order_by=(Audit.submitted_at.desc(), Audit.id.desc()))
               .label("rank"))
        .where(Audit.submitted_at.is_not(None))
        .subquery()
    )
    latest = {
        ref: (submitted, grade)
        for ref, submitted, grade in (await session.execute(
            select(ranked.c.case_ref, ranked.c.submitted_at, ranked.c.grade)
            .where(ranked.c.rank == 1))).all()
    }
    taken = frozenset((await session.scalars(
        select(Audit.case_ref).where(Audit.month == month_key).distinct())).all())
    cases: list[CaseHistory] = []
    for ref, team_id, sw, area, opened_on, tags in (await session.execute(
            select(Case.case_ref, Case.team_id, Case.social_worker_id, Case.area, Case.opened_on,
                   Case.tags).where(Case.status == "open").order_by(Case.case_ref))).all():
        last_month, last_submitted, last_allocated = history.get(ref, (None, None, None))
        grade_at, grade = latest.get(ref, (None, None))
        cases.append(CaseHistory(ref, team_id, sw, area, opened_on, tuple(tags or ()),
                                 last_month, last_submitted, last_allocated, grade, grade_at))
    installed = int(await session.scalar(
        select(func.count()).select_from(Conversation).where(Conversation.kind == "channel"))
        or 0)
    return AllocationInputs(staff, tuple(cases), team_names, taken, people, installed)


async def run_by_key(session: AsyncSession, key: str) -> AllocationRun | None:
    """The allocation run with this unique key, if it has happened."""
    return await session.scalar(select(AllocationRun).where(AllocationRun.key == key))


async def insert_run(session: AsyncSession, *, key: str, kind: str, month: str, seed: int,
                     at: datetime, actor: str, deadline: date,
                     summary: dict[str, Any]) -> AllocationRun:
    """Add the run and flush at once: a second writer of the same key fails here."""
    run = AllocationRun(key=key, kind=kind, month=month, seed=seed, created_at=at,
                        created_by=actor, deadline=deadline, summary=summary)
    session.add(run)
    await session.flush()
    return run


@dataclass(frozen=True)
class NewAudit:
    case_ref: str
    auditor_id: str
    team_id: int
    area: str
    tool: str
    reason: str


async def insert_audits(session: AsyncSession, run: AllocationRun, audits: Sequence[NewAudit],
                        *, at: datetime, look_back: tuple[date, date]) -> dict[str, int]:
    """Write the run's audits (one executemany); returns case ref -> audit id."""
    if not audits:
        return {}
    rows = [{"run_id": run.id, "case_ref": a.case_ref, "auditor_id": a.auditor_id,
             "team_id": a.team_id, "area": a.area, "tool": a.tool, "month": run.month,
             "reason": a.reason, "status": "allocated", "allocated_at": at,
             "deadline": run.deadline, "look_back_from": look_back[0],
             "look_back_to": look_back[1], "version": 0} for a in audits]
    ids = (await session.scalars(
        insert(Audit).returning(Audit.id, sort_by_parameter_order=True), rows)).all()
    return {a.case_ref: int(i) for a, i in zip(audits, ids, strict=True)}
