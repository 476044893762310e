"""Allocation and completion cards (SPEC R3, R11): pure functions from a view-model to a dict.

Case references appear only on cards that go 1:1 to the auditor who holds the audit (or,
for overdue notes, to that auditor's line manager). The QA summary and the completion
status carry counts, staff ids and names, never case references.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from cards.common import card as _card
from cards.common import facts as _facts
from cards.common import fmt_date, long_date
from cards.common import heading as _heading
from cards.common import plural as _plural
from cards.common import text as _text
from cards.payloads import OpenAudit
from qa.periods import month_name

__all__ = [
    "AllocatedCase",
    "AllocationView",
    "AreaCount",
    "CompletionRow",
    "CompletionView",
    "QaSummaryView",
    "ReminderView",
    "StaffRef",
    "allocation_card",
    "completion_card",
    "qa_summary_card",
    "reminder_card",
]


@dataclass(frozen=True)
class AllocatedCase:
    """One audit on an auditor's card; ``reaudit_due`` is set for a re-audit."""

    audit_id: int
    case_ref: str
    area_label: str
    reason: str  # "random" | "reaudit" | "thematic"
    look_back_from: date
    look_back_to: date
    deadline: date
    reaudit_due: date | None = None


@dataclass(frozen=True)
class AllocationView:
    authority: str
    auditor_name: str
    month: date  # first day of the month
    cases: tuple[AllocatedCase, ...]


@dataclass(frozen=True)
class ReminderView:
    authority: str
    auditor_name: str
    deadline: date
    working_days_left: int
    cases: tuple[AllocatedCase, ...]


@dataclass(frozen=True)
class AreaCount:
    label: str
    allocated: int
    wanted: int | None  # the framework's monthly count, None when it sets none


@dataclass(frozen=True)
class StaffRef:
    staff_id: str
    name: str
    #: Allocation cards queued for them in this run (held until they are linked).
    cards: int = 0


@dataclass(frozen=True)
class QaSummaryView:
    """What the QA team is told about one month's allocation (counts and names only)."""

    authority: str
    month: date
    seed: int
    deadline: date
    auditors: int
    per_area: tuple[AreaCount, ...]
    per_team: tuple[tuple[str, int], ...]
    shortfalls: tuple[str, ...]  # lines without case references
    reaudits_missed: int  # due re-audits the rules could not allocate
    unreachable: tuple[StaffRef, ...]
    blackout_months: tuple[str, ...] = ()  # month names, for the note


@dataclass(frozen=True)
class CompletionRow:
    team: str
    allocated: int
    submitted: int
    draft: int
    overdue: int


@dataclass(frozen=True)
class CompletionView:
    month: date
    as_of: date
    rows: tuple[CompletionRow, ...]
    # Re-audits owed (SPEC R9): (case ref, grade label, due date), for the QA team 1:1.
    reaudits_overdue: tuple[tuple[str, str, date], ...] = ()
    reaudits_due: tuple[tuple[str, str, date], ...] = ()  # due by the end of the month


# ---------------------------------------------------------------------------- helpers


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *,
          totals: Sequence[str] | None = None, first_width: int = 6) -> dict[str, Any]:
    """An Adaptive Card ``Table``: the first column is text, the others numbers, right-aligned
    under right-aligned headers, so a column's header sits over its figures."""

    def cell(text: str, bold: bool, header: bool = False) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "TextBlock", "text": text, "wrap": True}
        if bold:
            block["weight"] = "Bolder"
        if header:
            block["size"] = "Small"  # headers fit over narrow figure columns
        return {"type": "TableCell", "items": [block]}

    def row(cells: Sequence[str], bold: bool = False, header: bool = False) -> dict[str, Any]:
        return {"type": "TableRow", "cells": [cell(c, bold, header) for c in cells]}

    columns = [{"width": first_width}] + [
        {"width": 2, "horizontalCellContentAlignment": "Right"} for _ in headers[1:]]
    body = [row(headers, bold=True, header=True), *(row(r) for r in rows)]
    if totals is not None:
        body.append(row(totals, bold=True))
    return {"type": "Table", "columns": columns, "rows": body, "firstRowAsHeader": True,
            "showGridLines": False, "spacing": "Small"}


def _reason(case: AllocatedCase) -> str:
    if case.reason == "reaudit":
        due = f", due by {long_date(case.reaudit_due)}" if case.reaudit_due else ""
        return f"Re-audit{due}"
    if case.reason == "thematic":
        return "Thematic audit"
    return "Random monthly selection"


def _case_block(case: AllocatedCase) -> dict[str, Any]:
    """One case: reference, area, look-back, deadline, reason and its own form button."""
    return {
        "type": "Container",
        "separator": True,
        "spacing": "Medium",
        "items": [
            _text(f"Case {case.case_ref}", weight="Bolder"),
            _facts([
                ("Area of planning", case.area_label),
                ("Look back", f"{fmt_date(case.look_back_from)} to {fmt_date(case.look_back_to)}"),
                ("Deadline", long_date(case.deadline)),
                ("Why this case", _reason(case)),
            ]),
            {
                "type": "ActionSet",
                "actions": [{
                    "type": "Action.Execute",
                    "title": "Open audit form",
                    "verb": OpenAudit.verb,
                    "data": OpenAudit(case.audit_id).pack(),
                }],
            },
        ],
    }


# ---------------------------------------------------------------------------- cards


def allocation_card(view: AllocationView) -> dict[str, Any]:
    """The auditor's 1:1 card: their cases this month, each with a button to open the form."""
    deadlines = sorted({c.deadline for c in view.cases})
    by = f" Please submit by {long_date(deadlines[0])}." if len(deadlines) == 1 else ""
    body = [
        _heading(f"Your case audits for {month_name(view.month)}"),
        _text(f"Hello {view.auditor_name}, you have {_plural(len(view.cases), 'case')} to audit "
              f"this month.{by}"),
        _text("Read the record for the look-back period, then open the form to grade each "
              "domain. You can save a draft and come back to it.", isSubtle=True, spacing="Small"),
        *(_case_block(c) for c in view.cases),
        _text(view.authority, isSubtle=True, size="Small", spacing="Large"),
    ]
    return _card(body)


def reminder_card(view: ReminderView) -> dict[str, Any]:
    """A reminder before the deadline, with the same form buttons as the allocation card."""
    body = [
        _heading("Reminder: case audit due soon"),
        _text(f"Hello {view.auditor_name}, {_plural(len(view.cases), 'audit')} allocated to you "
              f"{'is' if len(view.cases) == 1 else 'are'} not submitted yet. The deadline is "
              f"{long_date(view.deadline)} "
              f"({_plural(view.working_days_left, 'working day')} from today)."),
        *(_case_block(c) for c in view.cases),
        _text(view.authority, isSubtle=True, size="Small", spacing="Large"),
    ]
    return _card(body)


def qa_summary_card(view: QaSummaryView) -> dict[str, Any]:
    """The QA team's summary of one month's allocation: counts, gaps and unreachable staff.

    ``view.unreachable`` must not hold the person the card is for (the flow leaves them
    out): nobody is told they cannot be reached in the message that reached them.
    """
    total = sum(a.allocated for a in view.per_area)
    body: list[dict[str, Any]] = [
        _heading(f"Case audit allocation: {month_name(view.month)}"),
        _text(f"{_plural(total, 'audit')} allocated to {_plural(view.auditors, 'auditor')}. "
              f"Deadline {long_date(view.deadline)}."),
        _text("By area of planning", weight="Bolder", spacing="Medium"),
        table(["Area of planning", "Allocated", "Monthly count"],
              [[a.label, str(a.allocated), "none" if a.wanted is None else str(a.wanted)]
               for a in view.per_area])
        if any(a.wanted is not None for a in view.per_area) else
        table(["Area of planning", "Allocated"],
              [[a.label, str(a.allocated)] for a in view.per_area]),
        _text("By team (the case's team)", weight="Bolder", spacing="Medium"),
        table(["Team", "Audits"], [[team, str(n)] for team, n in view.per_team])
        if view.per_team else _text("No audits were allocated.", isSubtle=True),
    ]
    if view.shortfalls or view.reaudits_missed:
        body.append(_text("What the rules could not satisfy", weight="Bolder", spacing="Medium"))
        lines = [f"- {line}" for line in view.shortfalls]
        if view.reaudits_missed:
            lines.append(f"- {_plural(view.reaudits_missed, 're-audit')} due could not be "
                         "allocated (listed by `qabot allocate` and kept with the run)")
        body.append(_text("\n".join(lines)))
    else:
        body.append(_text("Every allocation rule was satisfied.", spacing="Medium"))
    if view.unreachable:
        body.append(_text(f"Not linked to Teams yet ({len(view.unreachable)})", weight="Bolder",
                          spacing="Medium"))
        waiting = sum(s.cards for s in view.unreachable)
        if waiting:
            what = (f"{_plural(waiting, 'allocation card is', 'allocation cards are')} held "
                    "for them and will be sent as soon as each is linked.")
        else:
            what = "None of them has an audit this month; they get messages once linked."
        body.append(_text(f"{what} `qabot staff unlinked` says why each is not linked.",
                          isSubtle=True))
        body.append(_text("\n".join(
            f"- {s.name} ({s.staff_id})" + (f": {_plural(s.cards, 'card')} held" if s.cards
                                             else "")
            for s in view.unreachable)))
    if view.blackout_months:
        body.append(_text(f"No allocation in blackout months: {', '.join(view.blackout_months)}.",
                          isSubtle=True, spacing="Medium"))
    body.append(_text(f"Seed {view.seed}: re-running the month changes nothing.",
                      isSubtle=True, size="Small", spacing="Medium"))
    return _card(body)


def completion_card(view: CompletionView) -> dict[str, Any]:
    """Completion per team for one month, for the QA team (counts only)."""
    allocated = sum(r.allocated for r in view.rows)
    submitted = sum(r.submitted for r in view.rows)
    pct = f" ({round(100 * submitted / allocated)}%)" if allocated else ""
    body: list[dict[str, Any]] = [
        _heading(f"Audit completion: {month_name(view.month)}"),
        _text(f"{submitted} of {_plural(allocated, 'audit')} submitted{pct}, as of "
              f"{long_date(view.as_of)}."),
    ]
    if view.rows:
        body.append(table(
            ["Auditor's team", "Allocated", "Submitted", "Draft", "Overdue"],
            [[r.team, str(r.allocated), str(r.submitted), str(r.draft), str(r.overdue)]
             for r in view.rows],
            totals=["Total", str(allocated), str(submitted),
                    str(sum(r.draft for r in view.rows)),
                    str(sum(r.overdue for r in view.rows))],
            first_width=5))
    else:
        body.append(_text("No audits are allocated for this month yet."))
    if view.reaudits_overdue or view.reaudits_due:
        body.append(_text("Re-audits", weight="Bolder", spacing="Large"))
        for title, items in ((f"Overdue ({len(view.reaudits_overdue)})", view.reaudits_overdue),
                             (f"Due by the end of {month_name(view.month)} "
                              f"({len(view.reaudits_due)})", view.reaudits_due)):
            if items:
                shown = "\n".join(f"- {ref}: {grade}, due {fmt_date(due)}"
                                   for ref, grade, due in items[:20])
                more = f"\n- ... and {len(items) - 20} more" if len(items) > 20 else ""
                body += [_text(title, spacing="Small"), _text(shown + more, size="Small")]
        body.append(_text("The monthly allocation takes due re-audits first.", isSubtle=True,
                          size="Small"))
    return _card(body)
