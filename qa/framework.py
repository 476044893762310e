"""The council's quality assurance framework as the rest of the code sees it (SPEC R1).

Everything that differs between authorities (grade scale, audit tools, areas of planning,
quotas, deadlines, escalation, re-audit, moderation, calendar and schedule) is a field here,
so Lambeth's and Bedford's frameworks both run without code changes. Reading and checking
the TOML file that fills it in is ``qa/framework_file.py``; the reference documentation for
the file is the commented example ``qa/frameworks/lambeth_like.toml``.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

from qa.people import OWNER

__all__ = [
    "DEFAULT_GRADES",
    "DEFAULT_REMEDIAL_ROLES",
    "DEFAULT_ROLES",
    "OWNER",
    "Area",
    "CalendarConfig",
    "Domain",
    "Escalation",
    "Framework",
    "Grade",
    "Moderation",
    "Retention",
    "Schedule",
    "Theme",
    "Tool",
]

DEFAULT_GRADES: Final = (
    ("outstanding", "Outstanding"),
    ("good", "Good"),
    ("requires_improvement", "Requires Improvement"),
    ("inadequate", "Inadequate"),
)
DEFAULT_ROLES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "social_worker": "Social worker",
        "team_manager": "Team manager",
        "advanced_practitioner": "Advanced practitioner",
        "service_manager": "Service manager",
        "head_of_service": "Head of service",
        "assistant_director": "Assistant director",
        "director": "Director",
        "iro": "Independent reviewing officer",
        "cp_chair": "Child protection chair",
        "qa_lead": "QA lead auditor",
        "principal_social_worker": "Principal social worker",
    }
)
DEFAULT_REMEDIAL_ROLES: Final = ("director", "assistant_director")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Theme:
    """A practice theme (Haringey's quarterly themes): counted where a worry or a "what
    needs to be better" answer uses one of its key words or phrases."""

    key: str
    label: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Retention:
    """How long records are kept (SPEC R13).

    ``closed_case_years``: a case closed this many whole years ago is purged with everything
    hanging off it (audits, grades, actions, their audit-log entries); open cases are never
    purged. ``outbox_content_days``: a message's content is cleared this many days after it
    was sent (the row, without content, stays so a replayed job still finds its dedupe key).
    ``audit_log_years``: log entries about anything else (staff, conversations, allocation
    runs, jobs) older than this go too.
    """

    closed_case_years: int = 7
    outbox_content_days: int = 7
    audit_log_years: int = 7

@dataclass(frozen=True)
class Grade:
    """One grade on the scale; rank 0 is the best grade."""

    key: str
    label: str
    rank: int
    description: str = ""


@dataclass(frozen=True)
class Domain:
    """One graded domain (Lambeth) or practice standard (Bedford) with its guiding questions."""

    key: str
    title: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class Tool:
    """An audit tool: the domains an auditor grades, in order."""

    key: str
    label: str
    domains: tuple[Domain, ...]


@dataclass(frozen=True)
class Area:
    """An area of planning; monthly_count None means no fixed monthly number."""

    key: str
    label: str
    tool: str
    monthly_count: int | None


@dataclass(frozen=True)
class Escalation:
    """How overdue actions and poor grades climb the management line."""

    ladder: tuple[str, ...]
    step_days: int
    remedial_days: Mapping[str, int]
    safeguarding_ack_hours: int
    action_reminder_working_days: int
    remedial_roles: tuple[str, ...] = DEFAULT_REMEDIAL_ROLES
    #: Working days the social worker and team manager have to record Part B.
    part_b_working_days: int = 10


#: Roles that moderate when the file names none: the QA team's usual roles and the senior
#: managers Leicester's moderations are done by.
DEFAULT_MODERATORS: Final = ("qa_lead", "principal_social_worker", "head_of_service",
                             "service_manager")


@dataclass(frozen=True)
class Moderation:
    """Share of audits sampled for moderation, grades that are always moderated, who
    moderates (Leicester: heads of service and service managers; Lambeth: the practice
    assurance leads) and the working days a moderator has."""

    rate: float
    always: frozenset[str]
    moderators: tuple[str, ...] = DEFAULT_MODERATORS
    working_days: int = 10


@dataclass(frozen=True)
class CalendarConfig:
    """Which bank holidays apply, plus local closure days that are not working days."""

    region: str
    extra_closures: tuple[date, ...]
    #: The working day's hours: safeguarding acknowledgement time counts only these.
    day_starts: time = time(9, 0)
    day_ends: time = time(17, 0)


@dataclass(frozen=True)
class Schedule:
    """Wall-clock times of the scheduled jobs, in the framework's timezone."""

    allocation_time: time
    daily_time: time
    digest_day: int
    digest_time: time
    quarterly_digest: bool
    allocation_working_day: int = 1


@dataclass(frozen=True)
class Framework:
    """A validated framework; every cross-reference in it is known to resolve."""

    authority: str
    timezone: str
    grades: tuple[Grade, ...]
    good_or_better: frozenset[str]
    actions_required: frozenset[str]
    roles: Mapping[str, str]
    auditor_quotas: Mapping[str, int]
    qa_roles: frozenset[str]
    areas: Mapping[str, Area]
    tools: Mapping[str, Tool]
    blackout_months: frozenset[int]
    look_back_months: int
    repeat_window_months: int
    deadline_working_days: int
    reminder_working_days_before: int
    max_actions: int
    escalation: Escalation
    reaudit_months: Mapping[str, int]
    moderation: Moderation
    calendar: CalendarConfig
    schedule: Schedule
    source: str
    themes: tuple[Theme, ...] = ()
    retention: Retention = field(default_factory=Retention)
    _grade_index: Mapping[str, Grade] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_grade_index", MappingProxyType({g.key: g for g in self.grades}))

    @property
    def zone(self) -> ZoneInfo:
        """The framework timezone as tzinfo, so callers never build naive datetimes."""
        return ZoneInfo(self.timezone)

    def grade(self, key: str) -> Grade:
        """Look up a grade; KeyError names the valid keys because callers pass user input."""
        try:
            return self._grade_index[key]
        except KeyError:
            valid = ", ".join(g.key for g in self.grades)
            raise KeyError(f"unknown grade {key!r}; the scale is: {valid}") from None

    def grade_label(self, key: str | None) -> str:
        """What people read for a stored grade: its label, or the key itself if the scale
        no longer has it (an old audit after the council changed its file)."""
        found = self._grade_index.get(key or "")
        return found.label if found else (key or "")

    def tool_for_area(self, area_key: str) -> Tool:
        """The audit tool used for cases in an area of planning."""
        try:
            area = self.areas[area_key]
        except KeyError:
            valid = ", ".join(self.areas)
            raise KeyError(f"unknown area of planning {area_key!r}; known: {valid}") from None
        return self.tools[area.tool]

    def quota_for_roles(self, roles: Iterable[str]) -> int:
        """Monthly audits for a person: the largest quota among their auditing roles, else 0."""
        return max((self.auditor_quotas.get(r, 0) for r in roles), default=0)

    def is_good_or_better(self, grade_key: str) -> bool:
        """Whether a grade counts as good or better (after checking the key exists)."""
        return self.grade(grade_key).key in self.good_or_better

    def is_blackout(self, month: date) -> bool:
        """Whether no audits are allocated in ``month``'s month (Leicester's 10-month cycle)."""
        return month.month in self.blackout_months

    def needs_actions(self, grade_key: str) -> bool:
        """Whether an audit with this overall grade must carry at least one action."""
        return self.grade(grade_key).key in self.actions_required


