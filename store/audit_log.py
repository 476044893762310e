"""The append-only audit log: every state change writes here in the same transaction.

``at`` is the caller's clock (a job replayed with ``--at`` logs the day it acted for).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import AuditLogEntry


def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLogEntry:
    """Add one log entry to the session; it commits (or rolls back) with the change."""
    entry = AuditLogEntry(
        at=at,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        before=before,
        after=after,
    )
    session.add(entry)
    return entry


async def history(session: AsyncSession, entity: str, entity_id: str) -> list[AuditLogEntry]:
    """Every logged change to one record, oldest first."""
    rows = await session.scalars(
        select(AuditLogEntry)
        .where(AuditLogEntry.entity == entity, AuditLogEntry.entity_id == entity_id)
        .order_by(AuditLogEntry.id)
    )
    return list(rows)
