"""SQLAlchemy 2 models.

The store keeps pseudonymous case references only: no child's name, date of birth or
address ever has a column here (data minimisation, SPEC R2).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The machine's clock: the default of the service's one clock (``Services.clock``).

    The store never calls it while changing data: every store function takes its time from
    the caller. It remains the column default only for rows written outside the store
    (test and benchmark fixtures).
    """
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Team(Base):
    """A social work team as named in the case management system's exports."""

    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)


class Staff(Base):
    """A member of staff: auditor, case holder, manager or QA lead."""

    __tablename__ = "staff"
    staff_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), index=True)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    manager_id: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    teams_user_id: Mapped[str | None] = mapped_column(String(200), index=True)
    aad_object_id: Mapped[str | None] = mapped_column(String(64), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Case(Base):
    """An open (or closed) case, known only by its pseudonymous reference."""

    __tablename__ = "cases"
    case_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    social_worker_id: Mapped[str | None] = mapped_column(String(64), index=True)
    area: Mapped[str] = mapped_column(String(64), index=True)
    opened_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    closed_on: Mapped[date | None] = mapped_column(Date)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    """Where the bot can reach someone: a 1:1 chat, a channel or a group chat.

    ``reference`` is the serialised Bot Framework conversation reference needed to
    send proactively after a restart; it never holds message content.
    """

    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    service_url: Mapped[str] = mapped_column(String(500))
    reference: Mapped[dict[str, Any]] = mapped_column(JSON)
    teams_user_id: Mapped[str | None] = mapped_column(String(200), index=True)
    staff_id: Mapped[str | None] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    team_id: Mapped[str | None] = mapped_column(String(300), index=True)
    team_name: Mapped[str | None] = mapped_column(String(200))
    welcomed_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLogEntry(Base):
    """Append-only record of every state change: who, what, when, before and after."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(300))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)


class OutboxMessage(Base):
    """A proactive message waiting to be (or already) delivered.

    Persisted so that nothing queued is lost on a restart and so that any process
    (a CLI command, a job, a handler) can queue and the running service delivers.
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    staff_id: Mapped[str | None] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(300))
    # "staff:<id>" or "conv:<id>": messages to one recipient are delivered in queue order.
    recipient: Mapped[str] = mapped_column(String(320))
    activity: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # NULL: due at once (a fresh message); set only when a retry is pushed back.
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    # Which sender (instance and term) holds the claim; every settle checks it.
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    # Set just before the call to Teams, cleared when settled: a claimed row with it set
    # may have been delivered by a sender that died.
    send_started_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column()
    sent_conversation_id: Mapped[str | None] = mapped_column(String(300))
    sent_activity_id: Mapped[str | None] = mapped_column(String(300))
    # Messages to queue if this one cannot be delivered (a safeguarding alert's auditor,
    # QA leads and next rung): [{"staff_id", "body", "dedupe_key"}], written by the flow.
    fallback: Mapped[list[Any] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_recipient", "recipient", "status"),
    )


class JobRun(Base):
    """One run of a scheduled job for one period; the unique key makes jobs run once."""

    __tablename__ = "job_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="running")
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("uq_job_runs_name_period", "name", "period", unique=True),)


class AllocationRun(Base):
    """One allocation: the monthly one, or a themed audit. Its unique key makes it happen once."""

    __tablename__ = "allocation_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)  # e.g. "monthly:2026-12"
    kind: Mapped[str] = mapped_column(String(16))  # monthly | thematic
    month: Mapped[str] = mapped_column(String(7), index=True)  # YYYY-MM
    theme: Mapped[str | None] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    deadline: Mapped[date] = mapped_column(Date)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Audit(Base):
    """One case audit allocated to one auditor, from allocation to submission."""

    __tablename__ = "audits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("allocation_runs.id"), index=True)
    case_ref: Mapped[str] = mapped_column(ForeignKey("cases.case_ref"), index=True)
    auditor_id: Mapped[str] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    delegate_id: Mapped[str | None] = mapped_column(ForeignKey("staff.staff_id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    area: Mapped[str] = mapped_column(String(64), index=True)
    tool: Mapped[str] = mapped_column(String(64))
    month: Mapped[str] = mapped_column(String(7), index=True)
    reason: Mapped[str] = mapped_column(String(16))  # random | reaudit | thematic
    status: Mapped[str] = mapped_column(String(16), default="allocated", index=True)
    allocated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline: Mapped[date] = mapped_column(Date)
    look_back_from: Mapped[date] = mapped_column(Date)
    look_back_to: Mapped[date] = mapped_column(Date)
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    draft_saved_at: Mapped[datetime | None] = mapped_column()
    submitted_at: Mapped[datetime | None] = mapped_column(index=True)
    submitted_by: Mapped[str | None] = mapped_column(String(64))
    overall_grade: Mapped[str | None] = mapped_column(String(32), index=True)
    # A moderator's regrade of the overall grade (SPEC R10), kept on the row so the final
    # grade is read without a join (store/grading.py); the round in ``moderations`` is the
    # record of it, written in the same transaction.
    moderated_grade: Mapped[str | None] = mapped_column(String(32))
    outcomes: Mapped[str | None] = mapped_column(String(16))
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    safeguarding_concern: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Times a moderator returned it for rework (SPEC R10); its next submission is round
    # ``reworks + 1`` of its moderation.
    reworks: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("uq_audits_run_case", "run_id", "case_ref", unique=True),
                      # re-audits owed (reports): latest audit per case, candidates by grade
                      Index("ix_audits_case_submitted", "case_ref", "submitted_at"),
                      Index("ix_audits_grade_submitted", "overall_grade", "submitted_at",
                            "case_ref", "status"))


class DomainGrade(Base):
    __tablename__ = "domain_grades"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id"))
    domain: Mapped[str] = mapped_column(String(64))
    grade: Mapped[str] = mapped_column(String(32))
    moderated_grade: Mapped[str | None] = mapped_column(String(32))  # as Audit's

    __table_args__ = (Index("uq_domain_grades_audit_domain", "audit_id", "domain", unique=True),
                      Index("ix_domain_grades_domain_grade", "domain", "grade"),
                      # covering: a period's grades come from the index alone (reports)
                      Index("ix_domain_grades_audit_grade", "audit_id", "domain", "grade"))


class Chased:
    """Columns of anything the daily nudges chase (an action, a Part B, a remedial plan).

    ``reminded_on``: the day the pre-deadline reminder went; ``step``: the last rung of the
    escalation ladder told (-1 none, 0 the owner when it went overdue, 1 the next rung...);
    ``stepped_on``: the day that rung was told.
    """

    reminded_on: Mapped[date | None] = mapped_column(Date)
    step: Mapped[int] = mapped_column(Integer, default=-1)
    stepped_on: Mapped[date | None] = mapped_column(Date)


class AuditAction(Chased, Base):
    """An action arising from an audit: what, who owns it, by when, how urgent, and where it
    is: open, extension_requested, extended, done or cancelled (overdue is worked out from
    the due date, qa/chase.py)."""

    __tablename__ = "audit_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    what: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    due_on: Mapped[date] = mapped_column(Date, index=True)
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column()
    done_by: Mapped[str | None] = mapped_column(String(200))
    done_note: Mapped[str | None] = mapped_column(Text)
    first_due_on: Mapped[date | None] = mapped_column(Date)
    # An extension asked for (and the answer): the date, why, who and when.
    asked_due_on: Mapped[date | None] = mapped_column(Date)
    asked_reason: Mapped[str | None] = mapped_column(Text)
    asked_by: Mapped[str | None] = mapped_column(String(200))
    asked_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_note: Mapped[str | None] = mapped_column(Text)

    # The digest reads one period's actions: raised in it, done in it, or still open.
    __table_args__ = (Index("ix_audit_actions_created_at", "created_at"),
                      Index("ix_audit_actions_done_at", "done_at"))


class PartB(Chased, Base):
    """The response of the case's social worker or team manager to an audit's findings
    (Part B): asked for on submit, recorded on a card, chased when late."""

    __tablename__ = "part_b"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id"), index=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    relation: Mapped[str] = mapped_column(String(24))  # social_worker | team_manager
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    requested_at: Mapped[datetime] = mapped_column()
    due_on: Mapped[date] = mapped_column(Date)
    agrees: Mapped[bool | None] = mapped_column(Boolean)
    disagree_reason: Mapped[str | None] = mapped_column(Text)
    reflections: Mapped[str | None] = mapped_column(Text)
    discussed_on: Mapped[date | None] = mapped_column(Date)
    submitted_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("uq_part_b_audit_staff", "audit_id", "staff_id", unique=True),)


class SafeguardingAlert(Base):
    """A serious safeguarding concern raised on an audit (SPEC R6): who was told, at which
    rung of the line of management, and who acknowledged it when."""

    __tablename__ = "safeguarding_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id"), unique=True)
    case_ref: Mapped[str] = mapped_column(ForeignKey("cases.case_ref"), index=True)
    raised_by: Mapped[str] = mapped_column(String(200))
    raised_at: Mapped[datetime] = mapped_column()
    rung: Mapped[int] = mapped_column(Integer, default=0)
    rung_at: Mapped[datetime] = mapped_column()  # when the current rung was told
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None] = mapped_column(index=True)


class AlertRecipient(Base):
    """Someone told of a safeguarding alert, and at which rung."""

    __tablename__ = "alert_recipients"
    alert_id: Mapped[int] = mapped_column(ForeignKey("safeguarding_alerts.id"),
                                          primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.staff_id"), primary_key=True)
    rung: Mapped[int] = mapped_column(Integer)
    told_at: Mapped[datetime] = mapped_column()


class Remedial(Chased, Base):
    """Grade escalation (SPEC R8, Lambeth): an Inadequate or Requires Improvement audit goes
    to the remedial roles for a plan within the framework's days, and the case is tracked
    until an audit grades it Good or better."""

    __tablename__ = "remedial"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id"), unique=True)
    case_ref: Mapped[str] = mapped_column(ForeignKey("cases.case_ref"), index=True)
    grade: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column()
    due_on: Mapped[date] = mapped_column(Date)
    plan: Mapped[str | None] = mapped_column(Text)
    plan_by: Mapped[str | None] = mapped_column(String(200))
    plan_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(index=True)
    closed_by_audit_id: Mapped[int | None] = mapped_column(ForeignKey("audits.id"))


class RemedialRecipient(Base):
    """Who is asked for the remedial plan (the framework's remedial roles for the case)."""

    __tablename__ = "remedial_recipients"
    remedial_id: Mapped[int] = mapped_column(ForeignKey("remedial.id"), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.staff_id"), primary_key=True)


class DigestChannel(Base):
    """A channel a QA lead registered (``digests here``) for the leadership digest.

    ``conversation_id`` is the channel itself (never a reply thread), so each digest is a
    new post. Rows are kept when a channel is switched off (``active`` False) so the log of
    who registered it stays readable.
    """

    __tablename__ = "digest_channels"
    conversation_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    team_id: Mapped[str | None] = mapped_column(String(300))
    team_name: Mapped[str | None] = mapped_column(String(200))
    registered_by: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[datetime] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Moderation(Base):
    """One round of moderating one audit (SPEC R10): allocated to a moderator, then agreed,
    regraded (the moderator's grades become the final grades, ``store/grading.py``) or
    returned for rework (the auditor resubmits and the next round is allocated to the same
    moderator). ``overall_grade`` is the moderator's overall grade once decided,
    ``auditor_overall`` the auditor's as it stood when moderated."""

    __tablename__ = "moderations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("allocation_runs.id"), index=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id"))
    round: Mapped[int] = mapped_column(Integer, default=1)
    moderator_id: Mapped[str] = mapped_column(ForeignKey("staff.staff_id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="allocated", index=True)
    allocated_at: Mapped[datetime] = mapped_column()
    due_on: Mapped[date] = mapped_column(Date, index=True)
    decided_at: Mapped[datetime | None] = mapped_column(index=True)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    auditor_overall: Mapped[str | None] = mapped_column(String(32))
    overall_grade: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("uq_moderations_audit_round", "audit_id", "round", unique=True),
                      # the final grade: an audit's regraded moderation (store/grading.py)
                      Index("ix_moderations_audit_status", "audit_id", "status"))


class ModerationDomain(Base):
    """Per domain of a decided moderation: the auditor's grade and the moderator's (the
    same grade when the moderator agreed): what calibration reads."""

    __tablename__ = "moderation_domains"
    moderation_id: Mapped[int] = mapped_column(ForeignKey("moderations.id"), primary_key=True)
    domain: Mapped[str] = mapped_column(String(64), primary_key=True)
    auditor_grade: Mapped[str] = mapped_column(String(32))
    moderator_grade: Mapped[str] = mapped_column(String(32))
