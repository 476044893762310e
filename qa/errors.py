"""Domain errors: what went wrong, as a code, never as a sentence.

The store, the flows and the router raise these; ``bot/handler.py`` is the one place that
turns one into a reply, with the sentence for its code from ``cards/messages.py``. Keeping
the wording out of the layers that detect the problem means every sentence a person reads
is in one folder, and a test can check that every code has one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = ["Code", "Conflict", "DomainError", "NotAllowed", "NotFound", "Refused"]


class Code(StrEnum):
    """Every refusal the bot can give; cards/messages.py has a sentence for each."""

    # audits and the form
    AUDIT_NOT_FOUND = "audit.not_found"
    AUDIT_CASE_MISSING = "audit.case_missing"
    AUDIT_NOT_YOURS = "audit.not_yours"
    AUDIT_NOT_STAFF = "audit.not_staff"
    AUDIT_NOT_SUBMITTED = "audit.not_submitted"
    AUDIT_ALREADY_SUBMITTED = "audit.already_submitted"
    AUDIT_TOOL_GONE = "audit.tool_gone"
    # delegation
    DELEGATE_USAGE = "delegate.usage"
    DELEGATE_QA_ONLY = "delegate.qa_only"
    DELEGATE_NO_OPEN_AUDIT = "delegate.no_open_audit"
    DELEGATE_IS_AUDITOR = "delegate.is_auditor"
    DELEGATE_OWN_TEAM = "delegate.own_team"
    CASE_NOT_FOUND = "case.not_found"
    STAFF_EMAIL_UNKNOWN = "staff.email_unknown"
    # actions
    NOT_STAFF = "staff.not_recognised"
    ACTION_NOT_FOUND = "action.not_found"
    ACTION_NOT_YOURS = "action.not_yours"
    EXTENSION_NOT_YOURS = "action.extension_not_yours"
    EXTENSION_DATE = "action.extension_date"
    EXTENSION_REASON = "action.extension_reason"
    # Part B, safeguarding, remedial plans
    PART_B_NOT_FOUND = "part_b.not_found"
    ALERT_NOT_FOUND = "safeguarding.not_found"
    ALERT_NOT_YOURS = "safeguarding.not_yours"
    REMEDIAL_NOT_FOUND = "remedial.not_found"
    REMEDIAL_NOT_YOURS = "remedial.not_yours"
    REMEDIAL_PLAN_EMPTY = "remedial.plan_empty"
    # moderation
    MODERATION_NOT_FOUND = "moderation.not_found"
    MODERATION_NOT_YOURS = "moderation.not_yours"
    MODERATE_USAGE = "moderation.usage"
    MODERATE_NO_AUDIT = "moderation.no_audit"
    MODERATE_DONE = "moderation.done"
    MODERATE_NOT_INDEPENDENT = "moderation.not_independent"
    # the Teams edge
    BAD_PAYLOAD = "payload.bad"
    UNKNOWN_VERB = "payload.unknown_verb"


class DomainError(Exception):
    """A refusal with a code and the facts its sentence needs (ids, names, never content)."""

    def __init__(self, code: Code, **params: Any) -> None:
        super().__init__(code.value)
        self.code = code
        self.params = params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r})"


class NotFound(DomainError):
    """What was asked for does not exist (or no longer does)."""


class NotAllowed(DomainError):
    """This person may not do this."""


class Conflict(DomainError):
    """The state has moved on (already submitted, already the auditor)."""


class Refused(DomainError):
    """What was sent cannot be used as it is (a tampered button, a command's wrong shape)."""
