"""The leadership digest's figures, and what of them a channel may show (pure, no I/O).

``Digest`` is what ``reports/digest.py`` computes from the database (exact counts, for the
QA team and for tests). ``channel_view`` turns it into a :class:`DigestView`: the same
figures after small-number protection (``qa/disclosure.py``), with every share and change
worked out only from what may be shown. The channel card, the printed digest, the Details
drill-down's headline and the monthly report all start from one ``Digest``; everything a
channel or a board paper shows goes through ``channel_view``.

Which team a table uses is part of its meaning and is named on it:

* **case's team** (``teams``): the team holding the case when it was allocated; audits of
  that team's practice, and the celebrations;
* **auditor's team** (``auditor_teams``): the team of the person who audits; completion is
  the auditors' work, so this is the table that says who is behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from qa.disclosure import Figure, Protector, share
from qa.framework import Framework
from qa.periods import Period

# --------------------------------------------------------------------------- exact figures


@dataclass(frozen=True)
class UnitCount:
    """Audits allocated in the period for one team or area, and how many were completed."""

    key: str
    label: str
    allocated: int
    completed: int


@dataclass(frozen=True)
class GradeCount:
    """One grade's count this period and last, with shares of all graded in each.

    ``previous_share`` and ``share_change`` are None when either period graded nothing:
    a change against an empty period means nothing.
    """

    grade: str
    count: int
    previous: int
    change: int
    share: float
    previous_share: float | None
    share_change: float | None


@dataclass(frozen=True)
class Distribution:
    total: int
    previous_total: int
    grades: tuple[GradeCount, ...]
    good_or_better: float
    previous_good_or_better: float | None
    good_or_better_change: float | None

    def counts(self) -> dict[str, int]:
        return {g.grade: g.count for g in self.grades}

    def previous_counts(self) -> dict[str, int]:
        return {g.grade: g.previous for g in self.grades}


@dataclass(frozen=True)
class DomainDistribution:
    domain: str
    label: str
    distribution: Distribution


@dataclass(frozen=True)
class ActionProgress:
    """Audit actions: raised in the period; open, overdue and not yet due as of its end
    (or now, for a period still running); done during it, on time or late."""

    raised: int
    open: int
    overdue: int
    done_on_time: int
    done_late: int

    @property
    def not_yet_due(self) -> int:
        return self.open - self.overdue


@dataclass(frozen=True)
class ModerationCount:
    """Moderation rounds decided in the period (SPEC R10): agreed, regraded, returned for
    rework; and rounds still waiting for their moderator at its end."""

    agreed: int = 0
    regraded: int = 0
    returned: int = 0
    waiting: int = 0

    @property
    def decided(self) -> int:
        return self.agreed + self.regraded + self.returned


@dataclass(frozen=True)
class EscalationCount:
    """What is escalated and not yet resolved at the end of the period: cases tracked to
    Good (an open remedial plan), remedial plans past their due date without a plan, open
    actions overdue long enough to have gone past their owner (by the ladder's
    ``step_days``), and safeguarding alerts nobody has acknowledged."""

    tracked: int = 0
    plans_overdue: int = 0
    actions_escalated: int = 0
    alerts_unacknowledged: int = 0


@dataclass(frozen=True)
class ReauditCount:
    """Re-audits owed at the end of the period for cases last graded ``grade``."""

    grade: str
    months: int
    pending: int
    overdue: int
    due_next_period: int


@dataclass(frozen=True)
class ThemeCount:
    """Audits whose worries or "needs to be better" raise a theme, this period and last."""

    key: str
    label: str
    count: int
    previous: int


@dataclass(frozen=True)
class Phrase:
    """An emerging phrase and the number of different cases whose audits use it."""

    text: str
    cases: int


@dataclass(frozen=True)
class ThematicRun:
    """One thematic audit (``qabot theme launch``), reported apart from the monthly sample."""

    key: str
    theme: str
    month: str
    allocated: int
    completed: int
    grades: Distribution


@dataclass(frozen=True)
class Digest:
    """The leadership digest: aggregates only, JSON-serialisable as it stands (to_json).

    The monthly sample (allocated, completed, grades, domains) is the monthly allocation's
    audits (random and re-audits); thematic audits are reported apart (``thematic``)
    because cases chosen by a theme would skew the sample. Actions, re-audits, themes,
    celebrations and safeguarding count every audit.
    """

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
    teams: tuple[UnitCount, ...]  # the case's team
    areas: tuple[UnitCount, ...]
    grades: Distribution
    domains: tuple[DomainDistribution, ...]
    actions: ActionProgress
    reaudits: tuple[ReauditCount, ...]
    celebrate: int
    safeguarding_concerns: int
    as_of: str = ""  # ISO date-time the figures stand at: the period's end, or earlier
    complete: bool = True  # False while the period is still running
    auditor_teams: tuple[UnitCount, ...] = ()  # the auditor's team
    celebrate_by_team: tuple[tuple[str, int], ...] = ()  # the case's team
    themes: tuple[ThemeCount, ...] = ()
    emerging: tuple[Phrase, ...] = ()
    thematic: tuple[ThematicRun, ...] = ()
    moderation: ModerationCount = field(default_factory=ModerationCount)
    escalations: EscalationCount = field(default_factory=EscalationCount)

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


def pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def distribution(framework: Framework, current: Mapping[str, int],
                 previous: Mapping[str, int]) -> Distribution:
    """Shares and changes from per-grade counts (a few numbers, not audit rows)."""
    keys = [g.key for g in framework.grades]
    keys += sorted((set(current) | set(previous)) - set(keys))  # grades no longer on the scale
    total, prev_total = sum(current.values()), sum(previous.values())
    comparable = total > 0 and prev_total > 0
    rows = []
    for k in keys:
        n, p = current.get(k, 0), previous.get(k, 0)
        s = pct(n, total)
        ps = pct(p, prev_total) if prev_total else None
        rows.append(GradeCount(grade=k, count=n, previous=p, change=n - p, share=s,
                               previous_share=ps,
                               share_change=round(s - ps, 1) if comparable and ps is not None
                               else None))
    good = pct(sum(current.get(k, 0) for k in framework.good_or_better), total)
    prev_good = (pct(sum(previous.get(k, 0) for k in framework.good_or_better), prev_total)
                 if prev_total else None)
    return Distribution(total=total, previous_total=prev_total, grades=tuple(rows),
                        good_or_better=good, previous_good_or_better=prev_good,
                        good_or_better_change=(round(good - prev_good, 1)
                                               if comparable and prev_good is not None else None))


# --------------------------------------------------------------------------- what may be shown


@dataclass(frozen=True)
class UnitRow:
    label: str
    allocated: Figure
    completed: Figure
    rate: float | None  # completed as a percentage of allocated


@dataclass(frozen=True)
class GradeRow:
    key: str
    label: str
    count: Figure
    share: float | None
    previous: Figure
    previous_share: float | None
    change: float | None  # percentage points on the previous period


@dataclass(frozen=True)
class DistributionView:
    total: Figure
    previous_total: Figure
    rows: tuple[GradeRow, ...]
    good_or_better: float | None
    previous_good_or_better: float | None
    good_or_better_change: float | None

    @property
    def previous_empty(self) -> bool:
        return self.previous_total.value == 0

    @property
    def chartable(self) -> bool:
        """Whether a chart may draw it: every count shown (a bar shows its size)."""
        return self.total.shown and self.total.value > 0 and all(r.count.shown for r in self.rows)

    @property
    def previous_chartable(self) -> bool:
        return (self.previous_total.shown and self.previous_total.value > 0
                and all(r.previous.shown for r in self.rows))


@dataclass(frozen=True)
class DomainRow:
    label: str
    distribution: DistributionView


@dataclass(frozen=True)
class ReauditRow:
    label: str
    months: int
    overdue: Figure
    due_next: Figure


@dataclass(frozen=True)
class ThemeRow:
    label: str
    count: Figure
    previous: Figure


@dataclass(frozen=True)
class ThematicView:
    theme: str
    month: str
    allocated: Figure
    completed: Figure
    grades: DistributionView


@dataclass(frozen=True)
class ActionsView:
    raised: Figure
    done_on_time: Figure
    done_late: Figure
    overdue: Figure
    not_yet_due: Figure


@dataclass(frozen=True)
class ModerationView:
    decided: Figure
    agreed: Figure
    regraded: Figure
    returned: Figure
    waiting: Figure
    agreement: float | None  # agreed of agreed + regraded, when both are shown


@dataclass(frozen=True)
class EscalationsView:
    tracked: Figure
    plans_overdue: Figure
    actions_escalated: Figure
    alerts_unacknowledged: Figure


@dataclass(frozen=True)
class DigestView:
    """The digest as a channel may show it: every count a :class:`Figure`."""

    authority: str
    period: str
    kind: str  # "month" | "quarter"
    label: str
    previous_label: str
    complete: bool
    as_of: str
    allocated: Figure
    completed: Figure
    completion_rate: float | None
    teams: tuple[UnitRow, ...]  # the case's team
    auditor_teams: tuple[UnitRow, ...]  # the auditor's team
    areas: tuple[UnitRow, ...]
    grades: DistributionView
    domains: tuple[DomainRow, ...]
    actions: ActionsView
    reaudits: tuple[ReauditRow, ...]
    celebrate: Figure
    celebrate_by_team: tuple[tuple[str, Figure], ...]
    safeguarding: Figure
    themes: tuple[ThemeRow, ...]
    emerging: tuple[str, ...]
    thematic: tuple[ThematicView, ...] = field(default=())
    moderation: ModerationView | None = None
    escalations: EscalationsView | None = None


class _Builder:
    def __init__(self, framework: Framework) -> None:
        self.fw = framework
        self.p = Protector()
        self.fig: dict[Any, Figure] = {}

    def units(self, name: str, rows: Sequence[UnitCount], alloc_key: Any, done_key: Any) -> None:
        a = [self.p.add((name, "a", r.key), r.allocated) for r in rows]
        c = [self.p.add((name, "c", r.key), r.completed) for r in rows]
        if rows:
            self.p.total(alloc_key, a)
            self.p.total(done_key, c)

    def dist(self, name: Any, d: Distribution) -> None:
        cur = [self.p.add((name, "g", g.grade), g.count) for g in d.grades]
        prev = [self.p.add((name, "p", g.grade), g.previous) for g in d.grades]
        self.p.add((name, "total"), d.total)
        self.p.add((name, "ptotal"), d.previous_total)
        self.p.total((name, "total"), cur)
        self.p.total((name, "ptotal"), prev)

    def unit_rows(self, name: str, rows: Iterable[UnitCount]) -> tuple[UnitRow, ...]:
        out = []
        for r in rows:
            a, c = self.fig[(name, "a", r.key)], self.fig[(name, "c", r.key)]
            out.append(UnitRow(r.label, a, c, share(c, a)))
        return tuple(out)

    def dist_view(self, name: Any, d: Distribution) -> DistributionView:
        total, ptotal = self.fig[(name, "total")], self.fig[(name, "ptotal")]
        rows = []
        for g in d.grades:
            cur, prev = self.fig[(name, "g", g.grade)], self.fig[(name, "p", g.grade)]
            s, ps = share(cur, total), share(prev, ptotal)
            rows.append(GradeRow(g.grade, self.fw.grade_label(g.grade), cur, s, prev, ps,
                                 round(s - ps, 1) if s is not None and ps is not None else None))
        good = [self.fig[(name, "g", g.grade)] for g in d.grades
                if g.grade in self.fw.good_or_better]
        pgood = [self.fig[(name, "p", g.grade)] for g in d.grades
                 if g.grade in self.fw.good_or_better]
        gs, pgs = share(good, total), share(pgood, ptotal)
        return DistributionView(total, ptotal, tuple(rows), gs, pgs,
                                round(gs - pgs, 1) if gs is not None and pgs is not None else None)


def channel_view(d: Digest, framework: Framework) -> DigestView:
    """The digest with small numbers protected, for a channel and the board report."""
    b = _Builder(framework)
    p = b.p
    p.add("allocated", d.allocated)
    p.add("completed", d.completed)
    b.units("team", d.teams, "allocated", "completed")
    b.units("auditor_team", d.auditor_teams, "allocated", "completed")
    b.units("area", d.areas, "allocated", "completed")
    b.dist("grades", d.grades)
    for dom in d.domains:
        b.dist(("domain", dom.domain), dom.distribution)
    a = d.actions
    for key, value in (("raised", a.raised), ("on_time", a.done_on_time),
                       ("late", a.done_late), ("overdue", a.overdue),
                       ("not_due", a.not_yet_due)):
        p.add(("actions", key), value)
    for r in d.reaudits:
        p.add(("reaudit", "o", r.grade), r.overdue)
        p.add(("reaudit", "n", r.grade), r.due_next_period)
    p.add("celebrate", d.celebrate)
    cel = [p.add(("celebrate", team), n) for team, n in d.celebrate_by_team]
    if cel and sum(n for _, n in d.celebrate_by_team) == d.celebrate:
        p.total("celebrate", cel)
    p.add("safeguarding", d.safeguarding_concerns)
    for t in d.themes:
        p.add(("theme", "c", t.key), t.count)
        p.add(("theme", "p", t.key), t.previous)
    for run in d.thematic:
        p.add(("run", run.key, "a"), run.allocated)
        p.add(("run", run.key, "c"), run.completed)
        b.dist(("run", run.key), run.grades)
    m = d.moderation
    p.add(("moderation", "decided"), m.decided)
    p.total(("moderation", "decided"), [p.add(("moderation", k), v) for k, v in (
        ("agreed", m.agreed), ("regraded", m.regraded), ("returned", m.returned))])
    p.add(("moderation", "waiting"), m.waiting)
    e = d.escalations
    for key, value in (("tracked", e.tracked), ("plans_overdue", e.plans_overdue),
                       ("actions", e.actions_escalated), ("alerts", e.alerts_unacknowledged)):
        p.add(("escalation", key), value)
    b.fig = p.protect()
    f = b.fig
    agreed, regraded = f[("moderation", "agreed")], f[("moderation", "regraded")]
    # agreement = agreed of the rounds that were graded (agreed or regraded), shown only
    # when both counts are: their sum then discloses nothing more.
    both = agreed.shown and regraded.shown
    return DigestView(
        authority=framework.authority,
        period=d.period,
        kind=d.kind,
        label=d.label,
        previous_label=Period.parse(d.previous_period).label,
        complete=d.complete,
        as_of=d.as_of,
        allocated=f["allocated"],
        completed=f["completed"],
        completion_rate=share(f["completed"], f["allocated"]),
        teams=b.unit_rows("team", d.teams),
        auditor_teams=b.unit_rows("auditor_team", d.auditor_teams),
        areas=b.unit_rows("area", d.areas),
        grades=b.dist_view("grades", d.grades),
        domains=tuple(DomainRow(dom.label, b.dist_view(("domain", dom.domain), dom.distribution))
                      for dom in d.domains),
        actions=ActionsView(f[("actions", "raised")], f[("actions", "on_time")],
                            f[("actions", "late")], f[("actions", "overdue")],
                            f[("actions", "not_due")]),
        reaudits=tuple(ReauditRow(framework.grade_label(r.grade), r.months,
                                  f[("reaudit", "o", r.grade)], f[("reaudit", "n", r.grade)])
                       for r in d.reaudits),
        celebrate=f["celebrate"],
        celebrate_by_team=tuple((team, f[("celebrate", team)]) for team, _ in d.celebrate_by_team),
        safeguarding=f["safeguarding"],
        themes=tuple(ThemeRow(t.label, f[("theme", "c", t.key)], f[("theme", "p", t.key)])
                     for t in d.themes),
        emerging=tuple(ph.text for ph in d.emerging),
        thematic=tuple(ThematicView(run.theme, run.month, f[("run", run.key, "a")],
                                    f[("run", run.key, "c")],
                                    b.dist_view(("run", run.key), run.grades))
                       for run in d.thematic),
        moderation=ModerationView(
            f[("moderation", "decided")], agreed, regraded, f[("moderation", "returned")],
            f[("moderation", "waiting")],
            share(agreed, Figure(agreed.value + regraded.value)) if both else None),
        escalations=EscalationsView(
            f[("escalation", "tracked")], f[("escalation", "plans_overdue")],
            f[("escalation", "actions")], f[("escalation", "alerts")]),
    )


# --------------------------------------------------------------------------- case-level detail


@dataclass(frozen=True)
class CaseItem:
    """One case in the 1:1 drill-down: its reference, the case's team and what it is about."""

    case_ref: str
    team: str
    detail: str  # a grade key, a date (ISO), or an owner's name, as the list says
    when: str = ""  # ISO date where the list has one (due date, re-audit date)


@dataclass(frozen=True)
class Drilldown:
    """Case-level detail behind a digest: 1:1 only, to leaders and the QA team."""

    period: str
    label: str
    below_good: tuple[CaseItem, ...]  # audits graded below good or better (detail: grade)
    overdue_actions: tuple[CaseItem, ...]  # detail: owner's name; when: due date
    reaudits_overdue: tuple[CaseItem, ...]  # detail: grade; when: re-audit date
    safeguarding: tuple[CaseItem, ...]
    celebrate: tuple[CaseItem, ...]
    teams: tuple[UnitCount, ...]  # exact, case's team
