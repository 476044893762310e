"""The leadership digest (SPEC R12): aggregates for one month or quarter, for a channel.

Everything here is computed by the database (GROUP BY, COUNT, SUM(CASE ...)) from a handful
of queries that each touch one period's rows through an index, so a digest costs about the
same after five years as after one. Only the re-audit figure has to look at history (an
Inadequate audit from years ago is still owed a re-audit) and it does so through the
``(case_ref, submitted_at)`` index; see bench/RESULTS.md for the measured growth.

The digest is posted to a leadership channel, so it holds aggregates only: no case
reference, no child's details, no staff id and no free text (the "celebrate" answers are
counted, never quoted). Drill-down goes through the export, to authorised people only.

Every figure is "as of the end of the period" (or as of now, for a period still running:
an action due later this month is not overdue yet), so a digest for a past period gives the
same answer whenever it is computed (the job that posts it can run twice safely):

* allocated: audits of the monthly allocation whose month is in the period (cancelled ones
  left out; thematic audits are reported apart, each theme on its own);
* completed: of those, the ones submitted by the end of the period;
* submitted: audits submitted during the period, whatever month they were allocated in;
  the grade distributions, "celebrate" and safeguarding counts are over these, so each
  audit is counted in exactly one period;
* grades are the FINAL grades (``store/grading.py``: the moderator's where a moderator
  regraded the audit, else the auditor's);
* teams: ``teams`` is the case's team, ``auditor_teams`` the auditor's (see qa/digest.py);
* actions: open at the end of the period, overdue then (due before that day; for a period
  still running, due before today),
  and done during the period on time or late (on time = done by the end of the due date,
  taken in UTC: up to an hour's grace in British Summer Time);
* moderation: rounds decided during the period (agreed, regraded, returned for rework) and
  rounds waiting for their moderator at its end; agreement = agreed of agreed + regraded;
* escalations open at the end of the period: cases tracked to Good (an open remedial
  plan), remedial plans past due with no plan, open actions overdue by the ladder's
  ``step_days`` or more (their owner's manager has been told), unacknowledged
  safeguarding alerts;
* re-audits: cases whose latest submitted audit by the end of the period was graded with a
  ``reaudit_months`` grade (Inadequate, Requires Improvement), the case not closed by then;
  overdue when the re-audit date (submission date + N months) is on or before the period's
  last day, due next when it falls in the following period of the same length.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Date, Integer, and_, case, cast, exists, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from qa.digest import (
    ActionProgress,
    Digest,
    Distribution,
    DomainDistribution,
    EscalationCount,
    GradeCount,
    ModerationCount,
    Phrase,
    ReauditCount,
    ThematicRun,
    ThemeCount,
    UnitCount,
    distribution,
)
from qa.framework import Framework
from qa.periods import Period, local_date, local_midnight_utc, shift_month
from qa.themes import theme_text, themes_raised
from store.completion import NO_TEAM_LABEL
from store.grading import final_domain_grades, final_overall_grade
from store.models import (
    AllocationRun,
    Audit,
    AuditAction,
    Case,
    Moderation,
    Remedial,
    SafeguardingAlert,
    Staff,
    Team,
)

__all__ = [
    "ActionProgress", "Digest", "Distribution", "DomainDistribution", "GradeCount", "Phrase",
    "ReauditCount", "ThematicRun", "ThemeCount", "UnitCount", "compute_digest",
]

# Audit statuses that are not (or no longer) an allocation: never counted as allocated.
AUDIT_CANCELLED: Final = frozenset({"cancelled", "withdrawn"})
# Statuses whose submission does not stand (returned by a moderator for rework).
AUDIT_NOT_COMPLETE: Final = AUDIT_CANCELLED | {"returned"}
# Action statuses that close an action without it being done: never open, never overdue.
ACTION_CLOSED_UNDONE: Final = frozenset({"cancelled", "withdrawn"})
# The answer whose presence marks outstanding practice to celebrate.
CELEBRATE_KEY: Final = "celebrate"
# Audits chosen by a theme, not by the monthly sample.
THEMATIC: Final = "thematic"




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


def _sample(audit: Any = Audit) -> ColumnElement[bool]:
    """The monthly sample: random and re-audit allocations, not thematic audits."""
    return audit.reason != THEMATIC


async def _allocation(session: AsyncSession, period: Period,
                      end: datetime) -> list[tuple[str, str, str, int, int]]:
    """(case's team, auditor's team, area, allocated, completed) for the monthly sample."""
    auditor_team = aliased(Team)
    stmt = (
        select(Team.name, auditor_team.name, Audit.area,
               func.count(), func.sum(_flag(_completed_by(Audit, end))))
        .join(Team, Team.id == Audit.team_id)
        .join(Staff, Staff.staff_id == Audit.auditor_id)
        .outerjoin(auditor_team, auditor_team.id == Staff.team_id)
        .where(Audit.month.in_(period.month_keys),
               Audit.status.not_in(sorted(AUDIT_CANCELLED)), _sample())
        .group_by(Team.name, auditor_team.name, Audit.area)
    )
    return [(t, at or NO_TEAM_LABEL, a, int(n), int(c or 0))
            for t, at, a, n, c in await session.execute(stmt)]


async def _overall(session: AsyncSession, prev_start: datetime, start: datetime,
                   end: datetime) -> list[tuple[bool, str | None, int]]:
    """Final overall grades of the sample, this period and last."""
    current = Audit.submitted_at >= start
    grade = final_overall_grade(Audit)
    stmt = (
        select(_flag(current).label("cur"), grade, func.count())
        .where(Audit.submitted_at >= prev_start, _completed_by(Audit, end), _sample())
        .group_by(_flag(current), grade)
    )
    return [(bool(cur), g, int(n)) for cur, g, n in await session.execute(stmt)]


async def _celebrations(session: AsyncSession, start: datetime,
                        end: datetime) -> tuple[list[tuple[str, int]], int]:
    """Audits submitted in the period with practice to celebrate, by the case's team, and
    serious safeguarding concerns raised (every audit, thematic ones included)."""
    celebrate_text = func.trim(func.coalesce(Audit.answers[CELEBRATE_KEY].as_string(), ""))
    stmt = (
        select(Team.name, func.sum(_flag(func.length(celebrate_text) > 0)),
               func.sum(_flag(Audit.safeguarding_concern.is_(True))))
        .join(Team, Team.id == Audit.team_id)
        .where(Audit.submitted_at >= start, _completed_by(Audit, end))
        .group_by(Team.name)
    )
    rows = [(t, int(c or 0), int(s or 0)) for t, c, s in await session.execute(stmt)]
    return sorted((t, c) for t, c, _ in rows if c), sum(s for _, _, s in rows)


async def _domains(session: AsyncSession, prev_start: datetime, start: datetime,
                   end: datetime) -> list[tuple[bool, str, str, int]]:
    current = Audit.submitted_at >= start
    grades = final_domain_grades()
    stmt = (
        select(_flag(current), grades.c.domain, grades.c.grade, func.count())
        .select_from(Audit)
        .join(grades, grades.c.audit_id == Audit.id)
        .where(Audit.submitted_at >= prev_start, _completed_by(Audit, end), _sample())
        .group_by(_flag(current), grades.c.domain, grades.c.grade)
    )
    return [(bool(c), d, g, int(n)) for c, d, g, n in await session.execute(stmt)]


async def _actions(session: AsyncSession, start: datetime, end: datetime, end_day: date,
                   dialect: str) -> ActionProgress:
    """As of ``end``: overdue means due before ``end_day`` (the day ``end`` falls on, or
    the day after the period), so an action due today, or later, is not overdue."""
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


async def _moderation(session: AsyncSession, start: datetime, end: datetime) -> ModerationCount:
    """Rounds decided in [start, end) by outcome; rounds allocated before ``end`` and not
    decided by then."""
    m = Moderation
    decided = {status: int(n) for status, n in (await session.execute(
        select(m.status, func.count()).where(m.decided_at >= start, m.decided_at < end)
        .group_by(m.status))).all()}
    waiting = int(await session.scalar(
        select(func.count()).select_from(m)
        .where(m.allocated_at < end, or_(m.decided_at.is_(None), m.decided_at >= end))) or 0)
    return ModerationCount(agreed=decided.get("agreed", 0), regraded=decided.get("regraded", 0),
                           returned=decided.get("returned", 0), waiting=waiting)


async def _escalations(session: AsyncSession, framework: Framework, end: datetime,
                       end_day: date) -> EscalationCount:
    """As of ``end``: cases on the tracking list (an open remedial plan row), plans past
    their due date with no plan recorded, open actions overdue by the ladder's
    ``step_days`` or more (their owner's manager has been told), alerts not acknowledged."""
    r, a, s = Remedial, AuditAction, SafeguardingAlert
    open_remedial = and_(r.created_at < end, or_(r.closed_at.is_(None), r.closed_at >= end))
    tracked, plans_overdue = (int(v or 0) for v in (await session.execute(
        select(func.count(func.distinct(r.case_ref)),
               func.sum(_flag(and_(r.due_on < end_day,
                                   or_(r.plan_at.is_(None), r.plan_at >= end)))))
        .where(open_remedial))).one())
    past = end_day - timedelta(days=framework.escalation.step_days)
    escalated = int(await session.scalar(
        select(func.count()).select_from(a)
        .where(a.status.not_in(sorted(ACTION_CLOSED_UNDONE)), a.created_at < end,
               or_(a.done_at.is_(None), a.done_at >= end), a.due_on < past)) or 0)
    alerts = int(await session.scalar(
        select(func.count()).select_from(s)
        .where(s.raised_at < end,
               or_(s.acknowledged_at.is_(None), s.acknowledged_at >= end))) or 0)
    return EscalationCount(tracked=tracked, plans_overdue=plans_overdue,
                           actions_escalated=escalated, alerts_unacknowledged=alerts)


async def _reaudits(session: AsyncSession, framework: Framework, period: Period,
                    end: datetime, end_day: date) -> tuple[ReauditCount, ...]:
    """Re-audits owed as of ``end``: overdue when the re-audit date is before ``end_day``,
    due next when it falls before the end of the next period of the same length."""
    if not framework.reaudit_months:
        return ()
    zone = framework.zone
    later = aliased(Audit)
    grade = final_overall_grade(Audit)
    overdue_terms = []
    due_terms = []
    for key, months in framework.reaudit_months.items():
        # due date = submission day + N months; for a day threshold T,
        # due < T exactly when the submission day < T - N months (clamping keeps order).
        overdue_before = local_midnight_utc(shift_month(end_day, -months), zone)
        due_before = local_midnight_utc(shift_month(period.next().end, -months), zone)
        is_grade = grade == key
        overdue_terms.append(and_(is_grade, Audit.submitted_at < overdue_before))
        due_terms.append(and_(is_grade, Audit.submitted_at >= overdue_before,
                              Audit.submitted_at < due_before))
    superseded = exists().where(
        later.case_ref == Audit.case_ref,
        later.submitted_at > Audit.submitted_at,
        _completed_by(later, end),
    )
    stmt = (
        select(grade, func.count(), func.sum(_flag(or_(*overdue_terms))),
               func.sum(_flag(or_(*due_terms))))
        .join(Case, Case.case_ref == Audit.case_ref)
        .where(
            grade.in_(sorted(framework.reaudit_months)),
            _completed_by(Audit, end),
            or_(Case.closed_on.is_(None), Case.closed_on >= end_day),
            ~superseded,
        )
        .group_by(grade)
    )
    found = {g: (int(n), int(o or 0), int(d or 0)) for g, n, o, d in await session.execute(stmt)}
    ordered = sorted(framework.reaudit_months, key=lambda g: _grade_rank(framework, g))
    return tuple(
        ReauditCount(grade=g, months=framework.reaudit_months[g],
                     pending=found.get(g, (0, 0, 0))[0], overdue=found.get(g, (0, 0, 0))[1],
                     due_next_period=found.get(g, (0, 0, 0))[2])
        for g in ordered
    )


async def _texts(session: AsyncSession, prev_start: datetime, start: datetime,
                 end: datetime) -> tuple[dict[str, str], dict[str, str]]:
    """Worries and "needs to be better" of every audit submitted this period and last, by
    case reference (several audits of one case are joined)."""
    stmt = (select(Audit.case_ref, Audit.submitted_at, Audit.answers)
            .where(Audit.submitted_at >= prev_start, _completed_by(Audit, end)))
    current: dict[str, str] = defaultdict(str)
    previous: dict[str, str] = defaultdict(str)
    for ref, submitted, answers in await session.execute(stmt):
        text = theme_text(answers if isinstance(answers, dict) else None)
        if text:
            target = current if submitted >= start else previous
            target[ref] = f"{target[ref]}\n{text}" if target[ref] else text
    return dict(current), dict(previous)


async def _thematic(session: AsyncSession, framework: Framework, period: Period,
                    start: datetime, end: datetime) -> tuple[ThematicRun, ...]:
    """Each thematic audit active in the period: allocated then, or submitted in it."""
    active = (select(Audit.run_id).where(
        Audit.reason == THEMATIC,
        or_(Audit.month.in_(period.month_keys),
            and_(Audit.submitted_at >= start, Audit.submitted_at < end))).distinct())
    runs = (await session.execute(
        select(AllocationRun.id, AllocationRun.key, AllocationRun.theme, AllocationRun.month)
        .where(AllocationRun.kind == THEMATIC, AllocationRun.id.in_(active))
        .order_by(AllocationRun.month, AllocationRun.id))).all()
    if not runs:
        return ()
    grade = final_overall_grade(Audit)
    stmt = (select(Audit.run_id, grade, func.count(), func.sum(_flag(_completed_by(Audit, end))))
            .where(Audit.run_id.in_([r.id for r in runs]), Audit.allocated_at < end,
                   Audit.status.not_in(sorted(AUDIT_CANCELLED)))
            .group_by(Audit.run_id, grade))
    tallies: dict[int, list[Any]] = {r.id: [0, 0, {}] for r in runs}
    for run_id, g, n, done in await session.execute(stmt):
        t = tallies[run_id]
        t[0] += int(n)
        t[1] += int(done or 0)
        if g is not None and done:
            t[2][g] = t[2].get(g, 0) + int(done)
    return tuple(
        ThematicRun(key=r.key, theme=r.theme or r.key, month=r.month,
                    allocated=tallies[r.id][0], completed=tallies[r.id][1],
                    grades=distribution(framework, tallies[r.id][2], {}))
        for r in runs)


# --------------------------------------------------------------------------- assembly


def _grade_rank(framework: Framework, key: str) -> int:
    try:
        return framework.grade(key).rank
    except KeyError:
        return len(framework.grades)


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
           labels: Mapping[str, str], *, keep_empty: bool) -> tuple[UnitCount, ...]:
    sums: dict[str, list[int]] = {k: [0, 0] for k in order} if keep_empty else {}
    for key, allocated, completed in rows:
        acc = sums.setdefault(key, [0, 0])
        acc[0] += allocated
        acc[1] += completed
    keys = [k for k in order if k in sums] + sorted(k for k in sums if k not in order)
    return tuple(UnitCount(key=k, label=labels.get(k, k), allocated=sums[k][0],
                           completed=sums[k][1]) for k in keys)


def _theme_counts(framework: Framework, current: Mapping[str, str],
                  previous: Mapping[str, str]) -> tuple[ThemeCount, ...]:
    """Cases whose audits raise each theme, most raised first (framework order on ties)."""
    def tally(texts: Mapping[str, str]) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for text in texts.values():
            for key in themes_raised(text, framework.themes):
                counts[key] += 1
        return counts

    cur, prev = tally(current), tally(previous)
    order = {t.key: i for i, t in enumerate(framework.themes)}
    rows = [ThemeCount(t.key, t.label, cur.get(t.key, 0), prev.get(t.key, 0))
            for t in framework.themes]
    return tuple(sorted(rows, key=lambda r: (-r.count, order[r.key])))


async def compute_digest(sessions: async_sessionmaker[AsyncSession], framework: Framework,
                         period: str | Period, *, as_of: datetime | None = None,
                         phrases: bool = True) -> Digest:
    """The digest for a month or quarter, as of the end of that period, or as of ``as_of``
    when that comes first (a period still running is counted up to now, never ahead).

    ``phrases`` False skips the emerging-phrase extraction (tests of other figures).
    """
    p = Period.parse(period) if isinstance(period, str) else period
    prev = p.previous()
    zone = framework.zone
    start, end = local_midnight_utc(p.start, zone), local_midnight_utc(p.end, zone)
    complete = as_of is None or as_of >= end
    if not complete:
        assert as_of is not None
        if as_of.tzinfo is None:
            raise ValueError("as_of must carry a time zone")
        end = max(as_of, start)
    end_day = p.end if complete else local_date(end, zone)
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
        actions = await _actions(session, start, end, end_day, dialect)
        reaudits = await _reaudits(session, framework, p, end, end_day)
        celebrate_by_team, safeguarding = await _celebrations(session, start, end)
        current_texts, previous_texts = await _texts(session, prev_start, start, end)
        thematic = await _thematic(session, framework, p, start, end)
        moderation = await _moderation(session, start, end)
        escalations = await _escalations(session, framework, end, end_day)
        names = list((await session.scalars(select(Staff.name))).all()) if phrases else []

    grades: dict[bool, dict[str, int]] = {True: {}, False: {}}
    for cur, grade, n in overall:
        if grade is not None:
            grades[cur][grade] = grades[cur].get(grade, 0) + n
    submitted = sum(n for cur, _, n in overall if cur)
    previous_submitted = sum(n for cur, _, n in overall if not cur)

    per_domain: dict[str, dict[bool, dict[str, int]]] = defaultdict(lambda: {True: {}, False: {}})
    for cur, domain, grade, n in domains:
        per_domain[domain][cur][grade] = n
    order, labels = _domain_labels(framework)
    domain_keys = [k for k in order if k in per_domain]
    domain_keys += sorted(k for k in per_domain if k not in labels)

    area_labels = {k: a.label for k, a in framework.areas.items()}
    emerging: tuple[Phrase, ...] = ()
    if phrases and current_texts:
        from reports.themes import emerging_phrases

        emerging = emerging_phrases(current_texts, framework.themes, names=names)

    return Digest(
        period=p.key,
        kind=p.kind,
        label=p.label,
        start=p.start.isoformat(),
        end=p.end.isoformat(),
        previous_period=prev.key,
        allocated=sum(n for *_, n, _ in allocation),
        completed=sum(c for *_, c in allocation),
        submitted=submitted,
        previous_submitted=previous_submitted,
        teams=_units(((t, n, c) for t, _, _, n, c in allocation), [], {}, keep_empty=False),
        areas=_units(((a, n, c) for _, _, a, n, c in allocation), list(framework.areas),
                     area_labels, keep_empty=True),
        grades=distribution(framework, grades[True], grades[False]),
        domains=tuple(
            DomainDistribution(domain=k, label=labels.get(k, k),
                               distribution=distribution(framework, per_domain[k][True],
                                                         per_domain[k][False]))
            for k in domain_keys
        ),
        actions=actions,
        reaudits=reaudits,
        celebrate=sum(n for _, n in celebrate_by_team),
        safeguarding_concerns=safeguarding,
        as_of=end.isoformat(),
        complete=complete,
        auditor_teams=_units(((at, n, c) for _, at, _, n, c in allocation), [], {},
                             keep_empty=False),
        celebrate_by_team=tuple(celebrate_by_team),
        themes=_theme_counts(framework, current_texts, previous_texts),
        emerging=emerging,
        thematic=thematic,
        moderation=moderation,
        escalations=escalations,
    )
