"""Audit actions as stored (SPEC R8): their states, closing, extensions, and chase state.

Persistence only, inside the caller's transaction. Each change is a conditional UPDATE on
the state it expects (so a double click or two people at once change it once) and writes
its audit-log row; who may make it is the flow's decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from qa.chase import ACTION_OPEN_STATES
from qa.errors import Code, NotFound
from store.audit_log import record
from store.models import Audit, AuditAction, Case

__all__ = ["ActionRow", "action_row", "ask_extension", "close", "decide_extension",
           "open_actions", "save_chase"]


@dataclass(frozen=True)
class ActionRow:
    """An action with what its messages need about the audit it came from."""

    id: int
    audit_id: int
    case_ref: str
    case_team_id: int
    seq: int
    what: str
    owner_id: str
    due_on: date
    first_due_on: date | None
    priority: str
    status: str
    created_at: datetime
    done_at: datetime | None
    done_by: str | None
    asked_due_on: date | None
    asked_reason: str | None
    asked_by: str | None
    asked_at: datetime | None
    reminded_on: date | None
    step: int
    stepped_on: date | None


_COLUMNS = (AuditAction.id, AuditAction.audit_id, Audit.case_ref, Case.team_id, AuditAction.seq,
            AuditAction.what, AuditAction.owner_id, AuditAction.due_on, AuditAction.first_due_on,
            AuditAction.priority, AuditAction.status, AuditAction.created_at,
            AuditAction.done_at, AuditAction.done_by, AuditAction.asked_due_on,
            AuditAction.asked_reason, AuditAction.asked_by, AuditAction.asked_at,
            AuditAction.reminded_on,
            AuditAction.step, AuditAction.stepped_on)


def _query() -> Any:
    return (select(*_COLUMNS).join(Audit, Audit.id == AuditAction.audit_id)
            .join(Case, Case.case_ref == Audit.case_ref))


async def action_row(session: AsyncSession, action_id: int) -> ActionRow:
    row = (await session.execute(_query().where(AuditAction.id == action_id))).one_or_none()
    if row is None:
        raise NotFound(Code.ACTION_NOT_FOUND)
    return ActionRow(*row)


async def open_actions(session: AsyncSession, *, owners: Iterable[str] | None = None,
                       audit_ids: Iterable[int] | None = None) -> list[ActionRow]:
    """Actions still owed (open, extension asked for, extended), by due date."""
    query = _query().where(AuditAction.status.in_(sorted(ACTION_OPEN_STATES)))
    if owners is not None:
        query = query.where(AuditAction.owner_id.in_(sorted(set(owners))))
    if audit_ids is not None:
        query = query.where(AuditAction.audit_id.in_(sorted(set(audit_ids))))
    rows = await session.execute(query.order_by(AuditAction.due_on, AuditAction.id))
    return [ActionRow(*r) for r in rows.all()]


async def close(session: AsyncSession, action_id: int, *, status: str, by: str, note: str,
                at: datetime) -> bool:
    """Mark an owed action done (or cancelled); False when it was not owed any more."""
    result = await session.execute(
        update(AuditAction)
        .where(AuditAction.id == action_id, AuditAction.status.in_(sorted(ACTION_OPEN_STATES)))
        .values(status=status, done_at=at, done_by=by, done_note=note)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record(session, at=at, actor=by, action=f"action.{status}", entity="audit_action",
           entity_id=str(action_id), after={"status": status, "note_chars": len(note)})
    return True


async def ask_extension(session: AsyncSession, action_id: int, *, by: str, due_on: date,
                        reason: str, at: datetime) -> bool:
    """Ask for more time; False when the action is done, cancelled or already asked about."""
    result = await session.execute(
        update(AuditAction)
        .where(AuditAction.id == action_id, AuditAction.status.in_(("open", "extended")))
        .values(status="extension_requested", asked_due_on=due_on, asked_reason=reason,
                asked_by=by, asked_at=at, decided_by=None, decided_at=None, decision_note=None)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record(session, at=at, actor=by, action="action.extension_requested", entity="audit_action",
           entity_id=str(action_id), after={"asked_due_on": due_on.isoformat()})
    return True


async def decide_extension(session: AsyncSession, action: ActionRow, *, by: str, approve: bool,
                           note: str, at: datetime) -> bool:
    """Approve (the due date moves, the chase starts again) or refuse an extension asked
    for; False when there is no request waiting any more."""
    values: dict[str, Any] = {"decided_by": by, "decided_at": at, "decision_note": note}
    if approve:
        assert action.asked_due_on is not None
        values |= {"status": "extended", "due_on": action.asked_due_on, "reminded_on": None,
                   "step": -1, "stepped_on": None}
    else:
        values |= {"status": "open"}
    result = await session.execute(
        update(AuditAction)
        .where(AuditAction.id == action.id, AuditAction.status == "extension_requested")
        .values(**values).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    after: dict[str, Any] = {"approved": approve}
    if approve:
        after |= {"due_on": action.asked_due_on.isoformat() if action.asked_due_on else None}
    record(session, at=at, actor=by, action="action.extension_decided", entity="audit_action",
           entity_id=str(action.id), before={"due_on": action.due_on.isoformat()}, after=after)
    return True


async def save_chase(session: AsyncSession, model: Any, rows: Sequence[dict[str, Any]], *,
                     actor: str, at: datetime, entity: str) -> None:
    """Record today's reminders and steps for many chased items (one executemany) and log
    each step taken. ``rows``: ``{"id", "reminded_on"?, "step"?, "stepped_on"?, "told"?}``."""
    if not rows:
        return
    for row in rows:
        values = {k: row[k] for k in ("reminded_on", "step", "stepped_on") if k in row}
        await session.execute(update(model).where(model.id == row["id"]).values(**values)
                              .execution_options(synchronize_session=False))
        if "step" in row:
            record(session, at=at, actor=actor, action=f"{entity}.escalated", entity=entity,
                   entity_id=str(row["id"]), after={"step": row["step"], "told": row.get("told")})
        elif "reminded_on" in row:
            record(session, at=at, actor=actor, action=f"{entity}.reminded", entity=entity,
                   entity_id=str(row["id"]), after={"told": row.get("told")})


async def audit_case_refs(session: AsyncSession, audit_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(audit_ids))
    if not ids:
        return {}
    return dict((await session.execute(select(Audit.id, Audit.case_ref)
                                       .where(Audit.id.in_(ids)))).all())
