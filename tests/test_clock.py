"""One clock: a job replayed with ``--at`` is honest all the way down.

The day it acts for is the day its records say (audit log, allocation, outbox), and what it
queues is delivered at once whatever the machine's clock says: tests and operators replay
days ahead of it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from scheduler.jobs import run_job
from store.models import AllocationRun, Audit, AuditLogEntry, OutboxMessage, utcnow
from tests.test_allocation_job import _anchor_chat, drain, load, role_ids, user_for

LONDON = ZoneInfo("Europe/London")
MARCH = datetime(2027, 3, 1, 9, 0, tzinfo=LONDON)  # Monday 1 March 2027, months ahead


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_a_replayed_future_day_is_recorded_as_that_day_and_delivered_now(
        ctx, fake_connector) -> None:
    assert utcnow() < MARCH, "the replayed day must be ahead of the machine's clock"
    c = await load(ctx, link=True)
    fake_connector.add_users(*(user_for(s.staff_id) for s in c.staff))
    await _anchor_chat(ctx, fake_connector, role_ids(c, *ctx.framework.qa_roles)[0])

    result = await run_job(ctx, "allocation", MARCH)
    assert result.startswith("2027-03: allocated ")
    async with ctx.sessions() as session:
        run = await session.scalar(select(AllocationRun))
        audits = list(await session.scalars(select(Audit)))
        logged = {e.at for e in await session.scalars(
            select(AuditLogEntry).where(AuditLogEntry.action.in_(
                ("allocation.created", "audit.allocated"))))}
        queued = list(await session.scalars(select(OutboxMessage)))
    assert run.created_at == MARCH.astimezone(UTC)
    assert {a.allocated_at for a in audits} == {MARCH.astimezone(UTC)}
    assert logged == {MARCH.astimezone(UTC)}
    assert {m.created_at for m in queued} == {MARCH.astimezone(UTC)}
    assert {m.next_attempt_at for m in queued} == {None}  # due at once

    await drain(ctx)
    async with ctx.sessions() as session:
        statuses = {m.status for m in await session.scalars(select(OutboxMessage))}
    assert statuses == {"sent"}
    assert len(fake_connector.cards()) == len(queued)
