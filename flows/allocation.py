"""The monthly allocation (SPEC R3, R9): plan a month, write it once, tell the auditors.

``plan_monthly`` reads staff, open cases and audit history and runs the pure allocator;
``persist_monthly`` writes the run, its audits, their audit-log entries and every message
(one card per auditor, one summary per QA lead) in ONE transaction. The run's unique key
``monthly:YYYY-MM`` is what makes a month happen exactly once: a second run, a restart or a
second service instance on the same PostgreSQL database fails to insert the key, rolls back
everything it would have written and reports "already allocated".

History rules (documented here because the allocator only sees dates):

* last audited = the later of the first day of the case's latest audit month and the date
  of its latest submission, so an allocated but unsubmitted audit protects the case too;
* re-audit due = the latest submitted audit's date plus ``reaudit_months[grade]``, unless the
  case already has an audit allocated after that submission (the re-audit is under way).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.router import Router
from cards import messages
from cards.allocation import (
    AllocatedCase,
    AllocationView,
    AreaCount,
    QaSummaryView,
    StaffRef,
    allocation_card,
    qa_summary_card,
)
from cards.common import long_date
from flows.base import transaction
from qa.allocation import AllocationRequest, AllocationResult, Auditor, CaseInfo, allocate, new_seed
from qa.calendar import WorkingCalendar
from qa.framework import Framework
from qa.people import LineOfManagement, Person
from qa.periods import (
    add_months,
    local_date,
    month_key,
    month_last_day,
    month_names,
    parse_month,
    working_deadline,
)
from scheduler.jobs import Job
from store import allocations as stored
from store.allocations import CaseHistory, NewAudit, StaffInfo
from store.models import AllocationRun
from store.outbox import Message

if TYPE_CHECKING:
    from qabot.services import Services

__all__ = [
    "MonthlyOutcome",
    "MonthlyPlan",
    "allocate_month",
    "allocation_day_for",
    "auditor_pool",
    "jobs",
    "monthly_key",
    "persist_monthly",
    "plan_monthly",
    "router",
    "scheduled_day",
]

log = logging.getLogger(__name__)
router = Router()  # the allocation is started by its job or `qabot allocate`, not in Teams

NO_TEAM = "-"  # the allocator's team for staff without one: matches no case's team


# ---------------------------------------------------------------------------- dates


def monthly_key(month: date) -> str:
    """The allocation run's unique key: the exactly-once guarantee lives in this string."""
    return f"monthly:{month_key(month)}"


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
    teams_installed: int = 0

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


def auditor_pool(staff: Sequence[StaffInfo], people: Sequence[Person],
                 framework: Framework) -> list[Auditor]:
    """The auditors of a run, each with the teams below them in the line of management.

    Every allocation (monthly or themed) builds its auditors here, so nobody is ever given
    a case from their own team or from a team they manage at any depth.
    """
    line = LineOfManagement(people)
    return [Auditor(s.staff_id, str(s.team_id) if s.team_id is not None else NO_TEAM, quota,
                    frozenset(str(t) for t in line.teams_below(s.staff_id)))
            for s in staff if (quota := framework.quota_for_roles(s.roles)) > 0]


def _aware(value: datetime) -> datetime:
    """Some drivers hand back naive UTC from aggregates; make it aware again."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def case_info(framework: Framework, row: CaseHistory) -> CaseInfo:
    """What the allocator needs to know about a case, from its audit history."""
    zone = framework.zone
    last_audited: date | None = None
    if row.last_month is not None:
        last_audited = parse_month(row.last_month)
        if row.last_submitted is not None:
            last_audited = max(last_audited, local_date(row.last_submitted, zone))
    reaudit_due: date | None = None
    if row.latest_grade_at is not None:
        months = framework.reaudit_months.get(row.latest_grade or "")
        allocated_since = (row.last_allocated is not None
                           and _aware(row.last_allocated) > _aware(row.latest_grade_at))
        if months and not allocated_since:
            reaudit_due = add_months(local_date(row.latest_grade_at, zone), months)
    return CaseInfo(row.case_ref, str(row.team_id), row.social_worker_id, row.area, row.opened_on,
                    last_audited, reaudit_due, frozenset(row.tags))


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
        inputs = await stored.allocation_inputs(session, month_key(month))
    staff = {s.staff_id: s for s in inputs.staff}
    auditors = auditor_pool(inputs.staff, inputs.people, framework)
    qa_leads = tuple(s.staff_id for s in inputs.staff if framework.qa_roles.intersection(s.roles))
    cases = [case_info(framework, c) for c in inputs.cases if c.area in framework.areas]
    case_team = {c.case_ref: c.team_id for c in inputs.cases if c.area in framework.areas}
    slots = sum(a.quota for a in auditors)
    request = AllocationRequest(
        month=month,
        seed=new_seed() if seed is None else seed,
        auditors=auditors,
        cases=cases,
        area_counts=_area_counts(framework, slots),
        repeat_window_months=framework.repeat_window_months,
        blackout_months=frozenset(framework.blackout_months),
        already_allocated=inputs.taken,
    )
    result = allocate(request)
    day = allocation_day_for(framework, calendar, month, local_date(as_of, framework.zone))
    return MonthlyPlan(
        month=month,
        as_of=as_of,
        request=request,
        result=result,
        allocation_day=day,
        deadline=working_deadline(calendar, day, framework.deadline_working_days),
        look_back_from=add_months(day, -framework.look_back_months),
        look_back_to=day,
        staff=staff,
        case_team=case_team,
        team_names=inputs.team_names,
        qa_leads=tuple(sorted(qa_leads)),
        teams_installed=inputs.teams_installed,
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
    #: Which rule kept what out of the month (worded; computed when the month is planned).
    exclusions: tuple[str, ...] = ()
    #: Plausible mistakes worth a second look; never a refusal.
    warnings: tuple[str, ...] = ()
    #: Area key -> label, so the report names areas as people know them.
    area_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: How many teams the bot is installed in (decides the next step for the unreachable).
    teams_installed: int = 0

    @property
    def changed(self) -> bool:
        return self.status == "allocated"

    def headline(self) -> str:
        """One line for a job result or the first line of the CLI report."""
        m = month_key(self.month)
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
        lines += [f"Warning: {w}" for w in self.warnings]
        if self.per_area:
            lines.append("By area of planning:")
            lines += [f"  {self.area_labels.get(area, area)}: {n}"
                      + (f" of {want}" if want is not None else "")
                      for area, n, want in self.per_area]
        if self.per_team:
            lines.append("By team (the case's team):")
            lines += [f"  {team}: {n}" for team, n in self.per_team]
        if self.shortfalls:
            lines.append("Could not satisfy:")
            lines += [f"  - {s}" for s in self.shortfalls]
        if self.exclusions:
            lines.append("Excluded by rule:")
            lines += [f"  - {line}" for line in self.exclusions]
        if self.unreachable:
            lines.append("Not reachable in Teams (not linked):")
            lines += [f"  - {sid} {name}" for sid, name in self.unreachable]
        step = (messages.unreachable_next_step(len(self.unreachable), self.teams_installed,
                                               dry_run=self.status == "dry_run")
                if self.unreachable and self.status in ("dry_run", "allocated") else None)
        if self.status == "dry_run":
            lines += [step] if step else []
            lines.append("Dry run: nothing was written.")
        elif step:
            lines.append(step)
        return lines


def _exclusion_lines(plan: MonthlyPlan, framework: Framework) -> tuple[str, ...]:
    """The plan's exclusions in words: team and staff names, never a case reference."""

    def team(key: str) -> str:
        return plan.team_names.get(int(key), key) if key.isdigit() else key

    def who(staff_id: str) -> str:
        info = plan.staff.get(staff_id)
        if info is None:
            return staff_id
        roles = ", ".join(framework.roles.get(r, r) for r in info.roles)
        return f"{staff_id} {info.name} ({roles})"

    return tuple(messages.exclusion_lines(
        plan.result.exclusions, team=team, who=who,
        window_months=plan.request.repeat_window_months))


def _warnings(plan: MonthlyPlan, framework: Framework) -> tuple[str, ...]:
    """Plausible mistakes in running this month now: said, never refused."""
    today = local_date(plan.as_of, framework.zone)
    if plan.result.allocations and plan.deadline < today:
        return (messages.allocation_deadline_passed(month_key(plan.month),
                                                    long_date(plan.deadline)),)
    return ()


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
        exclusions=_exclusion_lines(plan, framework),
        warnings=_warnings(plan, framework),
        area_labels={k: a.label for k, a in framework.areas.items()},
        teams_installed=plan.teams_installed,
    )


def _outcome_from_run(run: AllocationRun, framework: Framework | None = None) -> MonthlyOutcome:
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
        area_labels={k: a.label for k, a in framework.areas.items()} if framework else {},
    )


async def reaudits_owed(session: AsyncSession, framework: Framework,
                        month: date) -> list[tuple[str, str, date]]:
    """Open cases owed a re-audit (their latest grade's ``reaudit_months`` after its audit,
    none allocated since), by due date: the same rule the allocator uses."""
    inputs = await stored.allocation_inputs(session, month_key(month))
    out = []
    for row in inputs.cases:
        info = case_info(framework, row)
        if info.reaudit_due_on is not None and row.latest_grade is not None:
            out.append((row.case_ref, row.latest_grade, info.reaudit_due_on))
    return sorted(out, key=lambda x: (x[2], x[0]))


async def run_for_month(sessions: async_sessionmaker[AsyncSession],
                        month: date) -> AllocationRun | None:
    """The month's monthly allocation run, if it has happened."""
    async with sessions() as session:
        return await stored.run_by_key(session, monthly_key(month))


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


def _with_labels(line: str, framework: Framework) -> str:
    """A shortfall line from the allocator names an area by key first: use its label."""
    key, sep, rest = line.partition(": ")
    area = framework.areas.get(key)
    return f"{area.label}{sep}{rest}" if sep and area is not None else line


def _summary_view(plan: MonthlyPlan, framework: Framework) -> QaSummaryView:
    reaudit_lines = [s for s in plan.result.shortfalls if s.startswith("re-audit ")]
    cards = {a.auditor_id: 1 for a in plan.result.allocations}  # one card each, any cases
    return QaSummaryView(
        authority=framework.authority,
        month=plan.month,
        seed=plan.request.seed,
        deadline=plan.deadline,
        auditors=len({a.auditor_id for a in plan.result.allocations}),
        per_area=tuple(AreaCount(framework.areas[k].label, n, want)
                       for k, n, want in plan.per_area(framework)),
        per_team=tuple(plan.per_team()),
        shortfalls=tuple(_with_labels(s, framework) for s in plan.result.shortfalls
                         if s not in reaudit_lines),
        reaudits_missed=len(reaudit_lines),
        unreachable=tuple(StaffRef(i, n, cards.get(i, 0)) for i, n in plan.unreachable()),
        blackout_months=month_names(framework.blackout_months),
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
    """Write the month in one transaction, or report that it was already written."""
    if plan.result.blackout:
        return MonthlyOutcome(status="blackout", month=plan.month)
    month = month_key(plan.month)
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
        async with transaction(sessions, at=plan.as_of, actor=actor) as work:
            run = await stored.insert_run(
                work.session, key=plan.key, kind="monthly", month=month, seed=plan.request.seed,
                at=plan.as_of, actor=actor, deadline=plan.deadline, summary=summary)
            new = [NewAudit(al.case_ref, al.auditor_id, plan.case_team[al.case_ref], al.area,
                            framework.areas[al.area].tool, al.reason)
                   for al in plan.result.allocations]
            audit_ids = await stored.insert_audits(
                work.session, run, new, at=plan.as_of,
                look_back=(plan.look_back_from, plan.look_back_to))
            work.log("allocation.created", "allocation_run", plan.key,
                     after={"run_id": run.id, "seed": plan.request.seed, "audits": len(new),
                            "deadline": plan.deadline.isoformat()})
            for a in new:
                work.log("audit.allocated", "audit", str(audit_ids[a.case_ref]),
                         after={"run_id": run.id, "case_ref": a.case_ref,
                                "auditor_id": a.auditor_id, "reason": a.reason,
                                "deadline": plan.deadline.isoformat()})
            views = _auditor_views(plan, framework, audit_ids)
            for sid, view in sorted(views.items()):
                await work.tell(Message(allocation_card(view), staff_id=sid,
                                        dedupe_key=f"allocation:{month}:{sid}"))
            qa_view = _summary_view(plan, framework)
            for sid in plan.qa_leads:
                # Nobody is told they cannot be reached in the message that reaches them.
                mine = dataclasses.replace(qa_view, unreachable=tuple(
                    u for u in qa_view.unreachable if u.staff_id != sid))
                await work.tell(Message(qa_summary_card(mine), staff_id=sid,
                                        dedupe_key=f"allocation:{month}:summary:{sid}"))
            run.summary = {**summary, "queued": work.queued}
    except IntegrityError:
        return await _already(sessions, plan, framework)
    except OperationalError as err:
        # SQLite: a concurrent writer won the database lock; it may have been this month.
        if not _is_lock_error(err):
            raise
        existing = await run_for_month(sessions, plan.month)
        if existing is None:
            raise
        return _outcome_from_run(existing, framework)
    log.info("month allocated", extra={"month": month, "run_id": run.id,
                                       "audits": len(new), "queued": work.queued})
    return _outcome_from_plan(plan, framework, "allocated", run.id, work.queued)


async def _already(sessions: async_sessionmaker[AsyncSession], plan: MonthlyPlan,
                   framework: Framework) -> MonthlyOutcome:
    existing = await run_for_month(sessions, plan.month)
    if existing is None:  # the key did not clash: some other constraint failed
        raise RuntimeError(f"allocation for {month_key(plan.month)} refused by the database")
    log.info("month already allocated", extra={"month": existing.month, "run_id": existing.id})
    return _outcome_from_run(existing, framework)


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
    if framework.is_blackout(month):
        return MonthlyOutcome(status="blackout", month=month)
    existing = await run_for_month(sessions, month)
    if existing is not None:
        return _outcome_from_run(existing, framework)
    plan = await plan_monthly(sessions, framework, calendar, month, as_of=as_of, seed=seed)
    if dry_run:
        return _outcome_from_plan(plan, framework, "dry_run")
    return await persist_monthly(sessions, framework, plan, actor=actor)


# ---------------------------------------------------------------------------- job


async def allocation_job(services: Services, at: datetime) -> str:
    """Allocate the as-of month once it is due; a no-op before that and after it is done.

    The trigger fires daily so that a service that was down on the allocation day catches
    up at the next run later in the same month (deadlines then count from that day). The
    month's unique run key makes every run after the first report "already allocated".
    """
    fw = services.framework
    local = at.astimezone(fw.zone)
    month = date(local.year, local.month, 1)
    if fw.is_blackout(month):
        return MonthlyOutcome(status="blackout", month=month).headline()
    day = scheduled_day(fw, services.calendar, month)
    due = datetime.combine(day, fw.schedule.allocation_time, tzinfo=fw.zone)
    if local < due:
        return (f"{month_key(month)} is allocated on {day.isoformat()} at "
                f"{fw.schedule.allocation_time:%H:%M}: nothing to do yet")
    outcome = await allocate_month(services.sessions, fw, services.calendar, month, as_of=at,
                                   actor="job:allocation")
    return outcome.headline()


jobs = (Job("allocation", "monthly case allocation (acts from the allocation working day on)",
            allocation_job, lambda s: s.allocation_time),)
