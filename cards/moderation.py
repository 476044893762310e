"""Cards for moderation (SPEC R10): a moderator's list of audits to moderate, the moderation
card (the audit read-only; Agree, Regrade, Return for rework), its decided state, and the
QA team's calibration.

Pure functions from view-models to card dicts. Every card here goes 1:1: to the moderator,
the auditor, or the QA team; none is ever posted to a channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from cards.common import card, execute, facts, fmt_date, fmt_datetime, heading, plural, text
from cards.followups import FindingAction
from cards.payloads import AgreeModeration, OpenModeration, RegradeModeration, ReturnModeration
from qa import form_rules as fr

__all__ = [
    "ADDED_ACTIONS",
    "CalibrationRow",
    "CalibrationView",
    "DecidedView",
    "InviteView",
    "ModerationItem",
    "ModerationView",
    "calibration_cards",
    "invite_card",
    "moderation_card",
    "regrade_ids",
]

#: Actions a moderator may add with a regrade (Lambeth: "the moderator will add the
#: additional appropriate actions").
ADDED_ACTIONS: Final = 3
#: Auditors per calibration card, so each stays well within Teams' size limit.
CALIBRATION_PER_CARD: Final = 8


def regrade_ids(domain_keys: Sequence[str]) -> dict[str, str]:
    """The regrade's inputs: one per domain, the overall grade, the reason, the return's
    reason; the added actions use the audit form's ids (``action<n>.<field>``)."""
    ids = {f"domain.{k}": f"mod.domain.{k}" for k in domain_keys}
    return ids | {"overall": "mod.overall", "reason": "mod.reason",
                  "return_reason": "mod.return_reason"}


# ---------------------------------------------------------------------------- invitation


@dataclass(frozen=True)
class ModerationItem:
    moderation_id: int
    case_ref: str
    area_label: str
    auditor_name: str
    overall_label: str
    round: int
    due_on: date


@dataclass(frozen=True)
class InviteView:
    authority: str
    moderator_name: str
    heading: str
    items: tuple[ModerationItem, ...]


def _item_line(item: ModerationItem) -> str:
    again = f" (resubmitted: round {item.round})" if item.round > 1 else ""
    return (f"**{item.case_ref}**{again} · {item.area_label} · audited by {item.auditor_name}, "
            f"graded {item.overall_label} · moderate by {fmt_date(item.due_on)}")


def invite_card(view: InviteView) -> dict[str, Any]:
    """The audits given to one moderator, each with its Open button."""
    first = (view.moderator_name.split() or [""])[0]
    body: list[dict[str, Any]] = [
        heading(view.heading),
        text(f"Hello {first}. You have {plural(len(view.items), 'audit')} to moderate for "
             f"{view.authority}. For each, check the case record against the audit, then "
             "agree, regrade (with a reason) or return it to the auditor for rework. Your "
             "grade becomes the audit's final grade."),
    ]
    actions = []
    for n, item in enumerate(view.items, start=1):
        body.append(text(f"{n}. {_item_line(item)}", spacing="Small"))
        actions.append(execute(f"Open {item.case_ref}", OpenModeration.verb,
                               OpenModeration(item.moderation_id).pack()))
    return card(body, actions)


# ---------------------------------------------------------------------------- the moderation


@dataclass(frozen=True)
class DecidedView:
    status: str  # agreed | regraded | returned
    by: str
    at: datetime
    overall_label: str
    reason: str | None
    changes: tuple[tuple[str, str, str], ...] = ()  # (domain title, auditor's, moderator's)
    added: tuple[FindingAction, ...] = ()


@dataclass(frozen=True)
class ModerationView:
    moderation_id: int
    case_ref: str
    area_label: str
    tool_label: str
    auditor_name: str
    submitted_at: datetime
    round: int
    due_on: date
    domains: tuple[tuple[str, str, str], ...]  # (key, title, auditor's grade key)
    grades: tuple[tuple[str, str], ...]  # (key, label), best first
    overall: str
    outcomes_label: str
    answers: tuple[tuple[str, str], ...]  # (question, answer) yes/no facts
    narratives: tuple[tuple[str, str], ...]  # (title, text)
    safeguarding: bool
    actions: tuple[FindingAction, ...]
    owner_choices: tuple[tuple[str, str], ...]
    action_grades: tuple[str, ...]  # labels of grades that need an added action when lowered
    previous_return: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    decided: DecidedView | None = None

    def label(self, key: str) -> str:
        return next((lbl for k, lbl in self.grades if k == key), key)


def _error(errors: Mapping[str, str], key: str) -> list[dict[str, Any]]:
    message = errors.get(key)
    return [text(message, color="Attention", size="Small", spacing="None")] if message else []


def _grade_choice(view: ModerationView, input_id: str, label: str,
                  default: str) -> dict[str, Any]:
    return {"type": "Input.ChoiceSet", "id": input_id, "label": label, "style": "compact",
            "value": view.values.get(input_id, default),
            "choices": [{"title": lbl, "value": k} for k, lbl in view.grades]}


def _action_rows(view: ModerationView) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [text(
        "Actions to add (needed when you lower the overall grade to "
        f"{' or '.join(view.action_grades)}):", weight="Bolder", spacing="Medium")]
    for n in range(1, ADDED_ACTIONS + 1):
        ids = {f: fr.action_id(n, f) for f in fr.ACTION_FIELDS}
        rows += [
            {"type": "Input.Text", "id": ids["what"], "label": f"Action {n}: what needs doing",
             "maxLength": fr.ACTION_MAX, **_value(view, ids["what"])},
            *_error(view.errors, ids["what"]),
            {"type": "Input.ChoiceSet", "id": ids["owner"], "label": "Owner", "style": "compact",
             "choices": [{"title": t, "value": v} for v, t in view.owner_choices],
             **_value(view, ids["owner"])},
            *_error(view.errors, ids["owner"]),
            {"type": "Input.Date", "id": ids["due"], "label": "Due by", **_value(view, ids["due"])},
            *_error(view.errors, ids["due"]),
            {"type": "Input.ChoiceSet", "id": ids["priority"], "label": "Priority",
             "style": "compact",
             "choices": [{"title": t, "value": v} for v, t in fr.PRIORITY_CHOICES],
             **_value(view, ids["priority"])},
            *_error(view.errors, ids["priority"]),
        ]
    return rows


def _value(view: ModerationView, key: str) -> dict[str, str]:
    return {"value": view.values[key]} if view.values.get(key) else {}


def _show_card(title: str, body: list[dict[str, Any]], action: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Action.ShowCard", "title": title,
            "card": {"type": "AdaptiveCard", "body": body, "actions": [action]}}


def _decided_block(view: ModerationView, d: DecidedView) -> list[dict[str, Any]]:
    words = {"agreed": "Agreed with the auditor's grades",
             "regraded": f"Regraded: final grade {d.overall_label}",
             "returned": "Returned to the auditor for rework"}[d.status]
    out = [text(f"{words} by {d.by} at {fmt_datetime(d.at)}.", color="Good", weight="Bolder")]
    if d.changes:
        out.append(facts([(title, f"{a} → {m}") for title, a, m in d.changes]))
    if d.reason:
        out += [text("Reason" if d.status != "returned" else "What needs redoing",
                     weight="Bolder"), text(d.reason)]
    for n, a in enumerate(d.added, start=1):
        out.append(text(f"Added action {n}: {a.what} · {a.owner_name} · due "
                        f"{fmt_date(a.due_on)} · {a.priority_label} priority", size="Small"))
    return out


def moderation_card(view: ModerationView) -> dict[str, Any]:
    """The audit as submitted, read-only, and the moderator's three choices."""
    title = f"Moderation: case {view.case_ref}"
    if view.round > 1:
        title += f" (resubmitted, round {view.round})"
    body: list[dict[str, Any]] = [
        heading(title),
        facts([("Area", view.area_label), ("Tool", view.tool_label),
               ("Auditor", view.auditor_name), ("Submitted", fmt_datetime(view.submitted_at)),
               ("Moderate by", fmt_date(view.due_on))]),
    ]
    if view.previous_return:
        body += [text("You returned it for rework:", weight="Bolder", size="Small"),
                 text(view.previous_return, size="Small", isSubtle=True)]
    body.append(heading("The auditor's grades", size="Medium"))
    body.append(facts([*((t, view.label(g)) for _, t, g in view.domains),
                       ("Overall", view.label(view.overall)),
                       ("Child's outcomes", view.outcomes_label)]))
    if view.safeguarding:
        body.append(text("The auditor raised a safeguarding concern on this audit.",
                         color="Attention", weight="Bolder"))
    for t, value in view.narratives:
        if value:
            body += [text(t, weight="Bolder", spacing="Medium"), text(value)]
    if view.answers:
        body.append(facts(list(view.answers)))
    body.append(heading("Actions", size="Medium"))
    if not view.actions:
        body.append(text("No actions were recorded.", isSubtle=True))
    for n, a in enumerate(view.actions, start=1):
        body.append(text(f"{n}. {a.what} · {a.owner_name} · due {fmt_date(a.due_on)} · "
                         f"{a.priority_label} priority", size="Small", spacing="Small"))
    if view.decided is not None:
        body += _decided_block(view, view.decided)
        return card(body)
    if view.errors:
        body.append(text("Nothing was recorded yet: " + " ".join(dict.fromkeys(
            view.errors.values())), color="Attention", weight="Bolder"))
    ids = regrade_ids([k for k, _, _ in view.domains])
    regrade = [text("Choose the grades you would give; leave the others as they are.",
                    isSubtle=True)]
    for key, t, grade in view.domains:
        regrade.append(_grade_choice(view, ids[f"domain.{key}"], t, grade))
        regrade += _error(view.errors, ids[f"domain.{key}"])
    regrade.append(_grade_choice(view, ids["overall"], "Overall grade", view.overall))
    regrade += _error(view.errors, ids["overall"])
    regrade += [{"type": "Input.Text", "id": ids["reason"], "label": "Why you regraded it",
                 "isMultiline": True, "maxLength": 1500, **_value(view, ids["reason"])},
                *_error(view.errors, ids["reason"])]
    regrade += _action_rows(view)
    give_back = [
        text("The auditor gets the form back with their entries and your comment, and "
             "resubmits it; you then moderate it again.", isSubtle=True),
        {"type": "Input.Text", "id": ids["return_reason"], "label": "What needs redoing",
         "isMultiline": True, "maxLength": 1500, **_value(view, ids["return_reason"])},
        *_error(view.errors, ids["return_reason"]),
    ]
    data = {"moderation_id": view.moderation_id}
    actions = [
        execute("Agree", AgreeModeration.verb, AgreeModeration(**data).pack(),
                style="positive"),
        _show_card("Regrade", regrade,
                   execute("Record the regrade", RegradeModeration.verb,
                           RegradeModeration(**data).pack(), associatedInputs="auto")),
        _show_card("Return for rework", give_back,
                   execute("Return to the auditor", ReturnModeration.verb,
                           ReturnModeration(**data).pack(), associatedInputs="auto")),
    ]
    return card(body, actions)


# ---------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class CalibrationRow:
    domain: str  # its title, or "Overall"
    audits: int
    agreement: float
    tendency: str  # higher | lower | even


@dataclass(frozen=True)
class CalibrationAuditor:
    name: str
    audits: int
    enough: bool
    rows: tuple[CalibrationRow, ...]


@dataclass(frozen=True)
class CalibrationView:
    since: date
    minimum: int
    auditors: tuple[CalibrationAuditor, ...]


_LEANS: Final = {"higher": "grades higher than moderators", "lower": "grades lower than moderators",
                 "even": "no lean either way"}


def calibration_cards(view: CalibrationView) -> list[dict[str, Any]]:
    """Per auditor and domain: agreement with moderators and which way the auditor leans,
    with the count; fewer than ``minimum`` moderated audits is too few to judge."""
    if not view.auditors:
        return [card([heading("Auditor calibration"),
                      text(f"No audit has been moderated since {fmt_date(view.since)}.")])]
    out = []
    chunks = [view.auditors[i:i + CALIBRATION_PER_CARD]
              for i in range(0, len(view.auditors), CALIBRATION_PER_CARD)]
    for n, chunk in enumerate(chunks, start=1):
        part = f" ({n} of {len(chunks)})" if len(chunks) > 1 else ""
        body: list[dict[str, Any]] = [
            heading(f"Auditor calibration{part}"),
            text(f"Moderations decided since {fmt_date(view.since)}: how often the moderator "
                 "agreed with each auditor's grades, and which way the auditor leans. Fewer "
                 f"than {view.minimum} moderated audits is too few to judge.", isSubtle=True),
        ]
        for a in chunk:
            body.append(text(f"{a.name} · {plural(a.audits, 'moderated audit')}",
                             weight="Bolder", spacing="Medium"))
            if not a.enough:
                body.append(text("Too few to judge.", isSubtle=True, spacing="None"))
                continue
            body.append(facts([(r.domain, f"{r.agreement:.0%} agreed · {_LEANS[r.tendency]} "
                                          f"({plural(r.audits, 'audit')})") for r in a.rows]))
        out.append(card(body))
    return out
