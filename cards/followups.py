"""Cards for what follows a submitted audit (SPEC R6-R8): the safeguarding alert, the
findings with Part B, the remedial plan, and the one to-do list a person gets a day.

Pure functions from view-models to card dicts. Every card here goes 1:1 to someone entitled
to the case's detail (the case's managers and social worker, action owners and their line,
the QA team); none is ever posted to a channel.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from cards.common import card, execute, facts, fmt_date, fmt_datetime, heading, plural, text
from cards.payloads import (
    AcknowledgeAlert,
    ActionDone,
    AskMoreTime,
    DecideMoreTime,
    RecordPlan,
    ShowMyActions,
    SubmitPartB,
)

__all__ = [
    "ActionItem",
    "AlertView",
    "DecisionItem",
    "FindingsView",
    "PartBAsk",
    "PartBItem",
    "PlanItem",
    "RemedialView",
    "TodoView",
    "TrackedItem",
    "alert_card",
    "findings_card",
    "part_b_ids",
    "remedial_card",
    "todo_card",
]

#: At most this many items of each kind on one to-do card (Teams refuses cards over 28 KB);
#: the rest are counted, with the command that lists them all.
MAX_ITEMS: Final = 8
MAX_TRACKED: Final = 15

AGREE_CHOICES: Final = (("yes", "Yes, I agree with the findings"),
                        ("no", "No, I disagree (please say why)"))


def part_b_ids(audit_id: int) -> dict[str, str]:
    """The Part B inputs of one audit: the same ids on the findings and the to-do card."""
    base = f"partb.{audit_id}"
    return {"agrees": f"{base}.agrees", "reason": f"{base}.reason",
            "reflections": f"{base}.reflections", "discussed_on": f"{base}.discussed_on"}


def _error(errors: Mapping[str, str], key: str) -> list[dict[str, Any]]:
    message = errors.get(key)
    return [text(message, color="Attention", size="Small", spacing="None")] if message else []


def _show_card(title: str, body: list[dict[str, Any]], actions: list[dict[str, Any]]
               ) -> dict[str, Any]:
    return {"type": "Action.ShowCard", "title": title,
            "card": {"type": "AdaptiveCard", "body": body, "actions": actions}}


# ---------------------------------------------------------------------------- safeguarding


@dataclass(frozen=True)
class AlertView:
    alert_id: int
    case_ref: str
    raised_by: str
    raised_at: datetime  # in the framework's timezone
    details: str
    ack_hours: int
    escalated_note: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None


def alert_card(view: AlertView) -> dict[str, Any]:
    """SPEC R6: to the case's managers at once; acknowledged once, by anyone told."""
    body = [
        heading(f"Serious safeguarding concern: case {view.case_ref}"),
        text(view.details or "(no details given)", weight="Bolder"),
        facts([("Raised by", view.raised_by), ("Raised", fmt_datetime(view.raised_at))]),
        text("Please act on it now and record what was done on the child's record."),
    ]
    if view.escalated_note:
        body.append(text(view.escalated_note, color="Attention"))
    actions: list[dict[str, Any]] = []
    if view.acknowledged_at is not None:
        body.append(text(f"Acknowledged by {view.acknowledged_by} at "
                         f"{fmt_datetime(view.acknowledged_at)}.", color="Good",
                         weight="Bolder"))
    else:
        body.append(text(f"Press Acknowledge when you have it in hand. Unacknowledged after "
                         f"{plural(view.ack_hours, 'working hour')}, it goes to the next "
                         "manager up.", isSubtle=True, size="Small"))
        actions.append(execute("Acknowledge", AcknowledgeAlert.verb,
                               AcknowledgeAlert(view.alert_id).pack(), style="positive"))
    return card(body, actions)


# ---------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class FindingAction:
    what: str
    owner_name: str
    due_on: date
    priority_label: str


@dataclass(frozen=True)
class PartBAsk:
    """The reader's own Part B: still to record (with entries and errors) or recorded."""

    relation_label: str
    due_on: date
    values: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    recorded: str | None = None  # what they said, once recorded


@dataclass(frozen=True)
class FindingsView:
    audit_id: int
    case_ref: str
    area_label: str
    auditor_name: str
    submitted_at: datetime
    overall_label: str
    outcomes_label: str
    domain_grades: tuple[tuple[str, str], ...]
    strengths: str
    worries: str
    better: str
    celebrate: str
    actions: tuple[FindingAction, ...]
    part_b: PartBAsk | None = None
    copy_note: str | None = None  # for the QA team's copy
    revised: bool = False  # resubmitted after a moderator returned it for rework


def _part_b_inputs(audit_id: int, ask: PartBAsk) -> list[dict[str, Any]]:
    ids = part_b_ids(audit_id)
    return [
        {"type": "Input.ChoiceSet", "id": ids["agrees"], "label": "Do you agree with the findings?",
         "style": "expanded", "isRequired": True,
         "errorMessage": "Please say whether you agree.",
         "choices": [{"title": t, "value": v} for v, t in AGREE_CHOICES],
         **({"value": ask.values[ids["agrees"]]} if ask.values.get(ids["agrees"]) else {})},
        *_error(ask.errors, ids["agrees"]),
        {"type": "Input.Text", "id": ids["reason"], "label": "If you disagree, why",
         "isMultiline": True, "maxLength": 1500, **_value(ask, ids["reason"])},
        *_error(ask.errors, ids["reason"]),
        {"type": "Input.Text", "id": ids["reflections"], "label": "Your reflections",
         "isMultiline": True, "maxLength": 2000, **_value(ask, ids["reflections"])},
        *_error(ask.errors, ids["reflections"]),
        {"type": "Input.Date", "id": ids["discussed_on"],
         "label": "Discussed in supervision on (if it has been)",
         **_value(ask, ids["discussed_on"])},
        *_error(ask.errors, ids["discussed_on"]),
    ]


def _value(ask: PartBAsk, key: str) -> dict[str, str]:
    return {"value": ask.values[key]} if ask.values.get(key) else {}


def findings_card(view: FindingsView) -> dict[str, Any]:
    """SPEC R7: the findings 1:1 to the case's social worker and team manager (with their
    Part B to record), and a copy to the QA team."""
    body: list[dict[str, Any]] = [
        heading(f"Audit findings{' (revised)' if view.revised else ''}: case {view.case_ref}"),
        facts([("Area", view.area_label), ("Auditor", view.auditor_name),
               ("Submitted", fmt_datetime(view.submitted_at)),
               ("Overall grade", view.overall_label), ("Child's outcomes", view.outcomes_label)]),
    ]
    if view.copy_note:
        body.append(text(view.copy_note, isSubtle=True, size="Small"))
    body.append(heading("Grades", size="Medium"))
    body.append(facts(list(view.domain_grades)))
    for title, value in (("What is working well", view.strengths),
                         ("What we are worried about", view.worries),
                         ("What needs to be better", view.better),
                         ("Outstanding practice to celebrate", view.celebrate)):
        if value:
            body += [text(title, weight="Bolder", spacing="Medium"), text(value)]
    body.append(heading("Actions", size="Medium"))
    if not view.actions:
        body.append(text("No actions were recorded.", isSubtle=True))
    for n, a in enumerate(view.actions, start=1):
        body.append(text(f"{n}. {a.what}", spacing="Small"))
        body.append(text(f"Owner: {a.owner_name} · due {fmt_date(a.due_on)} · "
                         f"{a.priority_label} priority", isSubtle=True, size="Small",
                         spacing="None"))
    actions: list[dict[str, Any]] = []
    ask = view.part_b
    if ask is not None:
        body.append(heading("Your response (Part B)", size="Medium"))
        if ask.recorded is not None:
            body.append(text(ask.recorded, color="Good"))
        else:
            body.append(text(f"As the case's {ask.relation_label}, please record your response "
                             f"by {fmt_date(ask.due_on)}.", isSubtle=True))
            if ask.errors:
                body.append(text(f"{plural(len(ask.errors), 'thing needs', 'things need')} "
                                 "fixing: see the red notes.", color="Attention",
                                 weight="Bolder"))
            body += _part_b_inputs(view.audit_id, ask)
            actions.append(execute("Send my response", SubmitPartB.verb,
                                   SubmitPartB(view.audit_id).pack(), style="positive",
                                   associatedInputs="auto"))
    return card(body, actions)


# ---------------------------------------------------------------------------- remedial


@dataclass(frozen=True)
class RemedialView:
    remedial_id: int
    case_ref: str
    grade_label: str
    area_label: str
    team: str
    submitted_on: date
    due_on: date
    better: str
    plan: str | None = None
    plan_by: str | None = None
    plan_at: datetime | None = None
    error: str | None = None


def _plan_input(remedial_id: int) -> dict[str, Any]:
    """The plan's input: the same id on the remedial card and the to-do list."""
    return {"type": "Input.Text", "id": f"plan.{remedial_id}", "label": "The remedial plan",
            "isMultiline": True, "maxLength": 3000, "isRequired": True,
            "errorMessage": "Please write the plan."}


def remedial_card(view: RemedialView) -> dict[str, Any]:
    """SPEC R8 (Lambeth): a poor grade to the director and assistant director for a
    remedial plan within the framework's days."""
    body: list[dict[str, Any]] = [
        heading(f"Remedial action needed: case {view.case_ref} graded {view.grade_label}"),
        text(f"The audit submitted on {fmt_date(view.submitted_on)} graded this case "
             f"{view.grade_label}. Please agree a remedial plan with the service and record it "
             f"here by {fmt_date(view.due_on)}. The case stays on its service manager's "
             "tracking list until an audit grades it Good or better."),
        facts([("Area", view.area_label), ("Case's team", view.team),
               ("Plan due", fmt_date(view.due_on))]),
    ]
    if view.better:
        body += [text("What needs to be better", weight="Bolder"), text(view.better)]
    actions: list[dict[str, Any]] = []
    if view.plan_at is not None:
        body += [text(f"Plan recorded by {view.plan_by} at {fmt_datetime(view.plan_at)}:",
                      color="Good", weight="Bolder"), text(view.plan or "")]
    else:
        body.append(_plan_input(view.remedial_id))
        body += _error({"plan": view.error} if view.error else {}, "plan")
        actions.append(execute("Record the plan", RecordPlan.verb,
                               RecordPlan(view.remedial_id).pack(), style="positive",
                               associatedInputs="auto"))
    return card(body, actions)


# ---------------------------------------------------------------------------- to-do list


@dataclass(frozen=True)
class ActionItem:
    action_id: int
    case_ref: str
    what: str
    owner_name: str
    due_on: date
    state: str  # open | extension_requested | extended | overdue
    days_overdue: int
    asked_due_on: date | None = None
    buttons: bool = True


@dataclass(frozen=True)
class DecisionItem:
    action_id: int
    case_ref: str
    what: str
    owner_name: str
    due_on: date
    asked_due_on: date
    reason: str


@dataclass(frozen=True)
class PartBItem:
    audit_id: int
    case_ref: str
    relation_label: str
    due_on: date
    overdue: bool
    owner_name: str | None = None  # someone else's, escalated to the reader
    days_overdue: int = 0


@dataclass(frozen=True)
class PlanItem:
    remedial_id: int
    case_ref: str
    grade_label: str
    due_on: date
    overdue: bool


@dataclass(frozen=True)
class TrackedItem:
    case_ref: str
    grade_label: str
    since: date
    planned: bool
    reaudit_due: date | None


@dataclass(frozen=True)
class TodoView:
    name: str
    today: date
    own: tuple[ActionItem, ...] = ()
    escalated: tuple[ActionItem, ...] = ()
    decisions: tuple[DecisionItem, ...] = ()
    part_bs: tuple[PartBItem, ...] = ()
    others_part_bs: tuple[PartBItem, ...] = ()
    plans: tuple[PlanItem, ...] = ()
    tracked: tuple[TrackedItem, ...] = ()
    confirmation: str | None = None
    heading: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.own or self.escalated or self.decisions or self.part_bs
                    or self.others_part_bs or self.plans or self.tracked)


def _when(item: ActionItem) -> str:
    if item.state == "overdue":
        return (f"was due {fmt_date(item.due_on)}, "
                f"{plural(item.days_overdue, 'working day')} overdue")
    if item.state == "extension_requested" and item.asked_due_on:
        return f"due {fmt_date(item.due_on)}; more time asked for, to {fmt_date(item.asked_due_on)}"
    return f"due {fmt_date(item.due_on)}" + (" (extended)" if item.state == "extended" else "")


def _action_block(item: ActionItem, *, show_owner: bool) -> dict[str, Any]:
    owner = f"{item.owner_name}'s action · " if show_owner else ""
    items: list[dict[str, Any]] = [
        text(f"**{item.what}** (case {item.case_ref})", spacing="Small"),
        text(owner + _when(item), isSubtle=item.state != "overdue",
             color="Attention" if item.state == "overdue" else "Default", size="Small",
             spacing="None"),
    ]
    if item.buttons:
        done = _show_card("Done", [
            {"type": "Input.Text", "id": f"note.{item.action_id}",
             "label": "What was done (optional)", "isMultiline": True, "maxLength": 1000},
        ], [execute("Mark it done", ActionDone.verb, ActionDone(item.action_id).pack(),
                    style="positive", associatedInputs="auto")])
        buttons = [done]
        if item.state != "extension_requested":
            buttons.append(_show_card("Need more time", [
                {"type": "Input.Date", "id": f"due.{item.action_id}", "label": "New due date",
                 "isRequired": True, "errorMessage": "Please choose the new date."},
                {"type": "Input.Text", "id": f"reason.{item.action_id}", "label": "Why",
                 "isMultiline": True, "maxLength": 1000, "isRequired": True,
                 "errorMessage": "Please say why more time is needed."},
            ], [execute("Ask for more time", AskMoreTime.verb,
                        AskMoreTime(item.action_id).pack(), associatedInputs="auto")]))
        items.append({"type": "ActionSet", "actions": buttons})
    return {"type": "Container", "separator": True, "items": items}


def _more(n: int, where: str) -> list[dict[str, Any]]:
    return [text(f"... and {n} more: type **{where}** to see them all.", isSubtle=True,
                 size="Small")] if n > 0 else []


#: Teams refuses cards over 28 KB; leave room for the activity around the card.
CARD_BUDGET_BYTES: Final = 26 * 1024


def todo_card(view: TodoView) -> dict[str, Any]:
    """One person's list: their own actions, what has been escalated to them, decisions,
    Part B and remedial plans waiting on them, and the cases they track to Good.

    A very long list shows fewer of each kind (the rest counted, with the command that
    lists them) until the card fits Teams' size limit.
    """
    for most, tracked in ((MAX_ITEMS, MAX_TRACKED), (4, 8), (2, 4), (1, 2)):
        card = _todo_card(view, most, tracked)
        if len(json.dumps(card).encode()) <= CARD_BUDGET_BYTES:
            return card
    return card


def _todo_card(view: TodoView, MAX_ITEMS: int, MAX_TRACKED: int) -> dict[str, Any]:  # noqa: N803
    body: list[dict[str, Any]] = [
        heading(view.heading or f"Your QA to-do list, {fmt_date(view.today)}"),
    ]
    if view.confirmation:
        body.append(text(view.confirmation, color="Good", weight="Bolder"))
    if view.empty:
        body.append(text(f"Nothing is waiting on you today, {view.name}."))
    if view.own:
        body.append(heading(f"Your actions ({len(view.own)})", size="Medium"))
        body += [_action_block(a, show_owner=False) for a in view.own[:MAX_ITEMS]]
        body += _more(len(view.own) - MAX_ITEMS, "my actions")
    if view.escalated:
        body.append(heading(f"Overdue actions escalated to you ({len(view.escalated)})",
                            size="Medium"))
        body.append(text("These are overdue in the teams you manage. You can mark one done or "
                         "give more time here, or chase its owner.", isSubtle=True,
                         size="Small"))
        body += [_action_block(a, show_owner=True) for a in view.escalated[:MAX_ITEMS]]
        body += _more(len(view.escalated) - MAX_ITEMS, "team actions")
    if view.decisions:
        body.append(heading(f"More time asked for ({len(view.decisions)})", size="Medium"))
        for d in view.decisions[:MAX_ITEMS]:
            body.append({"type": "Container", "separator": True, "items": [
                text(f"**{d.what}** (case {d.case_ref})", spacing="Small"),
                text(f"{d.owner_name} asks to move it from {fmt_date(d.due_on)} to "
                     f"{fmt_date(d.asked_due_on)}: {d.reason}", size="Small", spacing="None"),
                {"type": "ActionSet", "actions": [
                    execute("Approve", DecideMoreTime.verb,
                            DecideMoreTime(d.action_id, "approve").pack(), style="positive"),
                    execute("Refuse", DecideMoreTime.verb,
                            DecideMoreTime(d.action_id, "refuse").pack()),
                ]},
            ]})
        body += _more(len(view.decisions) - MAX_ITEMS, "team actions")
    if view.part_bs:
        body.append(heading(f"Part B to record ({len(view.part_bs)})", size="Medium"))
        for p in view.part_bs[:MAX_ITEMS]:
            due = (f"was due {fmt_date(p.due_on)}" if p.overdue else f"due {fmt_date(p.due_on)}")
            ask = PartBAsk(p.relation_label, p.due_on)
            body.append({"type": "Container", "separator": True, "items": [
                text(f"Your response to the audit of case {p.case_ref} ({due})",
                     color="Attention" if p.overdue else "Default", spacing="Small"),
                {"type": "ActionSet", "actions": [_show_card(
                    "Record Part B", _part_b_inputs(p.audit_id, ask),
                    [execute("Send my response", SubmitPartB.verb,
                             SubmitPartB(p.audit_id, "todo").pack(), style="positive",
                             associatedInputs="auto")])]},
            ]})
    if view.others_part_bs:
        body.append(heading(f"Part B overdue in the teams you manage "
                            f"({len(view.others_part_bs)})", size="Medium"))
        rows = [f"- {p.owner_name}, as {p.relation_label} of case {p.case_ref}: was due "
                f"{fmt_date(p.due_on)}, {plural(p.days_overdue, 'working day')} overdue"
                for p in view.others_part_bs[:MAX_ITEMS]]
        body.append(text("\n".join(rows), color="Attention"))
        body += _more(len(view.others_part_bs) - MAX_ITEMS, "team actions")
    if view.plans:
        body.append(heading(f"Remedial plans to record ({len(view.plans)})", size="Medium"))
        for plan in view.plans[:MAX_ITEMS]:
            due = (f"was due {fmt_date(plan.due_on)}" if plan.overdue
                   else f"due {fmt_date(plan.due_on)}")
            body.append({"type": "Container", "separator": True, "items": [
                text(f"Case {plan.case_ref}, graded {plan.grade_label} ({due})",
                     color="Attention" if plan.overdue else "Default", spacing="Small"),
                {"type": "ActionSet", "actions": [_show_card("Record the plan", [
                    _plan_input(plan.remedial_id),
                ], [execute("Record the plan", RecordPlan.verb,
                            RecordPlan(plan.remedial_id, "todo").pack(), style="positive",
                            associatedInputs="auto")])]},
            ]})
    if view.tracked:
        body.append(heading(f"Cases tracked to Good ({len(view.tracked)})", size="Medium"))
        body.append(text("Graded below Good: they leave this list when an audit grades them "
                         "Good or better.", isSubtle=True, size="Small"))
        rows = []
        for t in view.tracked[:MAX_TRACKED]:
            plan = "plan recorded" if t.planned else "no plan yet"
            reaudit = f"; re-audit by {fmt_date(t.reaudit_due)}" if t.reaudit_due else ""
            rows.append(f"- {t.case_ref}: {t.grade_label} since {fmt_date(t.since)}; "
                        f"{plan}{reaudit}")
        body.append(text("\n".join(rows)))
        if len(view.tracked) > MAX_TRACKED:
            body.append(text(f"... and {len(view.tracked) - MAX_TRACKED} more.", isSubtle=True,
                             size="Small"))
    actions = [execute("Refresh", ShowMyActions.verb, ShowMyActions().pack())]
    return card(body, actions)


def done_note(what: str, case_ref: str, at: datetime) -> str:
    return f"Done: {what} (case {case_ref}), recorded {fmt_datetime(at)}."
