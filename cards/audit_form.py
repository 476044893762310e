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
from typing import Any

from adaptive_cards import types
from adaptive_cards.card import (
    ActionExecute,
    ActionSet,
    ActionShowCard,
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


def _choice_set(view: FormView, key: str, pairs: Sequence[tuple[str, str]], *,
                label: str | None = None, placeholder: str = "Choose") -> list[ElementAnnotated]:
    """A compact choice set keeping the current entry, with its error under it."""
    value = view.values.get(key) or None
    return [InputChoiceSet(id=key, label=label, choices=_choices(pairs),
                           style=types.ChoiceInputStyle.COMPACT, placeholder=placeholder,
                           value=value), *_error(view, key)]


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
    return [ActionSet(actions=[ActionShowCard(title="Grading guide", card=guide)])]


def _summary_line(count: int) -> str:
    thing = "thing needs" if count == 1 else "things need"
    return f"{count} {thing} fixing before you can submit. Look for the red notes below."


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
    return card


def wire_size(card: dict[str, Any]) -> int:
    """Bytes of the card as JSON with the spacing Python's json module uses on the wire."""
    return len(json.dumps(card).encode())


def _form_card(view: FormView, *, guidance: bool) -> dict[str, Any]:
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
    if view.note:
        status.append(_text(view.note, color=types.Colors.GOOD, size=types.FontSize.SMALL))
    if view.errors:
        status.append(_text(_summary_line(len(view.errors)), weight=types.FontWeight.BOLDER,
                            color=types.Colors.ATTENTION))
        if fr.FORM in view.errors:
            status.append(_text(view.errors[fr.FORM], color=types.Colors.ATTENTION))
    body.append(Container(
        style=types.ContainerStyle.ATTENTION if view.errors else None,
        items=status or [TextBlock(text="")], is_visible=bool(status)))

    grade_pairs = _grade_pairs(view.grades)
    body.append(_heading("Grade each domain"))
    if guidance:
        body.extend(_rubric(view.grades))
    else:
        body.append(_subtle("The guiding questions are hidden to make room for your answers."))
    for domain in view.domains:
        key = fr.domain_id(domain.key)
        # Without guidance the input's label alone names the domain (room for entries).
        heading = ([_text(domain.title, weight=types.FontWeight.BOLDER),
                    _subtle("\n".join(f"- {q}" for q in domain.questions))] if guidance else [])
        body.append(Container(separator=True, items=[
            *heading,
            # Labelled per domain so screen readers (and tests) can tell the grades apart.
            *_choice_set(view, key, grade_pairs, label=f"{domain.title}: grade",
                         placeholder="Choose a grade"),
        ]))

    body.append(_heading("Overall"))
    body.extend(_choice_set(view, fr.OUTCOMES, fr.OUTCOME_CHOICES,
                            label="Are the child's outcomes met?"))
    body.extend(_choice_set(view, fr.OVERALL, grade_pairs, label="Overall grade",
                            placeholder="Choose a grade"))

    body.append(_heading("What we found"))
    body.extend(_text_input(view, fr.STRENGTHS, "What is working well (strengths)"))
    body.extend(_text_input(view, fr.WORRIES, "What are we worried about"))
    body.extend(_text_input(view, fr.BETTER, "What needs to be better"))
    body.extend(_text_input(view, fr.CELEBRATE, "Outstanding practice to celebrate (optional)"))

    body.append(_heading("Who took part"))
    body.extend(_choice_set(view, fr.SW_TOOK_PART, fr.YES_NO_CHOICES,
                            label="Did the social worker take part?"))
    body.extend(_choice_set(view, fr.CHILD_CONTACTED, fr.CHILD_CONTACT_CHOICES,
                            label="Was the child (12 or over) contacted?"))
    body.extend(_choice_set(view, fr.FAMILY_CONTACTED, fr.YES_NO_CHOICES,
                            label="Was the family contacted?"))
    body.extend(_text_input(view, fr.FEEDBACK, "What the child and family told us"))

    body.append(_heading("Safeguarding"))
    body.append(InputToggle(
        id=fr.SAFEGUARDING, title="There is a serious safeguarding concern about this child",
        value="true" if view.values.get(fr.SAFEGUARDING) == "true" else "false",
        value_on="true", value_off="false", wrap=True))
    body.extend(_error(view, fr.SAFEGUARDING))
    body.extend(_text_input(view, fr.SAFEGUARDING_DETAILS,
                            "Details of the concern (needed if ticked)"))

    body.append(_heading(f"Actions (up to {view.max_actions})"))
    hint = "Fill in a whole row for each action; leave unused rows empty."
    if view.action_grades:
        hint += f" An overall grade of {' or '.join(view.action_grades)} needs at least one."
    body.append(_subtle(hint))
    for n in range(1, view.max_actions + 1):
        body.append(Container(separator=n > 1, items=[
            _text(f"Action {n}", weight=types.FontWeight.BOLDER),
            *_text_input(view, fr.action_id(n, "what"), "What needs to happen",
                         limit=fr.ACTION_MAX, multiline=False),
            *_choice_set(view, fr.action_id(n, "owner"), view.owner_choices, label="Owner",
                         placeholder="Choose an owner"),
            InputDate(id=fr.action_id(n, "due"), label="Due by",
                      value=view.values.get(fr.action_id(n, "due")) or None),
            *_error(view, fr.action_id(n, "due")),
            *_choice_set(view, fr.action_id(n, "priority"), fr.PRIORITY_CHOICES,
                         label="Priority", placeholder="Choose a priority"),
        ]))

    actions = [
        ActionExecute(title="Save draft", verb=SaveDraft.verb,
                      data=SaveDraft(view.audit_id).pack(),
                      associated_inputs=types.AssociatedInputs.AUTO),
        ActionExecute(title="Submit audit", verb=SubmitAudit.verb,
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
