"""The audit form (SPEC R5), its read-only summary and the small cards around it.

Pure functions from view-models to card dicts (no I/O, no SDK imports). The form always
renders the auditor's current entries as each input's ``value``, so a rejected submit or
a reopened draft loses nothing, and each error sits directly under its field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from adaptive_cards import types
from adaptive_cards.card import (
    ActionExecute,
    ActionSet,
    ActionShowCard,
    ActionToggleVisibility,
    AdaptiveCard,
    Container,
    ElementAnnotated,
    Fact,
    FactSet,
    InputChoice,
    InputChoiceSet,
    InputDate,
    InputText,
    InputToggle,
    TargetElement,
    TextBlock,
)

from cards.common import SCHEMA_VERSION, fmt_date, fmt_datetime, to_dict
from cards.payloads import OpenAudit, SaveDraft, SubmitAudit
from qa import form_rules as fr
from qa.framework import Domain, Grade

#: Teams refuses cards over 28 KB; keep room for the activity around the card.
FORM_BUDGET_BYTES = 26 * 1024


# ---------------------------------------------------------------------------- views


@dataclass(frozen=True)
class FormView:
    """Everything the form shows; ``values`` are the entries so far, by input id."""

    audit_id: int
    case_ref: str
    area_label: str
    tool_label: str
    domains: tuple[Domain, ...]
    grades: tuple[Grade, ...]  # the framework's order, best first
    look_back_from: date
    look_back_to: date
    deadline: date
    owner_choices: tuple[tuple[str, str], ...]  # (staff_id, label)
    values: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    note: str | None = None
    max_actions: int = 5
    action_grades: tuple[str, ...] = ()  # labels of overall grades that need an action
    #: Set when a submit was held back to confirm an overall grade (its label) given with
    #: a serious safeguarding concern ticked: the card asks, by the Submit button.
    confirm_grade: str | None = None
    #: Show ``note`` by the buttons (after Save draft: where the auditor clicked) rather
    #: than at the top (a draft reopened).
    note_by_buttons: bool = False


@dataclass(frozen=True)
class SummaryAction:
    what: str
    owner_name: str
    due_on: date
    priority_label: str


@dataclass(frozen=True)
class SummaryView:
    """A submitted audit, read-only."""

    audit_id: int
    case_ref: str
    area_label: str
    tool_label: str
    domain_grades: tuple[tuple[str, str], ...]  # (domain title, grade label)
    overall_label: str
    outcomes_label: str
    actions: tuple[SummaryAction, ...]
    submitted_by: str
    submitted_at: datetime  # already in the framework's timezone
    safeguarding: bool = False


# ---------------------------------------------------------------------------- pieces


def _card(body: Sequence[Any], actions: Sequence[Any] = ()) -> dict[str, Any]:
    builder = AdaptiveCard.new().version(SCHEMA_VERSION).add_items(list(body))
    if actions:
        builder = builder.add_actions(list(actions))
    return to_dict(builder.create())


def _text(text: str, **kwargs: Any) -> TextBlock:
    return TextBlock(text=text, wrap=True, **kwargs)


def _subtle(text: str) -> TextBlock:
    return TextBlock(text=text, wrap=True, size=types.FontSize.SMALL, is_subtle=True,
                     spacing=types.Spacing.NONE)


def _heading(text: str) -> TextBlock:
    return TextBlock(text=text, wrap=True, weight=types.FontWeight.BOLDER,
                     size=types.FontSize.MEDIUM, spacing=types.Spacing.LARGE, separator=True)


def _error(view: FormView, key: str) -> list[ElementAnnotated]:
    """The field's error slot: always present (hidden when empty) so the card keeps one
    shape; clients that reuse input controls by position then keep each input's own
    choices when the form comes back with errors (seen in the Teams web renderer)."""
    message = view.errors.get(key)
    if not message:
        return [TextBlock(text="", is_visible=False)]
    return [TextBlock(text=message, wrap=True, color=types.Colors.ATTENTION,
                      size=types.FontSize.SMALL, spacing=types.Spacing.NONE)]


def _choices(pairs: Sequence[tuple[str, str]]) -> list[InputChoice]:
    return [InputChoice(title=label, value=value) for value, label in pairs]


REQUIRED: Final = " (required)"


def _choice_set(view: FormView, key: str, pairs: Sequence[tuple[str, str]], *,
                label: str | None = None, placeholder: str | None = "Choose",
                required: bool = False) -> list[ElementAnnotated]:
    """A compact choice set keeping the current entry, with its error under it.

    A required one says so in its label. It is not ``isRequired``: the Teams client checks
    isRequired before *any* button sends the inputs, Save draft included, so a half-done
    draft could never be saved; the server checks required answers on submit instead.
    """
    value = view.values.get(key) or None
    return [InputChoiceSet(id=key, label=(label or "") + (REQUIRED if required else "") or None,
                           choices=_choices(pairs), style=types.ChoiceInputStyle.COMPACT,
                           placeholder=placeholder, value=value),
            *_error(view, key)]


def _text_input(view: FormView, key: str, label: str, *, limit: int | None = None,
                multiline: bool = True, placeholder: str | None = None) -> list[ElementAnnotated]:
    """A text input keeping the current entry; the limit is also enforced on submit."""
    return [InputText(id=key, label=label, is_multiline=multiline or None,
                      max_length=limit or fr.TEXT_LIMITS[key],
                      placeholder=placeholder, value=view.values.get(key) or None),
            *_error(view, key)]


def _grade_pairs(grades: Sequence[Grade]) -> list[tuple[str, str]]:
    return [(g.key, g.label) for g in grades]


def _rubric(grades: Sequence[Grade]) -> list[ElementAnnotated]:
    """The grading guide behind a button: the descriptions are long, the card is not."""
    described = [g for g in grades if g.description]
    if not described:
        return []
    guide = AdaptiveCard(version=SCHEMA_VERSION, body=[
        item for g in described
        for item in (TextBlock(text=g.label, weight=types.FontWeight.BOLDER, wrap=True),
                     _subtle(g.description))
    ])
    return [ActionSet(actions=[ActionShowCard(title="Grading guide", card=guide, mode=None)])]


def _summary_line(count: int) -> str:
    thing = "thing needs" if count == 1 else "things need"
    return f"{count} {thing} fixing before you can submit. Look for the red notes below."


def _fix_list(view: FormView, labels: Mapping[str, str], *, detail: bool = True) -> str:
    """What to fix, in the order of the form, named as the auditor sees each field (with
    the red note's words too, unless the card is short of room)."""
    order = {key: n for n, key in enumerate(labels)}
    keys = sorted(view.errors, key=lambda k: (k != fr.FORM, order.get(k, len(order)), k))
    lines = []
    for key in keys:
        where = labels.get(key)
        if where is None:
            lines.append(f"- {view.errors[key]}")
        elif not detail:
            lines.append(f"- {where}")
        else:  # "Overall grade: Please give..."; "Was the family contacted? Please say..."
            lines.append(f"- {where}{'' if where.endswith('?') else ':'} {view.errors[key]}")
    return "\n".join(lines)


def _row_id(n: int) -> str:
    return f"row{n}"


def _add_id(n: int) -> str:
    """The "Add an action" button shown after row ``n`` (0: before the first row)."""
    return f"add{n}"


def _rows_shown(view: FormView) -> int:
    """Action rows open from the start: up to the last one holding an entry or an error.
    A fresh Good audit shows none, only "Add an action"."""
    shown = 0
    for n in range(1, view.max_actions + 1):
        ids = [fr.action_id(n, f) for f in fr.ACTION_FIELDS]
        if any(view.values.get(i) for i in ids) or any(i in view.errors for i in ids):
            shown = n
    return shown


def _add_button(n: int) -> ActionSet:
    """Reveals row n+1 and hides itself (the next row carries the next button). Only rows
    from the last open one on carry one: an open row stays open."""
    title = "Add an action" if n == 0 else "Add another action"
    return ActionSet(id=_add_id(n), actions=[ActionToggleVisibility(
        title=title, mode=None, target_elements=[TargetElement(element_id=_row_id(n + 1), is_visible=True),
                                      TargetElement(element_id=_add_id(n), is_visible=False)])])


# ---------------------------------------------------------------------------- cards


def audit_form_card(view: FormView) -> dict[str, Any]:
    """The audit form for one case, built from the framework's tool for its area.

    Long answers could push the card past Teams' 28 KB and lock the auditor out of their
    own draft, so when the full card is too big the guiding questions and rubric (which
    the auditor has already seen) are left out rather than any of their entries.
    """
    card = _form_card(view, guidance=True)
    if wire_size(card) > FORM_BUDGET_BYTES:
        card = _form_card(view, guidance=False)
    if wire_size(card) > FORM_BUDGET_BYTES and view.errors:
        # Still too big (long entries and many errors): the list by Submit only counts
        # the red notes, each of which stays under its field.
        card = _form_card(view, guidance=False, fix_list=False)
    return card


def wire_size(card: dict[str, Any]) -> int:
    """Bytes of the card as JSON with the spacing Python's json module uses on the wire."""
    return len(json.dumps(card).encode())


def _form_card(view: FormView, *, guidance: bool, fix_list: bool = True) -> dict[str, Any]:
    labels: dict[str, str] = {}  # input id -> what the auditor reads, for the list by Submit

    def choice(key: str, pairs: Sequence[tuple[str, str]], label: str, *,
               placeholder: str = "Choose", required: bool = True) -> list[ElementAnnotated]:
        labels[key] = label
        return _choice_set(view, key, pairs, label=label,
                           placeholder=placeholder if guidance else None, required=required)

    def text(key: str, label: str, **kwargs: Any) -> list[ElementAnnotated]:
        labels[key] = label
        return _text_input(view, key, label, **kwargs)

    body: list[ElementAnnotated] = [
        TextBlock(text=f"Case audit: {view.case_ref}", size=types.FontSize.LARGE,
                  weight=types.FontWeight.BOLDER, wrap=True),
        FactSet(facts=[
            Fact(title="Area", value=view.area_label),
            Fact(title="Tool", value=view.tool_label),
            Fact(title="Look back", value=f"{fmt_date(view.look_back_from)} to "
                                          f"{fmt_date(view.look_back_to)}"),
            Fact(title="Submit by", value=fmt_date(view.deadline)),
        ]),
    ]
    # One status slot whatever the state (see _error): the draft note or the error summary.
    status: list[ElementAnnotated] = []
    if view.note and not view.note_by_buttons:
        status.append(_text(view.note, color=types.Colors.GOOD, size=types.FontSize.SMALL))
    if view.errors:
        status.append(_text(_summary_line(len(view.errors)), weight=types.FontWeight.BOLDER,
                            color=types.Colors.ATTENTION))
        if fr.FORM in view.errors:
            status.append(_text(view.errors[fr.FORM], color=types.Colors.ATTENTION))
    body.append(Container(
        style=types.ContainerStyle.ATTENTION if view.errors else None,
        items=status or [TextBlock(text="")], is_visible=None if status else False))
    if guidance:
        body.append(_subtle("Answers marked (required) are needed to submit. Save a draft at "
                            "any time, however much is done."))

    grade_pairs = _grade_pairs(view.grades)
    body.append(_heading("Grade each domain"))
    if guidance:
        body.extend(_rubric(view.grades))
    else:
        body.append(_subtle("The guiding questions are hidden to make room for your answers."))
    for n, domain in enumerate(view.domains, start=1):
        key = fr.domain_id(domain.key)
        folded: list[ElementAnnotated] = []
        if guidance:
            # The questions fold under the domain: shown on tap, so the form stays short.
            questions = f"questions-{n}"
            folded = [
                ActionSet(actions=[ActionToggleVisibility(
                    title="Guiding questions", mode=None,
                    target_elements=[TargetElement(element_id=questions)])],
                    spacing=types.Spacing.SMALL),
                Container(id=questions, is_visible=False, spacing=types.Spacing.SMALL,
                          items=[_subtle("\n".join(f"- {q}" for q in domain.questions))]),
            ]
        body.append(Container(separator=True, items=[
            # The label names the domain (one line, not a heading and a label): screen
            # readers, and tests, tell the grades apart by it.
            *choice(key, grade_pairs, f"{domain.title}: grade", placeholder="Choose a grade"),
            *folded,
        ]))
        labels[key] = domain.title  # in the list by Submit, the domain's own title

    body.append(_heading("Overall"))
    body.extend(choice(fr.OUTCOMES, fr.OUTCOME_CHOICES, "Are the child's outcomes met?"))
    body.extend(choice(fr.OVERALL, grade_pairs, "Overall grade", placeholder="Choose a grade"))

    body.append(_heading("What we found"))
    body.extend(text(fr.STRENGTHS, "What is working well (strengths)"))
    body.extend(text(fr.WORRIES, "What are we worried about"))
    body.extend(text(fr.BETTER, "What needs to be better"))
    body.extend(text(fr.CELEBRATE, "Outstanding practice to celebrate (optional)"))

    body.append(_heading("Who took part"))
    body.extend(choice(fr.SW_TOOK_PART, fr.YES_NO_CHOICES, "Did the social worker take part?"))
    body.extend(choice(fr.CHILD_CONTACTED, fr.CHILD_CONTACT_CHOICES,
                       "Was the child (12 or over) contacted?"))
    body.extend(choice(fr.FAMILY_CONTACTED, fr.YES_NO_CHOICES, "Was the family contacted?"))
    body.extend(text(fr.FEEDBACK, "What the child and family told us"))

    body.append(_heading("Safeguarding"))
    labels[fr.SAFEGUARDING] = "Serious safeguarding concern"
    body.append(InputToggle(
        id=fr.SAFEGUARDING, title="There is a serious safeguarding concern about this child",
        value="true" if view.values.get(fr.SAFEGUARDING) == "true" else "false",
        value_on="true", value_off="false", wrap=True))
    body.extend(_error(view, fr.SAFEGUARDING))
    body.extend(text(fr.SAFEGUARDING_DETAILS, "Details of the concern (needed if ticked)"))

    body.append(_heading(f"Actions (up to {view.max_actions})"))
    hint = "Add a row for each action and fill it in whole."
    if view.action_grades:
        hint += f" An overall grade of {' or '.join(view.action_grades)} needs at least one."
    body.append(_subtle(hint))
    shown = _rows_shown(view)
    if shown == 0:
        body.append(_add_button(0))
    for n in range(1, view.max_actions + 1):
        what, owner = fr.action_id(n, "what"), fr.action_id(n, "owner")
        due, priority = fr.action_id(n, "due"), fr.action_id(n, "priority")
        labels |= {what: f"Action {n}, what needs to happen", owner: f"Action {n}, owner",
                   due: f"Action {n}, due by", priority: f"Action {n}, priority"}
        row: list[ElementAnnotated] = [
            _text(f"Action {n}", weight=types.FontWeight.BOLDER),
            *_text_input(view, what, "What needs to happen", limit=fr.ACTION_MAX,
                         multiline=False),
            *_choice_set(view, owner, view.owner_choices, label="Owner",
                         placeholder="Choose an owner"),
            InputDate(id=due, label="Due by", value=view.values.get(due) or None),
            *_error(view, due),
            *_choice_set(view, priority, fr.PRIORITY_CHOICES, label="Priority",
                         placeholder="Choose a priority"),
        ]
        if shown <= n < view.max_actions:  # rows up to `shown` are open for good
            row.append(_add_button(n))
        body.append(Container(id=_row_id(n), separator=True if n > 1 else None,
                              is_visible=None if n <= shown else False,
                              items=row))

    # By the buttons, where the auditor clicked: what to fix, the draft note, the question.
    by_submit: list[ElementAnnotated] = []
    if view.errors and fix_list:
        by_submit += [
            _text(f"Before you can submit, fix {'this' if len(view.errors) == 1 else 'these'}:",
                  weight=types.FontWeight.BOLDER, color=types.Colors.ATTENTION),
            _text(_fix_list(view, labels, detail=guidance), color=types.Colors.ATTENTION,
                  spacing=types.Spacing.NONE),
        ]
    elif view.errors:
        by_submit.append(_text(_summary_line(len(view.errors)), weight=types.FontWeight.BOLDER,
                               color=types.Colors.ATTENTION))
    if view.confirm_grade:
        by_submit += [
            _text(f"You graded this audit {view.confirm_grade} overall and ticked a serious "
                  "safeguarding concern. If both are right, tick the box and press Submit "
                  "again; if not, change the grade or the tick.",
                  weight=types.FontWeight.BOLDER),
            InputToggle(id=fr.CONFIRM, title=f"Both are right: submit it as {view.confirm_grade}",
                        value="false", value_on="true", value_off="false", wrap=True),
        ]
    if view.note and view.note_by_buttons:
        by_submit.append(_text(view.note, color=types.Colors.GOOD, weight=types.FontWeight.BOLDER))
    body.append(Container(
        id="by-submit", separator=True, spacing=types.Spacing.LARGE,
        style=types.ContainerStyle.ATTENTION if view.errors else None,
        items=by_submit or [TextBlock(text="")], is_visible=None if by_submit else False))

    actions = [
        ActionExecute(title="Save draft", verb=SaveDraft.verb, mode=None,
                      data=SaveDraft(view.audit_id).pack(),
                      associated_inputs=types.AssociatedInputs.AUTO),
        ActionExecute(title="Submit audit", verb=SubmitAudit.verb, mode=None,
                      data=SubmitAudit(view.audit_id).pack(), style=types.ActionStyle.POSITIVE,
                      associated_inputs=types.AssociatedInputs.AUTO),
    ]
    return _card(body, actions)


def audit_summary_card(view: SummaryView) -> dict[str, Any]:
    """What replaces the form after submit: read-only, so it cannot be submitted twice."""
    body: list[ElementAnnotated] = [
        TextBlock(text=f"Audit submitted: {view.case_ref}", size=types.FontSize.LARGE,
                  weight=types.FontWeight.BOLDER, wrap=True),
        FactSet(facts=[
            Fact(title="Area", value=view.area_label),
            Fact(title="Tool", value=view.tool_label),
            Fact(title="Submitted by", value=view.submitted_by),
            Fact(title="Submitted", value=fmt_datetime(view.submitted_at)),
        ]),
        _heading("Grades"),
        FactSet(facts=[Fact(title=title, value=grade) for title, grade in view.domain_grades]),
        FactSet(separator=True, facts=[
            Fact(title="Overall grade", value=view.overall_label),
            Fact(title="Child's outcomes", value=view.outcomes_label),
        ]),
    ]
    if view.safeguarding:
        body.append(Container(style=types.ContainerStyle.ATTENTION, items=[
            _text("A serious safeguarding concern was raised with this audit.",
                  weight=types.FontWeight.BOLDER)]))
    body.append(_heading("Actions"))
    if not view.actions:
        body.append(_subtle("No actions were recorded."))
    for n, action in enumerate(view.actions, start=1):
        body.append(Container(separator=n > 1, items=[
            _text(f"{n}. {action.what}"),
            _subtle(f"Owner: {action.owner_name} · due {fmt_date(action.due_on)} · "
                    f"{action.priority_label} priority"),
        ]))
    return _card(body)


def open_form_card(case_ref: str, area_label: str, deadline: date, audit_id: int
                   ) -> dict[str, Any]:
    """A case to audit, with the button that opens the form in place."""
    return _card(
        [
            TextBlock(text=f"Case audit: {case_ref}", size=types.FontSize.MEDIUM,
                      weight=types.FontWeight.BOLDER, wrap=True),
            FactSet(facts=[Fact(title="Area", value=area_label),
                           Fact(title="Submit by", value=fmt_date(deadline))]),
        ],
        [ActionExecute(title="Open audit form", verb=OpenAudit.verb,
                       data=OpenAudit(audit_id).pack())],
    )
