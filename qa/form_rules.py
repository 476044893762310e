"""The audit form's rules (SPEC R5): input ids, parsing and validation, with no I/O.

The card (cards/audit_form.py), the flow (bot/flows/audit_form.py) and the store all
speak the input ids defined here, so a field is named in exactly one place. Validation
returns every error at once, keyed by the input id it concerns, so the card can show each
message directly under its field and keep everything the auditor typed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, Final

from qa.framework import Framework, Tool

# ---------------------------------------------------------------------------- input ids

OVERALL: Final = "overall"
OUTCOMES: Final = "outcomes"
STRENGTHS: Final = "strengths"
WORRIES: Final = "worries"
BETTER: Final = "better"
SW_TOOK_PART: Final = "sw_took_part"
CHILD_CONTACTED: Final = "child_contacted"
FAMILY_CONTACTED: Final = "family_contacted"
FEEDBACK: Final = "feedback"
CELEBRATE: Final = "celebrate"
SAFEGUARDING: Final = "safeguarding"
SAFEGUARDING_DETAILS: Final = "safeguarding_details"
#: Key for an error that belongs to no single field.
FORM: Final = "_form"
#: The tick that confirms a Good or better overall grade with a serious safeguarding concern:
#: asked on the form for that one submit, never kept in a draft.
CONFIRM: Final = "confirm_grade_with_concern"

ACTION_FIELDS: Final = ("what", "owner", "due", "priority")

#: Choices as (value, label), in the order the card offers them.
OUTCOME_CHOICES: Final = (
    ("met", "Met"),
    ("on_the_way", "On the way to being met"),
    ("not_met", "Not met"),
)
YES_NO_CHOICES: Final = (("yes", "Yes"), ("no", "No"))
CHILD_CONTACT_CHOICES: Final = (
    ("yes", "Yes"),
    ("no", "No"),
    ("under_12", "Not expected: child under 12"),
)
PRIORITY_CHOICES: Final = (("high", "High"), ("medium", "Medium"), ("low", "Low"))

#: Free-text fields and the most characters each may hold. Teams refuses cards over
#: 28 KB and the form comes back with every entry in it, so the limits are a budget: a
#: form with every field full (10 domains, 5 actions) must still fit (a test checks).
TEXT_LIMITS: Final[Mapping[str, int]] = MappingProxyType({
    STRENGTHS: 1800,
    WORRIES: 1800,
    BETTER: 1800,
    FEEDBACK: 1200,
    CELEBRATE: 800,
    SAFEGUARDING_DETAILS: 800,
})
NARRATIVE_FIELDS: Final = tuple(TEXT_LIMITS)
ACTION_MAX: Final = 250

_FIXED_IDS: Final = frozenset({
    OVERALL, OUTCOMES, STRENGTHS, WORRIES, BETTER, SW_TOOK_PART, CHILD_CONTACTED,
    FAMILY_CONTACTED, FEEDBACK, CELEBRATE, SAFEGUARDING, SAFEGUARDING_DETAILS,
})  # fmt: skip
_DOMAIN_RE: Final = re.compile(r"^domain\.[a-z][a-z0-9_]{0,63}$")
_ACTION_RE: Final = re.compile(r"^action([1-9][0-9]?)\.(what|owner|due|priority)$")
_ISO_DATE_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: A draft value longer than this is cut: far beyond any limit, it only guards storage.
_STORED_MAX: Final = 10_000


def domain_id(domain_key: str) -> str:
    return f"domain.{domain_key}"


def action_id(n: int, name: str) -> str:
    """``action<n>.<name>``, numbered from 1 as the auditor sees the rows."""
    return f"action{n}.{name}"


def input_ids(tool: Tool, max_actions: int) -> list[str]:
    """Every input id of the form for this tool, in card order."""
    ids = [domain_id(d.key) for d in tool.domains]
    ids += [OVERALL, OUTCOMES, STRENGTHS, WORRIES, BETTER, SW_TOOK_PART, CHILD_CONTACTED,
            FAMILY_CONTACTED, FEEDBACK, CELEBRATE, SAFEGUARDING, SAFEGUARDING_DETAILS]
    for n in range(1, max_actions + 1):
        ids += [action_id(n, f) for f in ACTION_FIELDS]
    return ids


def is_input_id(key: str) -> bool:
    """Whether a key of the action data is one of the form's inputs (by shape)."""
    return key in _FIXED_IDS or bool(_DOMAIN_RE.match(key)) or bool(_ACTION_RE.match(key))


def values_from(data: Mapping[str, Any], known: Iterable[str] | None = None) -> dict[str, str]:
    """Only the form's entries from a card action's data, as strings.

    Teams merges the packed payload (``audit_id``, ``verb``) and the inputs into one
    object; drafts must keep the entries only, so anything not shaped like an input id
    (or not in ``known``, when given: see :func:`input_ids`) is dropped, as are non-text
    values (Teams sends every input as a string).
    """
    allowed = frozenset(known) if known is not None else None
    out: dict[str, str] = {}
    for key, value in data.items():
        if not (isinstance(key, str) and isinstance(value, str) and is_input_id(key)):
            continue
        if allowed is None or key in allowed:
            out[key] = value[:_STORED_MAX]
    return out


# ---------------------------------------------------------------------------- submission


@dataclass(frozen=True)
class ActionEntry:
    """One action row the auditor filled in completely."""

    seq: int
    what: str
    owner_id: str
    due_on: date
    priority: str


@dataclass(frozen=True)
class Submission:
    """A valid, parsed form: what the store writes on submit."""

    domain_grades: dict[str, str]  # domain key -> grade key, in the tool's order
    overall: str
    outcomes: str
    strengths: str
    worries: str
    better: str
    sw_took_part: bool
    child_contacted: str  # yes | no | under_12
    family_contacted: bool
    feedback: str
    celebrate: str
    safeguarding: bool
    safeguarding_details: str
    actions: tuple[ActionEntry, ...]

    def answers(self) -> dict[str, Any]:
        """The narrative and yes/no answers, as kept in ``Audit.answers``."""
        return {
            STRENGTHS: self.strengths,
            WORRIES: self.worries,
            BETTER: self.better,
            SW_TOOK_PART: self.sw_took_part,
            CHILD_CONTACTED: self.child_contacted,
            FAMILY_CONTACTED: self.family_contacted,
            FEEDBACK: self.feedback,
            CELEBRATE: self.celebrate,
            SAFEGUARDING_DETAILS: self.safeguarding_details,
        }


def _text(values: Mapping[str, Any], key: str) -> str:
    value = values.get(key)
    if value is None:
        return ""
    return (value if isinstance(value, str) else str(value)).strip()


def _too_long(text: str, limit: int) -> str | None:
    if len(text) <= limit:
        return None
    return (f"Please keep this to {limit:,} characters or fewer "
            f"(it is {len(text):,} now).")


def _choice(values: Mapping[str, Any], key: str, allowed: tuple[tuple[str, str], ...],
            errors: dict[str, str], missing: str) -> str:
    raw = _text(values, key)
    if not raw:
        errors[key] = missing
    elif raw not in {v for v, _ in allowed}:
        errors[key] = "Please choose one of the options."
    return raw


def _parse_date(raw: str) -> date | None:
    if not _ISO_DATE_RE.match(raw):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def validate(
    values: Mapping[str, Any],
    *,
    tool: Tool,
    framework: Framework,
    today: date,
    owner_ids: set[str] | frozenset[str],
    kept_actions: int = 0,
) -> tuple[Submission | None, dict[str, str]]:
    """Check a submitted form; returns (submission, {}) or (None, errors by input id).

    ``today`` is the date in the framework's timezone: a due date must be after it.
    ``owner_ids`` are the staff who may own an action on this case. ``kept_actions`` are
    the audit's actions from an earlier submission still standing (an audit returned for
    rework keeps them), which count toward a grade's need for an action.
    """
    errors: dict[str, str] = {}
    grade_keys = {g.key for g in framework.grades}

    domain_grades: dict[str, str] = {}
    for domain in tool.domains:
        key = domain_id(domain.key)
        raw = _text(values, key)
        if not raw:
            errors[key] = "Please grade this domain."
        elif raw not in grade_keys:
            errors[key] = "Please choose a grade from the list."
        else:
            domain_grades[domain.key] = raw

    overall = _text(values, OVERALL)
    if not overall:
        errors[OVERALL] = "Please give an overall grade."
    elif overall not in grade_keys:
        errors[OVERALL] = "Please choose a grade from the list."
        overall = ""

    outcomes = _choice(values, OUTCOMES, OUTCOME_CHOICES, errors,
                       "Please say whether the child's outcomes are met.")
    if (overall and outcomes == "not_met" and OVERALL not in errors
            and framework.is_good_or_better(overall)):
        errors[OVERALL] = (f"{framework.grade(overall).label} is not possible when the "
                           "child's outcomes are not met or on the way to being met.")

    sw = _choice(values, SW_TOOK_PART, YES_NO_CHOICES, errors,
                 "Please say whether the social worker took part.")
    child = _choice(values, CHILD_CONTACTED, CHILD_CONTACT_CHOICES, errors,
                    "Please say whether the child was contacted.")
    family = _choice(values, FAMILY_CONTACTED, YES_NO_CHOICES, errors,
                     "Please say whether the family was contacted.")

    texts = {key: _text(values, key) for key in NARRATIVE_FIELDS}
    for key, text in texts.items():
        problem = _too_long(text, TEXT_LIMITS[key])
        if problem:
            errors[key] = problem
    if FEEDBACK not in errors and not texts[FEEDBACK] and "yes" in (child, family):
        errors[FEEDBACK] = "Please record what the child or family told you."

    flag = _text(values, SAFEGUARDING).lower()
    if flag not in ("", "true", "false"):
        errors[SAFEGUARDING] = "Please tick or untick the safeguarding box."
    safeguarding = flag == "true"
    if safeguarding and not texts[SAFEGUARDING_DETAILS]:
        errors[SAFEGUARDING_DETAILS] = ("Please describe the safeguarding concern so the "
                                        "team manager can act on it.")

    actions, row_errors = actions_from(values, framework.max_actions, today, owner_ids)
    errors.update(row_errors)
    if (overall and not actions and not kept_actions and not row_errors and OVERALL not in errors
            and framework.needs_actions(overall)):
        errors[action_id(1, "what")] = (f"An overall grade of {framework.grade(overall).label} "
                                        "needs at least one action: please add it here.")

    if errors:
        return None, errors
    return Submission(
        domain_grades=domain_grades,
        overall=overall,
        outcomes=outcomes,
        strengths=texts[STRENGTHS],
        worries=texts[WORRIES],
        better=texts[BETTER],
        sw_took_part=sw == "yes",
        child_contacted=child,
        family_contacted=family == "yes",
        feedback=texts[FEEDBACK],
        celebrate=texts[CELEBRATE],
        safeguarding=safeguarding,
        safeguarding_details=texts[SAFEGUARDING_DETAILS] if safeguarding else "",
        actions=tuple(actions),
    ), {}


def actions_from(
    values: Mapping[str, Any], max_actions: int, today: date, owner_ids: set[str] | frozenset[str],
) -> tuple[list[ActionEntry], dict[str, str]]:
    """Complete rows become actions; a half-filled row is an error on its empty fields
    (the audit form's rows, and the actions a moderator adds with a regrade)."""
    actions: list[ActionEntry] = []
    errors: dict[str, str] = {}
    for n in range(1, max_actions + 1):
        row = {f: _text(values, action_id(n, f)) for f in ACTION_FIELDS}
        if not any(row.values()):
            continue
        before = len(errors)
        for name, message in (("what", "Please say what needs to be done."),
                              ("owner", "Please choose who owns this action."),
                              ("due", "Please give a due date."),
                              ("priority", "Please choose a priority.")):
            if not row[name]:
                errors[action_id(n, name)] = message
        problem = _too_long(row["what"], ACTION_MAX)
        if problem:
            errors[action_id(n, "what")] = problem
        if row["owner"] and row["owner"] not in owner_ids:
            errors[action_id(n, "owner")] = "Please choose an owner from the list."
        due = _parse_date(row["due"]) if row["due"] else None
        if row["due"] and due is None:
            errors[action_id(n, "due")] = "Please give the date as a calendar date."
        elif due is not None and due <= today:
            errors[action_id(n, "due")] = "The due date must be after today."
        if row["priority"] and row["priority"] not in {v for v, _ in PRIORITY_CHOICES}:
            errors[action_id(n, "priority")] = "Please choose a priority from the list."
        if len(errors) == before and due is not None:
            actions.append(ActionEntry(seq=len(actions) + 1, what=row["what"],
                                       owner_id=row["owner"], due_on=due,
                                       priority=row["priority"]))
    return actions, errors


def entries_of(*, domain_grades: Mapping[str, str], overall: str | None, outcomes: str | None,
               answers: Mapping[str, Any] | None, safeguarding: bool) -> dict[str, str]:
    """A stored audit back as the form's entries (the inverse of :class:`Submission`), so
    an audit returned for rework opens with everything the auditor wrote. Actions are not
    included: those already recorded stay open with their owners."""
    values = {domain_id(k): g for k, g in domain_grades.items()}
    if overall:
        values[OVERALL] = overall
    if outcomes:
        values[OUTCOMES] = outcomes
    for key, value in (answers or {}).items():
        if isinstance(value, bool):
            values[key] = "yes" if value else "no"
        elif isinstance(value, str) and value:
            values[key] = value
    values[SAFEGUARDING] = "true" if safeguarding else "false"
    return {k: v for k, v in values.items() if is_input_id(k)}


def needs_confirmation(submission: Submission, framework: Framework) -> bool:
    """A plausible mistake worth a second look, never a refusal: an overall grade of Good or
    better with a serious safeguarding concern ticked."""
    return submission.safeguarding and framework.is_good_or_better(submission.overall)


def label_for(choices: tuple[tuple[str, str], ...], value: str | None) -> str:
    """The label of a choice value (the value itself when unknown)."""
    return next((label for v, label in choices if v == value), value or "")
