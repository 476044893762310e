"""The leadership digest as a channel card, as plain text, and its 1:1 drill-down (R12).

Pure: a :class:`~qa.digest.DigestView` (small numbers already protected) in, a card dict or
text out. The card and the printed text render the same view, so they show the same
figures. A chart is drawn only where every bar is a shown count (a bar reveals its size),
with a table as its fallback for clients without chart elements; everything a chart shows
is also in the card's tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from cards.common import SCHEMA_VERSION
from cards.payloads import DigestDetails
from qa.digest import (
    CaseItem,
    DigestView,
    DistributionView,
    Drilldown,
    GradeRow,
    UnitRow,
)
from qa.disclosure import Figure, State

__all__ = ["FEWER_THAN_5", "WITHHELD", "details_card", "digest_card", "digest_text",
           "figure", "percent"]

FEWER_THAN_5: Final = "fewer than 5"
WITHHELD: Final = "withheld"
NOT_SHOWN: Final = "–"
FOOTNOTE: Final = (f"A count under five (other than none) is shown as \"{FEWER_THAN_5}\"; \"{WITHHELD}\" marks a "
                   "count hidden so that a small one cannot be worked out from a total; "
                   f"\"{NOT_SHOWN}\" a share or change that would give one away. No case, "
                   "child or member of staff is named here.")
#: Case-level lines per list in the 1:1 drill-down (the export has the rest).
DETAIL_LIMIT: Final = 25
_GRADE_COLOURS: Final = ("good", "categoricalBlue", "warning", "attention")


def figure(f: Figure) -> str:
    if f.state is State.SMALL:
        return FEWER_THAN_5
    if f.state is State.WITHHELD:
        return WITHHELD
    return f"{f.value:,}"


def percent(value: float | None) -> str:
    return NOT_SHOWN if value is None else f"{value:g}%"


def points(value: float | None) -> str:
    if value is None:
        return NOT_SHOWN
    return "±0 pts" if value == 0 else f"{value:+g} pts"


def _word(view: DigestView) -> str:
    return view.kind  # "month" | "quarter"


def _as_of_note(view: DigestView) -> str | None:
    if view.complete:
        return None
    return (f"The {_word(view)} is not over: figures so far, as of {view.as_of[:10]} "
            "(an action is overdue only once its due date has passed).")


def _change_note(d: DistributionView, previous: str) -> str:
    if d.previous_empty:
        return f"no audits graded in {previous} to compare with"
    return f"{points(d.good_or_better_change)} on {previous}"


# ---------------------------------------------------------------------------- text


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "  ") -> list[str]:
    rows = [list(r) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    out = [indent + "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    for r in rows:
        out.append(indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return [line.rstrip() for line in out]


def _unit_rows(rows: Sequence[UnitRow]) -> list[tuple[str, str, str, str]]:
    return [(r.label, figure(r.allocated), figure(r.completed), percent(r.rate)) for r in rows]


def _grade_rows(rows: Sequence[GradeRow]) -> list[tuple[str, str, str, str, str]]:
    return [(r.label, figure(r.count), percent(r.share), figure(r.previous), points(r.change))
            for r in rows]


def digest_text(view: DigestView) -> str:
    """The digest as plain text for a terminal: the same figures as the card, no Markdown."""
    w = _word(view)
    lines = [f"{view.authority}: audit digest for {view.label}"]
    if note := _as_of_note(view):
        lines.append(note)
    lines += ["", "AUDITS (monthly sample)",
              f"  Allocated {figure(view.allocated)}, completed {figure(view.completed)} "
              f"({percent(view.completion_rate)})"]
    if view.teams:
        lines += ["", "BY THE CASE'S TEAM (audits of each team's cases)"]
        lines += _table(("Team", "Allocated", "Completed", "Done"), _unit_rows(view.teams))
    if view.auditor_teams:
        lines += ["", "COMPLETION BY THE AUDITOR'S TEAM (who does the audits)"]
        lines += _table(("Team", "Allocated", "Completed", "Done"),
                        _unit_rows(view.auditor_teams))
    areas = [a for a in view.areas if a.allocated.value]
    if areas:
        lines += ["", "BY AREA OF PLANNING"]
        lines += _table(("Area", "Allocated", "Completed", "Done"), _unit_rows(areas))
    g = view.grades
    lines += ["", f"OVERALL GRADES ({figure(g.total)} audits graded; {view.previous_label}: "
                  f"{figure(g.previous_total)})"]
    lines += _table(("Grade", "Count", "Share", view.previous_label, "Change"),
                    _grade_rows(g.rows))
    lines.append(f"  Good or better: {percent(g.good_or_better)} "
                 f"({_change_note(g, view.previous_label)})")
    if view.domains:
        lines += ["", "DOMAINS (good or better)"]
        lines += _table(("Domain", "Graded", "Good or better", "Change"),
                        [(d.label, figure(d.distribution.total),
                          percent(d.distribution.good_or_better),
                          points(d.distribution.good_or_better_change)
                          if not d.distribution.previous_empty else "no earlier audits")
                         for d in view.domains])
    a = view.actions
    lines += ["", "ACTIONS",
              f"  Raised in the {w}: {figure(a.raised)}",
              f"  Done on time: {figure(a.done_on_time)}; done late: {figure(a.done_late)}",
              f"  Overdue: {figure(a.overdue)}; open, not yet due: {figure(a.not_yet_due)}"]
    if view.escalations is not None:
        e = view.escalations
        lines += ["", "ESCALATIONS OPEN",
                  f"  Cases tracked to Good (remedial plan): {figure(e.tracked)}; plans past "
                  f"due: {figure(e.plans_overdue)}",
                  f"  Actions escalated past their owner: {figure(e.actions_escalated)}; "
                  f"safeguarding alerts not acknowledged: {figure(e.alerts_unacknowledged)}"]
    if view.moderation is not None:
        m = view.moderation
        lines += ["", "MODERATION",
                  f"  Moderated in the {w}: {figure(m.decided)} (agreed {figure(m.agreed)}, "
                  f"regraded {figure(m.regraded)}, returned for rework {figure(m.returned)})",
                  f"  Agreement with the auditor's grade: {percent(m.agreement)}; waiting for "
                  f"a moderator: {figure(m.waiting)}"]
    if view.reaudits:
        lines += ["", "RE-AUDITS"]
        lines += _table(("Last graded", "Within", "Overdue", f"Due next {w}"),
                        [(r.label, f"{r.months} months", figure(r.overdue), figure(r.due_next))
                         for r in view.reaudits])
    lines += ["", "OUTSTANDING PRACTICE TO CELEBRATE",
              f"  {figure(view.celebrate)} audits in the {w}"]
    lines += [f"  {team}: {figure(n)}" for team, n in view.celebrate_by_team]
    lines.append(f"  Serious safeguarding concerns raised: {figure(view.safeguarding)}")
    themes = [t for t in view.themes if t.count.value or t.previous.value]
    if themes:
        lines += ["", "THEMES RAISED (cases whose worries or 'needs to be better' raise each)"]
        lines += _table(("Theme", f"This {w}", view.previous_label),
                        [(t.label, figure(t.count), figure(t.previous)) for t in themes])
    if view.emerging:
        lines.append("  Emerging phrases: " + "; ".join(view.emerging))
    for run in view.thematic:
        lines += ["", f"THEMATIC AUDIT: {run.theme} (launched {run.month})",
                  f"  Allocated {figure(run.allocated)}, completed {figure(run.completed)}; "
                  f"good or better {percent(run.grades.good_or_better)}"]
    lines += ["", FOOTNOTE]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- card


def _text(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **extra}


def _heading(text: str) -> dict[str, Any]:
    return _text(text, weight="Bolder", spacing="Large", separator=True)


def _facts(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in pairs]}


def _cell(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TableCell", "items": [_text(text, **extra)]}


def _table_element(header: Sequence[str], rows: Iterable[Sequence[str]],
                   widths: Sequence[int] | None = None) -> dict[str, Any]:
    widths = widths or [3] + [1] * (len(header) - 1)
    return {
        "type": "Table",
        "gridStyle": "default",
        "firstRowAsHeader": True,
        "columns": [{"width": w} for w in widths],
        "rows": [{"type": "TableRow", "cells": [_cell(h, weight="Bolder") for h in header]},
                 *({"type": "TableRow", "cells": [_cell(c) for c in row]} for row in rows)],
    }


def _grade_table(view: DigestView) -> dict[str, Any]:
    return _table_element(("Grade", "Count", "Share", f"Last {view.kind}", "Change"),
                          _grade_rows(view.grades.rows), widths=(3, 2, 2, 2, 2))


def _grade_chart(view: DigestView) -> dict[str, Any] | None:
    """A stacked bar per period (this and the last), drawn only from shown counts."""
    g = view.grades
    if not g.chartable:
        return None
    sets = [(view.label, [r.count.value for r in g.rows])]
    if g.previous_chartable:
        sets.append((view.previous_label, [r.previous.value for r in g.rows]))
    return {
        "type": "Chart.HorizontalBar.Stacked",
        "title": "Overall grades",
        "data": [{"title": title, "data": [
            {"legend": r.label, "value": v, "color": _GRADE_COLOURS[i % len(_GRADE_COLOURS)]}
            for i, (r, v) in enumerate(zip(g.rows, values, strict=True))]}
            for title, values in sets],
        "fallback": _grade_table(view),
    }


def _unit_table(title: str, rows: Sequence[UnitRow]) -> list[dict[str, Any]]:
    if not rows:
        return []
    return [_heading(title),
            _table_element(("Team" if "team" in title.lower() else "Area", "Allocated",
                            "Completed", "Done"), _unit_rows(rows), widths=(4, 3, 3, 2))]


def digest_card(view: DigestView) -> dict[str, Any]:
    """The channel card: aggregates only, with a Details button (1:1, authorised people)."""
    w = _word(view)
    g, a = view.grades, view.actions
    body: list[dict[str, Any]] = [
        _text(f"{view.authority}: audit digest", weight="Bolder", size="Large"),
        _text(view.label, isSubtle=True, spacing="None"),
    ]
    if note := _as_of_note(view):
        body.append(_text(note, color="Warning", size="Small"))
    body.append(_facts([
        ("Audits allocated", figure(view.allocated)),
        ("Completed", f"{figure(view.completed)} ({percent(view.completion_rate)})"),
        ("Good or better", f"{percent(g.good_or_better)} ({_change_note(g, view.previous_label)})"),
        ("Actions overdue", figure(a.overdue)),
        ("Re-audits overdue", ", ".join(f"{r.label}: {figure(r.overdue)}"
                                        for r in view.reaudits) or "none"),
        ("Safeguarding concerns raised", figure(view.safeguarding)),
    ]))
    body.append(_heading(f"Overall grades ({figure(g.total)} audits graded)"))
    chart = _grade_chart(view)
    if chart is not None:
        body.append(chart)
    body.append(_grade_table(view))
    body += _unit_table("By the case's team (audits of each team's cases)", view.teams)
    body += _unit_table("Completion by the auditor's team", view.auditor_teams)
    body += _unit_table("By area of planning", [r for r in view.areas if r.allocated.value])
    if view.domains:
        body += [_heading("Domains: good or better"),
                 _table_element(("Domain", "Graded", "Good or better", "Change"),
                                [(d.label, figure(d.distribution.total),
                                  percent(d.distribution.good_or_better),
                                  points(d.distribution.good_or_better_change))
                                 for d in view.domains], widths=(4, 1, 1, 1))]
    body += [_heading("Actions"), _facts([
        (f"Raised in the {w}", figure(a.raised)),
        ("Done on time", figure(a.done_on_time)),
        ("Done late", figure(a.done_late)),
        ("Overdue", figure(a.overdue)),
        ("Open, not yet due", figure(a.not_yet_due)),
    ])]
    if view.escalations is not None:
        e = view.escalations
        body += [_heading("Escalations open"), _facts([
            ("Cases tracked to Good", figure(e.tracked)),
            ("Remedial plans past due", figure(e.plans_overdue)),
            ("Actions escalated past their owner", figure(e.actions_escalated)),
            ("Safeguarding alerts not acknowledged", figure(e.alerts_unacknowledged)),
        ])]
    if view.moderation is not None:
        m = view.moderation
        body += [_heading("Moderation"), _facts([
            (f"Moderated in the {w}", figure(m.decided)),
            ("Agreed with the auditor", f"{figure(m.agreed)} ({percent(m.agreement)})"),
            ("Regraded", figure(m.regraded)),
            ("Returned for rework", figure(m.returned)),
        ])]
    if view.reaudits:
        body += [_heading("Re-audits"), _facts(
            (f"{r.label} (within {r.months} months)",
             f"{figure(r.overdue)} overdue, {figure(r.due_next)} due next {w}")
            for r in view.reaudits)]
    body += [_heading(f"Outstanding practice to celebrate: {figure(view.celebrate)} audits")]
    if view.celebrate_by_team:
        body.append(_facts((team, figure(n)) for team, n in view.celebrate_by_team))
    themes = [t for t in view.themes if t.count.value or t.previous.value]
    if themes:
        body += [_heading("Themes raised in worries and what needs to be better"),
                 _table_element(("Theme", f"This {w}", view.previous_label),
                                [(t.label, figure(t.count), figure(t.previous))
                                 for t in themes[:6]], widths=(3, 1, 1))]
    if view.emerging:
        body.append(_text("Emerging phrases: " + "; ".join(view.emerging), size="Small"))
    for run in view.thematic:
        body += [_heading(f"Thematic audit: {run.theme}"), _facts([
            ("Launched", run.month),
            ("Allocated", figure(run.allocated)),
            ("Completed", figure(run.completed)),
            ("Good or better", percent(run.grades.good_or_better)),
        ])]
    body.append(_text(FOOTNOTE, isSubtle=True, size="Small", spacing="Large"))
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": SCHEMA_VERSION,
        "body": body,
        "actions": [{"type": "Action.Execute", "title": "Details (1:1, leaders and QA team)",
                     "verb": DigestDetails.verb, "data": DigestDetails(view.period).pack()}],
    }


# ---------------------------------------------------------------------------- drill-down


def _items(title: str, items: Sequence[CaseItem], columns: Sequence[str],
           cells: Any) -> list[dict[str, Any]]:
    if not items:
        return [_heading(title), _text("None.", isSubtle=True)]
    shown = items[:DETAIL_LIMIT]
    out = [_heading(f"{title} ({len(items)})"),
           _table_element(columns, [cells(i) for i in shown])]
    if len(items) > len(shown):
        out.append(_text(f"and {len(items) - len(shown)} more: `qabot export` has them all.",
                         isSubtle=True, size="Small"))
    return out


def details_card(drill: Drilldown, grade_labels: dict[str, str]) -> dict[str, Any]:
    """Case-level detail behind the digest, for a leader or the QA team in a 1:1 chat."""
    label = grade_labels.get
    body: list[dict[str, Any]] = [
        _text(f"Digest details: {drill.label}", weight="Bolder", size="Large"),
        _text("Case-level detail for you only: please do not forward it to a channel.",
              color="Warning", size="Small"),
    ]
    body += _items("Audits graded below good", drill.below_good, ("Case", "Team", "Grade"),
                   lambda i: (i.case_ref, i.team, label(i.detail, i.detail)))
    body += _items("Overdue actions", drill.overdue_actions, ("Case", "Team", "Owner", "Due"),
                   lambda i: (i.case_ref, i.team, i.detail, i.when))
    body += _items("Re-audits overdue", drill.reaudits_overdue,
                   ("Case", "Team", "Last grade", "Re-audit by"),
                   lambda i: (i.case_ref, i.team, label(i.detail, i.detail), i.when))
    body += _items("Serious safeguarding concerns", drill.safeguarding, ("Case", "Team"),
                   lambda i: (i.case_ref, i.team))
    body += _items("Practice to celebrate", drill.celebrate, ("Case", "Team"),
                   lambda i: (i.case_ref, i.team))
    body += [_heading("By the case's team, exact"),
             _table_element(("Team", "Allocated", "Completed"),
                            [(t.label, f"{t.allocated:,}", f"{t.completed:,}")
                             for t in drill.teams])]
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": SCHEMA_VERSION,
        "body": body,
    }
