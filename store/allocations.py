"""The monthly allocation against the database (SPEC R3, R9): inputs in, one transaction out.

``plan_monthly`` reads staff, open cases and audit history and runs the pure allocator;
``persist_monthly`` writes the run, its audits, their audit-log entries and every message
(one card per auditor, one summary per QA lead) in ONE transaction. The allocation run's
unique key ``monthly:YYYY-MM`` is what makes a month happen exactly once: a second run, a
restart or a second service instance on the same PostgreSQL database fails to insert the
key, rolls back everything it would have written and reports "already allocated".

History rules (documented here because the allocator only sees dates):

* last audited = the later of the first day of the case's latest audit month and the date
  of its latest submission, so an allocated but unsubmitted audit protects the case too;
* re-audit due = the latest submitted audit's date plus ``reaudit_months[grade]``, unless the
  case already has an audit allocated after that submission (the re-audit is under way).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cards.allocation import (
    AllocatedCase,
    AllocationView,
    AreaCount,
    QaSummaryView,
    StaffRef,
    allocation_card,
    qa_summary_card,
)
from qa.allocation import (
    AllocationRequest,
    AllocationResult,
    Auditor,
    CaseInfo,
    allocate,
    month_last_day,
    new_seed,
)
from qa.calendar import WorkingCalendar
from qa.framework import Framework
from store.audit_log import record
from store.models import AllocationRun, Audit, Case, Staff, Team
from store.outbox import queue_in

__all__ = [
    "MonthlyOutcome",
    "MonthlyPlan",
    "add_months",
    "allocate_month",
    "allocation_day_for",
    "monthly_key",
    "parse_month",
    "persist_monthly",
    "plan_monthly",
    "run_for_month",
    "scheduled_day",
]

log = logging.getLogger(__name__)

_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
NO_TEAM = "-"  # the allocator's team for staff without one: matches no case's team
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")


# ---------------------------------------------------------------------------- dates


def parse_month(text: str) -> date:
    """'2026-12' -> date(2026, 12, 1); ValueError with the expected shape otherwise."""
    m = _MONTH_RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a month: expected YYYY-MM, e.g. 2026-12")
    return date(int(m.group(1)), int(m.group(2)), 1)


def monthly_key(month: date) -> str:
    """The allocation run's unique key: the exactly-once guarantee lives in this string."""
    return f"monthly:{month:%Y-%m}"


def add_months(d: date, months: int) -> date:
    """``d`` moved by whole calendar months, the day clamped to the target month's length."""
    index = d.year * 12 + d.month - 1 + months
    first = date(index // 12, index % 12 + 1, 1)
    return first.replace(day=min(d.day, month_last_day(first).day))


def scheduled_day(framework: Framework, calendar: WorkingCalendar, month: date) -> date:
    """The working day of ``month`` the framework allocates on (default the first)."""
    first = calendar.first_working_day(month.year, month.month)
    return calendar.add_working_days(first, framework.schedule.allocation_working_day - 1)


def allocation_day_for(framework: Framework, calendar: WorkingCalendar, month: date,
                       today: date) -> date:
    """The day deadlines and look-back count from.

    The scheduled day, unless the month is being allocated late (after downtime, or by
    hand), in which case today's (next working) date, so auditors keep their full time.
    """
    planned = scheduled_day(framework, calendar, month)
    if today <= planned or today > month_last_day(month):
        return planned
    return calendar.next_working_day(today)


# ---------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class StaffInfo:
    staff_id: str
    name: str
    team_id: int | None
    linked: bool


@dataclass(frozen=True)
class MonthlyPlan:
    """A computed month: the request (with its seed) and result, plus what persisting needs."""

    month: date
    as_of: datetime
    request: AllocationRequest
    result: AllocationResult
    allocation_day: date
    deadline: date
    look_back_from: date
    look_back_to: date
    staff: Mapping[str, StaffInfo]
    case_team: Mapping[str, int]
    team_names: Mapping[int, str]
    qa_leads: tuple[str, ...]

    @property
    def key(self) -> str:
        return monthly_key(self.month)

    def per_area(self, framework: Framework) -> list[tuple[str, int, int | None]]:
        got = Counter(a.area for a in self.result.allocations)
        return [(key, got[key], area.monthly_count) for key, area in framework.areas.items()]

    def per_team(self) -> list[tuple[str, int]]:
        got = Counter(self.team_names[self.case_team[a.case_ref]] for a in self.result.allocations)
        return sorted(got.items())

    def unreachable(self) -> list[tuple[str, str]]:
        """Auditors with cases, and QA leads, who are not linked to a Teams user."""
        ids = {a.auditor_id for a in self.result.allocations} | set(self.qa_leads)
        return [(i, self.staff[i].name) for i in sorted(ids) if not self.staff[i].linked]


async def _request_inputs(
    session: AsyncSession, framework: Framework, month: date
) -> tuple[list[Auditor], list[CaseInfo], frozenset[str], dict[str, StaffInfo], dict[str, int],
           dict[int, str], list[str]]:
    zone = framework.zone
    staff_rows = (await session.execute(
        select(Staff.staff_id, Staff.name, Staff.team_id, Staff.roles, Staff.teams_user_id)
        .where(Staff.active.is_(True)))).all()
    staff: dict[str, StaffInfo] = {}
    auditors: list[Auditor] = []
    qa_leads: list[str] = []
    for sid, name, team_id, roles, teams_user_id in staff_rows:
        staff[sid] = StaffInfo(sid, name, team_id, bool(teams_user_id))
        quota = framework.quota_for_roles(roles or [])
        if quota > 0:
            auditors.append(Auditor(sid, str(team_id) if team_id is not None else NO_TEAM, quota))
        if framework.qa_roles.intersection(roles or []):
            qa_leads.append(sid)
    team_names = dict((await session.execute(select(Team.id, Team.name))).all())

    # Latest audit month and submission per case, and the latest submitted audit's grade.
    history = {
        ref: (last_month, last_submitted, last_allocated)
        for ref, last_month, last_submitted, last_allocated in (await session.execute(
            select(Audit.case_ref, func.max(Audit.month), func.max(Audit.submitted_at),
                   func.max(Audit.allocated_at))
            .group_by(Audit.case_ref))).all()
    }
    ranked = (
        select(Audit.case_ref, Audit.submitted_at, Audit.overall_grade,
               func.row_number().over(partition_by=Audit.case_ref,
                                      order_by=(Audit.submitted_at.desc(), Audit.id.desc()))
               .label("rank"))
        .where(Audit.submitted_at.is_not(None))
        .subquery()
    )
    latest_grade = {
        ref: (submitted, grade)
        for ref, submitted, grade in (await session.execute(
            select(ranked.c.case_ref, ranked.c.submitted_at, ranked.c.overall_grade)
            .where(ranked.c.rank == 1))).all()
    }
    taken = frozenset((await session.scalars(
        select(Audit.case_ref).where(Audit.month == f"{month:%Y-%m}").distinct())).all())

    cases: list[CaseInfo] = []
    case_team: dict[str, int] = {}
    for ref, team_id, sw, area, opened_on, tags in (await session.execute(
            select(Case.case_ref, Case.team_id, Case.social_worker_id, Case.area, Case.opened_on,
                   Case.tags).where(Case.status == "open"))).all():
        if area not in framework.areas:
            continue
        last_audited: date | None = None
        reaudit_due: date | None = None
        if ref in history:
            last_month, last_submitted, last_allocated = history[ref]
            last_audited = date.fromisoformat(f"{last_month}-01")
            if last_submitted is not None:
                last_audited = max(last_audited, _local_date(last_submitted, zone))
        if ref in latest_grade:
            submitted, grade = latest_grade[ref]
            months = framework.reaudit_months.get(grade or "")
            _, _, last_allocated = history[ref]
            if months and not (last_allocated is not None and _aware(last_allocated) > _aware(submitted)):
                reaudit_due = add_months(_local_date(submitted, zone), months)
        cases.append(CaseInfo(ref, str(team_id), sw, area, opened_on, last_audited, reaudit_due,
                              frozenset(tags or [])))
        case_team[ref] = team_id
    return auditors, cases, taken, staff, case_team, team_names, qa_leads


def _aware(value: datetime) -> datetime:
    """Some drivers hand back naive UTC from aggregates; make it aware again."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _local_date(value: datetime, zone: tzinfo) -> date:
    return _aware(value).astimezone(zone).date()


def _area_counts(framework: Framework, slots: int) -> dict[str, int] | None:
    """Monthly counts per area; None when no area sets one.

    When only some areas set a count, the others are bounded by auditor capacity alone.
    """
    counts = {k: a.monthly_count for k, a in framework.areas.items()}
    if all(n is None for n in counts.values()):
        return None
    return {k: (n if n is not None else slots) for k, n in counts.items()}


async def plan_monthly(
    sessions: async_sessionmaker[AsyncSession],
    framework: Framework,
    calendar: WorkingCalendar,
    month: date,
    *,
    as_of: datetime,
    seed: int | None = None,
) -> MonthlyPlan:
    """Compute a month's allocation without writing anything (the dry run is this)."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must carry a time zone")
    async with sessions() as session:
        auditors, cases, taken, staff, case_team, team_names, qa_leads = await _request_inputs(
            session, framework, month)
    slots = sum(a.quota for a in auditors)
    request = AllocationRequest(
        month=month,
        seed=new_seed() if seed is None else seed,
        auditors=auditors,
        cases=cases,
        area_counts=_area_counts(framework, slots),
        repeat_window_months=framework.repeat_window_months,
        blackout_months=frozenset(framework.blackout_months),
        already_allocated=taken,
    )
    result = allocate(request)
    today = as_of.astimezone(framework.zone).date()
    day = allocation_day_for(framework, calendar, month, today)
    return MonthlyPlan(
        month=month,
        as_of=as_of,
        request=request,
        result=result,
        allocation_day=day,
        deadline=calendar.add_working_days(day, framework.deadline_working_days),
        look_back_from=add_months(day, -framework.look_back_months),
        look_back_to=day,
        staff=staff,
        case_team=case_team,
        team_names=team_names,
        qa_leads=tuple(sorted(qa_leads)),
    )


# ---------------------------------------------------------------------------- outcome


@dataclass(frozen=True)
class MonthlyOutcome:
    """What happened to a month: allocated now, already, previewed, or a blackout month."""

    status: str  # "allocated" | "already" | "dry_run" | "blackout"
    month: date
    seed: int | None = None
    run_id: int | None = None
    deadline: date | None = None
    allocated: int = 0
    auditors: int = 0
    per_area: tuple[tuple[str, int, int | None], ...] = ()
    per_team: tuple[tuple[str, int], ...] = ()
    shortfalls: tuple[str, ...] = ()
    unreachable: tuple[tuple[str, str], ...] = ()
    queued: int = 0

    @property
    def changed(self) -> bool:
        return self.status == "allocated"

    def headline(self) -> str:
        """One line for a job result or the first line of the CLI report."""
        m = f"{self.month:%Y-%m}"
        if self.status == "blackout":
            return f"{m} is a blackout month: nothing allocated"
        if self.status == "already":
            return (f"{m} is already allocated (run #{self.run_id}, seed {self.seed}): "
                    "nothing changed")
        verb = "would allocate" if self.status == "dry_run" else "allocated"
        deadline = self.deadline.isoformat() if self.deadline else "-"
        return (f"{m}: {verb} {self.allocated} audit(s) to {self.auditors} auditor(s), seed "
                f"{self.seed}, deadline {deadline}, {len(self.shortfalls)} shortfall(s), "
                f"{len(self.unreachable)} not reachable in Teams"
                + (f", {self.queued} message(s) queued" if self.status == "allocated" else ""))

    def report(self) -> list[str]:
        """The full report for ``qabot allocate``: areas, teams, shortfalls, unreachable."""
        lines = [self.headline()]
        if self.status == "blackout":
            return lines
        if self.per_area:
            lines.append("By area of planning:")
            lines += [f"  {area}: {n}" + (f" of {want}" if want is not None else "")
                      for area, n, want in self.per_area]
        if self.per_team:
            lines.append("By team (the case's team):")
            lines += [f"  {team}: {n}" for team, n in self.per_team]
        if self.shortfalls:
            lines.append("Could not satisfy:")
            lines += [f"  - {s}" for s in self.shortfalls]
        if self.unreachable:
            lines.append("Not reachable in Teams (not linked):")
            lines += [f"  - {sid} {name}" for sid, name in self.unreachable]
        if self.status == "dry_run":
            lines.append("Dry run: nothing was written.")
        return lines


def _outcome_from_plan(plan: MonthlyPlan, framework: Framework, status: str,
                       run_id: int | None = None, queued: int = 0) -> MonthlyOutcome:
    return MonthlyOutcome(
        status=status,
        month=plan.month,
        seed=plan.request.seed,
        run_id=run_id,
        deadline=plan.deadline,
        allocated=len(plan.result.allocations),
        auditors=len({a.auditor_id for a in plan.result.allocations}),
        per_area=tuple(plan.per_area(framework)),
        per_team=tuple(plan.per_team()),
        shortfalls=plan.result.shortfalls,
        unreachable=tuple(plan.unreachable()),
        queued=queued,
    )


def _outcome_from_run(run: AllocationRun) -> MonthlyOutcome:
    s = run.summary or {}
    return MonthlyOutcome(
        status="already",
        month=parse_month(run.month),
        seed=run.seed,
        run_id=run.id,
        deadline=run.deadline,
        allocated=int(s.get("allocated", 0)),
        auditors=int(s.get("auditors", 0)),
        per_area=tuple((a, n, w) for a, n, w in s.get("per_area", [])),
        per_team=tuple((t, n) for t, n in s.get("per_team", [])),
        shortfalls=tuple(s.get("shortfalls", [])),
        unreachable=tuple((i, n) for i, n in s.get("unreachable", [])),
    )


async def run_for_month(sessions: async_sessionmaker[AsyncSession],
                        month: date) -> AllocationRun | None:
    """The month's monthly allocation run, if it has happened."""
    async with sessions() as session:
        return await session.scalar(
            select(AllocationRun).where(AllocationRun.key == monthly_key(month)))


# ---------------------------------------------------------------------------- persist


def _auditor_views(plan: MonthlyPlan, framework: Framework,
                   audit_ids: Mapping[str, int]) -> dict[str, AllocationView]:
    cases = {c.case_ref: c for c in plan.request.cases}
    by_auditor: dict[str, list[AllocatedCase]] = {}
    for al in sorted(plan.result.allocations, key=lambda a: (a.auditor_id, a.case_ref)):
        by_auditor.setdefault(al.auditor_id, []).append(AllocatedCase(
            audit_id=audit_ids[al.case_ref],
            case_ref=al.case_ref,
            area_label=framework.areas[al.area].label,
            reason=al.reason,
            look_back_from=plan.look_back_from,
            look_back_to=plan.look_back_to,
            deadline=plan.deadline,
            reaudit_due=cases[al.case_ref].reaudit_due_on if al.reason == "reaudit" else None,
        ))
    return {
        sid: AllocationView(framework.authority, plan.staff[sid].name, plan.month, tuple(items))
        for sid, items in by_auditor.items()
    }


def _summary_view(plan: MonthlyPlan, framework: Framework) -> QaSummaryView:
    reaudit_lines = [s for s in plan.result.shortfalls if s.startswith("re-audit ")]
    return QaSummaryView(
        authority=framework.authority,
        month=plan.month,
        seed=plan.request.seed,
        deadline=plan.deadline,
        auditors=len({a.auditor_id for a in plan.result.allocations}),
        per_area=tuple(AreaCount(framework.areas[k].label, n, want)
                       for k, n, want in plan.per_area(framework)),
        per_team=tuple(plan.per_team()),
        shortfalls=tuple(s for s in plan.result.shortfalls if s not in reaudit_lines),
        reaudits_missed=len(reaudit_lines),
        unreachable=tuple(StaffRef(i, n) for i, n in plan.unreachable()),
        blackout_months=tuple(_MONTH_NAMES[m - 1] for m in sorted(framework.blackout_months)),
    )


def _is_lock_error(err: OperationalError) -> bool:
    text = str(err.orig).lower() if err.orig is not None else str(err).lower()
    return "locked" in text or "busy" in text


async def persist_monthly(
    sessions: async_sessionmaker[AsyncSession],
    framework: Framework,
    plan: MonthlyPlan,
    *,
    actor: str,
) -> MonthlyOutcome:
    """Write the month in one transaction, or report that it was already written.

    The run row goes first and is flushed at once, so a competing process blocks on (or
    fails at) the unique key before anything else is written.
    """
    if plan.result.blackout:
        return MonthlyOutcome(status="blackout", month=plan.month)
    month = f"{plan.month:%Y-%m}"
    summary = {
        "allocation_day": plan.allocation_day.isoformat(),
        "look_back": [plan.look_back_from.isoformat(), plan.look_back_to.isoformat()],
        "allocated": len(plan.result.allocations),
        "auditors": len({a.auditor_id for a in plan.result.allocations}),
        "per_area": [list(x) for x in plan.per_area(framework)],
        "per_team": [list(x) for x in plan.per_team()],
        "shortfalls": list(plan.result.shortfalls),
        "unreachable": [list(x) for x in plan.unreachable()],
    }
    try:
        async with sessions.begin() as session:
            run = AllocationRun(key=plan.key, kind="monthly", month=month, seed=plan.request.seed,
                                created_at=plan.as_of, created_by=actor, deadline=plan.deadline,
                                summary=summary)
            session.add(run)
            await session.flush()
            audits: dict[str, Audit] = {}
            for al in plan.result.allocations:
                audits[al.case_ref] = Audit(
                    run_id=run.id, case_ref=al.case_ref, auditor_id=al.auditor_id,
                    team_id=plan.case_team[al.case_ref], area=al.area,
                    tool=framework.areas[al.area].tool, month=month, reason=al.reason,
                    status="allocated", allocated_at=plan.as_of, deadline=plan.deadline,
                    look_back_from=plan.look_back_from, look_back_to=plan.look_back_to,
                    version=0)
            session.add_all(audits.values())
            await session.flush()
            record(session, actor=actor, action="allocation.created", entity="allocation_run",
                   entity_id=plan.key,
                   after={"run_id": run.id, "seed": plan.request.seed,
                          "audits": len(audits), "deadline": plan.deadline.isoformat()})
            for ref, audit in audits.items():
                record(session, actor=actor, action="audit.allocated", entity="audit",
                       entity_id=str(audit.id),
                       after={"run_id": run.id, "case_ref": ref, "auditor_id": audit.auditor_id,
                              "reason": audit.reason, "deadline": plan.deadline.isoformat()})
            queued = 0
            views = _auditor_views(plan, framework, {r: a.id for r, a in audits.items()})
            for sid, view in sorted(views.items()):
                if await queue_in(session, message=allocation_card(view), staff_id=sid,
                                  dedupe_key=f"allocation:{month}:{sid}") is not None:
                    queued += 1
            summary_card = qa_summary_card(_summary_view(plan, framework))
            for sid in plan.qa_leads:
                if await queue_in(session, message=summary_card, staff_id=sid,
                                  dedupe_key=f"allocation:{month}:summary:{sid}") is not None:
                    queued += 1
            run.summary = {**summary, "queued": queued}
    except IntegrityError:
        return await _already(sessions, plan)
    except OperationalError as err:
        # SQLite: a concurrent writer won the database lock; it may have been this month.
        if not _is_lock_error(err):
            raise
        existing = await run_for_month(sessions, plan.month)
        if existing is None:
            raise
        return _outcome_from_run(existing)
    log.info("month allocated", extra={"month": month, "run_id": run.id,
                                       "audits": len(audits), "queued": queued})
    return _outcome_from_plan(plan, framework, "allocated", run.id, queued)


async def _already(sessions: async_sessionmaker[AsyncSession], plan: MonthlyPlan) -> MonthlyOutcome:
    existing = await run_for_month(sessions, plan.month)
    if existing is None:  # the key did not clash: some other constraint failed
        raise RuntimeError(f"allocation for {plan.month:%Y-%m} refused by the database")
    log.info("month already allocated", extra={"month": existing.month, "run_id": existing.id})
    return _outcome_from_run(existing)


async def allocate_month(
    sessions: async_sessionmaker[AsyncSession],
    framework: Framework,
    calendar: WorkingCalendar,
    month: date,
    *,
    as_of: datetime,
    actor: str,
    seed: int | None = None,
    dry_run: bool = False,
) -> MonthlyOutcome:
    """Allocate (or preview) one month; idempotent: an allocated month is reported, not redone."""
    if month.month in framework.blackout_months:
        return MonthlyOutcome(status="blackout", month=month)
    existing = await run_for_month(sessions, month)
    if existing is not None:
        return _outcome_from_run(existing)
    plan = await plan_monthly(sessions, framework, calendar, month, as_of=as_of, seed=seed)
    if dry_run:
        return _outcome_from_plan(plan, framework, "dry_run")
    return await persist_monthly(sessions, framework, plan, actor=actor)

