"""The leadership digest (SPEC R12): aggregates for one month or quarter, for a channel.

Everything here is computed by the database (GROUP BY, COUNT, SUM(CASE ...)) from a handful
of queries that each touch one period's rows through an index, so a digest costs about the
same after five years as after one. Only the re-audit figure has to look at history (an
Inadequate audit from years ago is still owed a re-audit) and it does so through the
``(case_ref, submitted_at)`` index; see bench/RESULTS.md for the measured growth.

The digest is posted to a leadership channel, so it holds aggregates only: no case
reference, no child's details, no staff id and no free text (the "celebrate" answers are
counted, never quoted). Drill-down goes through the export, to authorised people only.

Every figure is "as of the end of the period", so a digest for a past period gives the same
answer whenever it is computed (the job that posts it can run twice safely):

* allocated: audits whose allocation month is in the period (cancelled ones left out);
* completed: of those, the ones submitted by the end of the period;
* submitted: audits submitted during the period, whatever month they were allocated in;
  the grade distributions, "celebrate" and safeguarding counts are over these, so each
  audit is counted in exactly one period;
* actions: open at the end of the period, overdue then (due on or before its last day),
  and done during the period on time or late (on time = done by the end of the due date,
  taken in UTC: up to an hour's grace in British Summer Time);
* re-audits: cases whose latest submitted audit by the end of the period was graded with a
  ``reaudit_months`` grade (Inadequate, Requires Improvement), the case not closed by then;
  overdue when the re-audit date (submission date + N months) is on or before the period's
  last day, due next when it falls in the following period of the same length.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Date, Integer, and_, case, cast, exists, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from qa.framework import Framework
from qa.periods import Period, local_midnight_utc, shift_month
from store.models import Audit, AuditAction, Case, DomainGrade, Team

# Audit statuses that are not (or no longer) an allocation: never counted as allocated.
AUDIT_CANCELLED: Final = frozenset({"cancelled", "withdrawn"})
# Statuses whose submission does not stand (returned by a moderator for rework).
AUDIT_NOT_COMPLETE: Final = AUDIT_CANCELLED | {"returned"}
# Action statuses that close an action without it being done: never open, never overdue.
ACTION_CLOSED_UNDONE: Final = frozenset({"cancelled", "withdrawn"})
# The answer whose presence marks outstanding practice to celebrate.
CELEBRATE_KEY: Final = "celebrate"

# --------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class UnitCount:
    """Audits allocated in the period for one team or area, and how many were completed."""

    key: str
    label: str
    allocated: int
    completed: int


@dataclass(frozen=True)
class GradeCount:
    """One grade's count this period and last, with shares of all graded in each."""

    grade: str
    count: int
    previous: int
    change: int
    share: float  # percent of this period's graded audits (or domain grades)
    previous_share: float
    share_change: float  # percentage points


@dataclass(frozen=True)
class Distribution:
    """A grade distribution with the change on the previous period of the same length."""

    total: int
    previous_total: int
    grades: tuple[GradeCount, ...]
    good_or_better: float  # percent
    previous_good_or_better: float
    good_or_better_change: float  # percentage points


@dataclass(frozen=True)
class DomainDistribution:
    domain: str
    label: str
    distribution: Distribution


@dataclass(frozen=True)
class ActionProgress:
    """Audit actions: raised in the period, open and overdue at its end, done during it."""

    raised: int
    open: int
    overdue: int
    done_on_time: int
    done_late: int


@dataclass(frozen=True)
class ReauditCount:
    """Re-audits owed at the end of the period for cases last graded ``grade``."""

    grade: str
    months: int
    pending: int
    overdue: int
    due_next_period: int


@dataclass(frozen=True)
class Digest:
    """The leadership digest: aggregates only, JSON-serialisable as it stands (to_json)."""

    period: str
    kind: str
    label: str
    start: str  # ISO date, inclusive
    end: str  # ISO date, exclusive
    previous_period: str
    allocated: int
    completed: int
    submitted: int
    previous_submitted: int
    teams: tuple[UnitCount, ...]
    areas: tuple[UnitCount, ...]
    grades: Distribution
    domains: tuple[DomainDistribution, ...]
    actions: ActionProgress
    reaudits: tuple[ReauditCount, ...]
    celebrate: int
    safeguarding_concerns: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def reaudits_overdue(self) -> int:
        return sum(r.overdue for r in self.reaudits)

    @property
    def reaudits_due_next(self) -> int:
        return sum(r.due_next_period for r in self.reaudits)


# --------------------------------------------------------------------------- queries


def _completed_by(audit: Any, end: datetime) -> ColumnElement[bool]:
    """Submitted before ``end`` and not cancelled or returned for rework."""
    return and_(audit.submitted_at < end, audit.status.not_in(sorted(AUDIT_NOT_COMPLETE)))


def _utc_date(column: Any, dialect: str) -> ColumnElement[Any]:
    """The UTC calendar date of a timestamp, the same on both backends."""
    if dialect == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


_ONE: Final = literal_column("1", Integer)
_ZERO: Final = literal_column("0", Integer)


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 or 0 as SQL literals (not parameters), so PostgreSQL can group by the expression."""
    return case((condition, _ONE), else_=_ZERO)


async def _allocation(session: AsyncSession, period: Period,
                      end: datetime) -> list[tuple[str, str, int, int]]:
    stmt = (
        select(Team.name, Audit.area, func.count(),
               func.sum(_flag(_completed_by(Audit, end))))
        .join(Team, Team.id == Audit.team_id)
        .where(Audit.month.in_(period.month_keys),
               Audit.status.not_in(sorted(AUDIT_CANCELLED)))
        .group_by(Team.name, Audit.area)
    )
    return [(t, a, int(n), int(c or 0)) for t, a, n, c in await session.execute(stmt)]


async def _overall(session: AsyncSession, prev_start: datetime, start: datetime,
                   end: datetime) -> list[tuple[bool, str | None, int, int, int]]:
    """Overall grades this period and last, with celebrate and safeguarding counts."""
    celebrate_text = func.trim(func.coalesce(Audit.answers[CELEBRATE_KEY].as_string(), ""))
    current = Audit.submitted_at >= start
    stmt = (
        select(
            _flag(current).label("cur"),
            Audit.overall_grade,
            func.count(),
            func.sum(_flag(func.length(celebrate_text) > 0)),
            func.sum(_flag(Audit.safeguarding_concern.is_(True))),
        )
        .where(Audit.submitted_at >= prev_start, _completed_by(Audit, end))
        .group_by(_flag(current), Audit.overall_grade)
    )
    return [(bool(cur), g, int(n), int(c or 0), int(s or 0))
            for cur, g, n, c, s in await session.execute(stmt)]


async def _domains(session: AsyncSession, prev_start: datetime, start: datetime,
                   end: datetime) -> list[tuple[bool, str, str, int]]:
    current = Audit.submitted_at >= start
    stmt = (
        select(_flag(current), DomainGrade.domain, DomainGrade.grade, func.count())
        .select_from(Audit)
        .join(DomainGrade, DomainGrade.audit_id == Audit.id)
        .where(Audit.submitted_at >= prev_start, _completed_by(Audit, end))
        .group_by(_flag(current), DomainGrade.domain, DomainGrade.grade)
    )
    return [(bool(c), d, g, int(n)) for c, d, g, n in await session.execute(stmt)]


async def _actions(session: AsyncSession, start: datetime, end: datetime, end_day: date,
                   dialect: str) -> ActionProgress:
    a = AuditAction
    open_at_end = and_(a.created_at < end, or_(a.done_at.is_(None), a.done_at >= end))
    done_in_period = and_(a.done_at >= start, a.done_at < end)
    on_time = _utc_date(a.done_at, dialect) <= a.due_on
    stmt = (
        select(
            func.count(),
            func.sum(_flag(and_(a.created_at >= start, a.created_at < end))),
            func.sum(_flag(open_at_end)),
            func.sum(_flag(and_(open_at_end, a.due_on < end_day))),
            func.sum(_flag(and_(done_in_period, on_time))),
            func.sum(_flag(and_(done_in_period, ~on_time))),
        )
        # Only rows that can count: raised since the start, not done, or done since the
        # start; with indexes on created_at and done_at this reads one period's actions.
        .where(
            a.status.not_in(sorted(ACTION_CLOSED_UNDONE)),
            or_(a.created_at >= start, a.done_at.is_(None), a.done_at >= start),
        )
    )
    row = (await session.execute(stmt)).one()
    _, raised, open_, overdue, on_time_n, late = (int(v or 0) for v in row)
    return ActionProgress(raised=raised, open=open_, overdue=overdue,
                          done_on_time=on_time_n, done_late=late)


async def _reaudits(session: AsyncSession, framework: Framework, period: Period,
                    end: datetime) -> tuple[ReauditCount, ...]:
    if not framework.reaudit_months:
        return ()
    zone = framework.zone
    later = aliased(Audit)
    overdue_terms = []
    due_terms = []
    for grade, months in framework.reaudit_months.items():
        # due date = submission day + N months; for a month-start threshold T,
        # due < T exactly when the submission day < T - N months (clamping keeps order).
        overdue_before = local_midnight_utc(shift_month(period.end, -months), zone)
        due_before = local_midnight_utc(shift_month(period.next().end, -months), zone)
        is_grade = Audit.overall_grade == grade
        overdue_terms.append(and_(is_grade, Audit.submitted_at < overdue_before))
        due_terms.append(and_(is_grade, Audit.submitted_at >= overdue_before,
                              Audit.submitted_at < due_before))
    superseded = exists().where(
        later.case_ref == Audit.case_ref,
        later.submitted_at > Audit.submitted_at,
        _completed_by(later, end),
    )
    stmt = (
        select(Audit.overall_grade, func.count(), func.sum(_flag(or_(*overdue_terms))),
               func.sum(_flag(or_(*due_terms))))
        .join(Case, Case.case_ref == Audit.case_ref)
        .where(
            Audit.overall_grade.in_(sorted(framework.reaudit_months)),
            _completed_by(Audit, end),
            or_(Case.closed_on.is_(None), Case.closed_on >= period.end),
            ~superseded,
        )
        .group_by(Audit.overall_grade)
    )
    found = {g: (int(n), int(o or 0), int(d or 0)) for g, n, o, d in await session.execute(stmt)}
    ordered = sorted(framework.reaudit_months, key=lambda g: _grade_rank(framework, g))
    return tuple(
        ReauditCount(grade=g, months=framework.reaudit_months[g],
                     pending=found.get(g, (0, 0, 0))[0], overdue=found.get(g, (0, 0, 0))[1],
                     due_next_period=found.get(g, (0, 0, 0))[2])
        for g in ordered
    )


# --------------------------------------------------------------------------- assembly


def _grade_rank(framework: Framework, key: str) -> int:
    try:
        return framework.grade(key).rank
    except KeyError:
        return len(framework.grades)


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _distribution(framework: Framework, current: Mapping[str, int],
                  previous: Mapping[str, int]) -> Distribution:
    """Shares and changes from per-grade counts (a few numbers, not audit rows)."""
    keys = [g.key for g in framework.grades]
    keys += sorted((set(current) | set(previous)) - set(keys))  # grades no longer on the scale
    total, prev_total = sum(current.values()), sum(previous.values())
    rows = []
    for k in keys:
        n, p = current.get(k, 0), previous.get(k, 0)
        share, prev_share = _pct(n, total), _pct(p, prev_total)
        rows.append(GradeCount(grade=k, count=n, previous=p, change=n - p, share=share,
                               previous_share=prev_share,
                               share_change=round(share - prev_share, 1)))
    good = _pct(sum(current.get(k, 0) for k in framework.good_or_better), total)
    prev_good = _pct(sum(previous.get(k, 0) for k in framework.good_or_better), prev_total)
    return Distribution(total=total, previous_total=prev_total, grades=tuple(rows),
                        good_or_better=good, previous_good_or_better=prev_good,
                        good_or_better_change=round(good - prev_good, 1))


def _domain_labels(framework: Framework) -> tuple[list[str], dict[str, str]]:
    order: list[str] = []
    labels: dict[str, str] = {}
    for tool in framework.tools.values():
        for d in tool.domains:
            if d.key not in labels:
                order.append(d.key)
                labels[d.key] = d.title
    return order, labels


def _units(rows: Iterable[tuple[str, int, int]], order: list[str],
           labels: Mapping[str, str]) -> tuple[UnitCount, ...]:
    sums: dict[str, list[int]] = {k: [0, 0] for k in order}
    for key, allocated, completed in rows:
        acc = sums.setdefault(key, [0, 0])
        acc[0] += allocated
        acc[1] += completed
    keys = order + sorted(k for k in sums if k not in order)
    return tuple(UnitCount(key=k, label=labels.get(k, k), allocated=sums[k][0],
                           completed=sums[k][1]) for k in keys)


async def compute_digest(sessions: async_sessionmaker[AsyncSession], framework: Framework,
                         period: str | Period) -> Digest:
    """The digest for a month or quarter, as of the end of that period."""
    p = Period.parse(period) if isinstance(period, str) else period
    prev = p.previous()
    zone = framework.zone
    start, end = local_midnight_utc(p.start, zone), local_midnight_utc(p.end, zone)
    prev_start = local_midnight_utc(prev.start, zone)
    async with sessions() as session:
        conn = await session.connection()
        dialect = conn.dialect.name
        if dialect == "postgresql":
            # One snapshot for every query, so the figures add up even while people submit.
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        allocation = await _allocation(session, p, end)
        overall = await _overall(session, prev_start, start, end)
        domains = await _domains(session, prev_start, start, end)
        actions = await _actions(session, start, end, p.end, dialect)
        reaudits = await _reaudits(session, framework, p, end)

    grades: dict[bool, dict[str, int]] = {True: {}, False: {}}
    celebrate = safeguarding = 0
    for cur, grade, n, c, s in overall:
        if grade is not None:
            grades[cur][grade] = grades[cur].get(grade, 0) + n
        if cur:
            celebrate += c
            safeguarding += s
    submitted = sum(n for cur, _, n, _, _ in overall if cur)
    previous_submitted = sum(n for cur, _, n, _, _ in overall if not cur)

    per_domain: dict[str, dict[bool, dict[str, int]]] = defaultdict(lambda: {True: {}, False: {}})
    for cur, domain, grade, n in domains:
        per_domain[domain][cur][grade] = n
    order, labels = _domain_labels(framework)
    domain_keys = [k for k in order if k in per_domain]
    domain_keys += sorted(k for k in per_domain if k not in labels)

    team_rows: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for team, _, n, c in allocation:
        team_rows[team][0] += n
        team_rows[team][1] += c
    area_labels = {k: a.label for k, a in framework.areas.items()}

    return Digest(
        period=p.key,
        kind=p.kind,
        label=p.label,
        start=p.start.isoformat(),
        end=p.end.isoformat(),
        previous_period=prev.key,
        allocated=sum(n for _, _, n, _ in allocation),
        completed=sum(c for _, _, _, c in allocation),
        submitted=submitted,
        previous_submitted=previous_submitted,
        teams=tuple(UnitCount(key=t, label=t, allocated=v[0], completed=v[1])
                    for t, v in sorted(team_rows.items())),
        areas=_units(((a, n, c) for _, a, n, c in allocation), list(framework.areas),
                     area_labels),
        grades=_distribution(framework, grades[True], grades[False]),
        domains=tuple(
            DomainDistribution(domain=k, label=labels.get(k, k),
                               distribution=_distribution(framework, per_domain[k][True],
                                                          per_domain[k][False]))
            for k in domain_keys
        ),
        actions=actions,
        reaudits=reaudits,
        celebrate=celebrate,
        safeguarding_concerns=safeguarding,
    )


# --------------------------------------------------------------------------- rendering


def _signed(value: float, unit: str = "") -> str:
    if value == 0:
        return f"±0{unit}"
    text = f"{value:+.1f}" if isinstance(value, float) else f"{value:+d}"
    return text.removesuffix(".0") + unit


def _bar(share: float, width: int = 20) -> str:
    """A text bar: a picture of the distribution reads faster than the numbers alone."""
    filled = round(share / 100 * width)
    return "█" * filled + "░" * (width - filled)


def _grade_label(framework: Framework, key: str) -> str:
    try:
        return framework.grade(key).label
    except KeyError:
        return key


def digest_text(digest: Digest, framework: Framework) -> str:
    """A short markdown rendering for the channel, with the framework's labels."""
    period_word = digest.kind
    lines = [f"**{framework.authority}: audit digest for {digest.label}**", ""]
    rate = _pct(digest.completed, digest.allocated)
    lines.append(f"**Audits:** {digest.completed} of {digest.allocated} allocated completed "
                 f"({rate:g}%); {digest.submitted} submitted in the {period_word} "
                 f"({_signed(digest.submitted - digest.previous_submitted)} on "
                 f"{digest.previous_period}).")
    if digest.teams:
        lines.append("")
        lines.append("**By team** (completed / allocated):")
        lines += [f"- {t.label}: {t.completed} / {t.allocated}" for t in digest.teams]
    if any(a.allocated for a in digest.areas):
        lines.append("")
        lines.append("**By area of planning** (completed / allocated):")
        lines += [f"- {a.label}: {a.completed} / {a.allocated}"
                  for a in digest.areas if a.allocated]

    g = digest.grades
    lines += ["", f"**Overall grades** ({g.total} audits; {digest.previous_period}: "
                  f"{g.previous_total}):"]
    for row in g.grades:
        if row.count or row.previous:
            lines.append(f"- `{_bar(row.share)}` {_grade_label(framework, row.grade)}: "
                         f"{row.count} ({row.share:g}%, {_signed(row.share_change, ' pts')})")
    lines.append(f"- Good or better: {g.good_or_better:g}% "
                 f"({_signed(g.good_or_better_change, ' pts')} on {digest.previous_period})")

    if digest.domains:
        lines += ["", "**Domains** (good or better, change on last period):"]
        for d in digest.domains:
            dist = d.distribution
            lines.append(f"- {d.label}: {dist.good_or_better:g}% "
                         f"({_signed(dist.good_or_better_change, ' pts')})")

    a = digest.actions
    done = a.done_on_time + a.done_late
    lines += ["", f"**Actions:** {a.open} open at the end of the {period_word}, {a.overdue} "
                  f"overdue; {done} done ({a.done_on_time} on time, {a.done_late} late); "
                  f"{a.raised} raised."]
    if digest.reaudits:
        parts = [f"{_grade_label(framework, r.grade)}: {r.overdue} overdue, "
                 f"{r.due_next_period} due next {period_word}" for r in digest.reaudits]
        lines.append(f"**Re-audits:** {digest.reaudits_overdue} overdue, "
                     f"{digest.reaudits_due_next} due next {period_word} ({'; '.join(parts)}).")
    plural = "" if digest.celebrate == 1 else "s"
    lines.append(f"**Outstanding practice to celebrate:** {digest.celebrate} audit{plural}.")
    lines.append(f"**Serious safeguarding concerns raised:** {digest.safeguarding_concerns}.")
    return "\n".join(lines)
