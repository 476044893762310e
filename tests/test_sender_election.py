"""One outbox sender for the tenant, whatever the number of instances (issue 11, items 9-10).

The store's claims carry their owner and every settle checks it; the sender lock (a
PostgreSQL advisory lock, a file lock on SQLite) elects one sender; a stopped sender's rows
are taken back at once. Two senders here are two complete sets of services (own engine,
own lock, own rate limiter), as two instances would be.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.outbox import OutboxSender
from bot.teams import TeamsGateway
from qabot.app import build_services
from store.models import OutboxMessage, utcnow
from store.sender_lock import SenderLock
from tests.fakes import User
from tests.fakes.connector import max_in_window
from tests.test_outbox import known_chat
from tests.test_service import add_staff


async def _rows(ctx: Any) -> list[OutboxMessage]:
    async with ctx.sessions() as s:
        return list(await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


# ---------------------------------------------------------------------------- the store


async def test_a_claim_is_settled_only_by_its_owner(ctx: Any, fake_connector: Any) -> None:
    await known_chat(ctx, fake_connector)
    message_id = await ctx.outbox.queue(staff_id="A1", message="once")
    [claimed] = await ctx.outbox.claim(utcnow(), 10, owner="a/1")
    assert claimed.id == message_id
    assert not await ctx.outbox.start_send(message_id, owner="b/1", now=utcnow())
    assert not await ctx.outbox.mark_sent(message_id, "conv", "act", owner="b/1")
    assert not await ctx.outbox.mark_retry(message_id, utcnow(), "x", owner="b/1")
    assert not await ctx.outbox.mark_failed(message_id, "x", owner="b/1")
    [row] = await _rows(ctx)
    assert row.status == "sending" and row.claimed_by == "a/1"
    assert await ctx.outbox.start_send(message_id, owner="a/1", now=utcnow())
    assert await ctx.outbox.mark_sent(message_id, "conv", "act", owner="a/1")
    [row] = await _rows(ctx)
    assert row.status == "sent" and row.claimed_by is None and row.attempts == 1


async def test_take_over_releases_every_foreign_claim_at_once_and_names_those_in_flight(
        ctx: Any, fake_connector: Any) -> None:
    await known_chat(ctx, fake_connector)
    for n in range(3):
        await add_staff(ctx, f"R{n}", None, ["team_manager"], team=f"Team R{n}")
        await ctx.outbox.queue(staff_id=f"R{n}", message=f"m{n}")
    claimed = await ctx.outbox.claim(utcnow(), 10, owner="dead/1", lease_seconds=120)
    assert len(claimed) == 3
    assert await ctx.outbox.start_send(claimed[1].id, owner="dead/1", now=utcnow())
    took = await ctx.outbox.take_over("alive/1")
    assert took.released == 3 and took.in_flight == (claimed[1].id,)
    rows = await _rows(ctx)
    assert {r.status for r in rows} == {"pending"}
    assert all(r.claimed_by is None and r.send_started_at is None for r in rows)
    # the lease (120 s) did not have to run out: the new sender claims them now
    again = await ctx.outbox.claim(utcnow(), 10, owner="alive/1")
    assert [c.id for c in again] == [c.id for c in claimed]
    # and the dead sender, were it to wake, can settle none of them
    assert not await ctx.outbox.mark_sent(claimed[0].id, "c", "a", owner="dead/1")


async def test_take_over_leaves_the_new_owners_own_claims(ctx: Any, fake_connector: Any) -> None:
    await known_chat(ctx, fake_connector)
    await ctx.outbox.queue(staff_id="A1", message="mine")
    await ctx.outbox.claim(utcnow(), 10, owner="me/2")
    took = await ctx.outbox.take_over("me/2")
    assert took.released == 0
    assert (await _rows(ctx))[0].status == "sending"


# ---------------------------------------------------------------------------- the lock


async def test_one_sender_lock_per_database(ctx: Any) -> None:
    other = build_services(ctx.settings, ctx.framework)
    first, second = SenderLock(ctx.engine), SenderLock(other.engine)
    try:
        assert await first.acquire()
        assert not await second.acquire()
        assert await first.check()
        await first.release()
        assert await second.acquire()
        assert not await first.acquire()
    finally:
        await first.release()
        await second.release()
        await other.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_lost_lock_connection_deposes_the_sender(ctx: Any) -> None:
    other = build_services(ctx.settings, ctx.framework)
    first, second = SenderLock(ctx.engine), SenderLock(other.engine)
    try:
        assert await first.acquire()
        # What PostgreSQL does when the holder's process dies or its connection drops.
        async with other.engine.begin() as conn:
            await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"))
        assert await second.acquire()
        assert not await first.check() and not first.held
    finally:
        await first.release()
        await second.release()
        await other.close()


# ---------------------------------------------------------------------------- two senders


def _instance(ctx: Any, tenant_rate: float) -> tuple[Any, OutboxSender]:
    """A second complete instance: its own engine, lock, limiter and gateway."""
    services = build_services(ctx.settings, ctx.framework)
    sender = OutboxSender(services.outbox, services.directory, TeamsGateway(services.settings),
                          tenant_rate=tenant_rate, base_backoff=0.05, poll_seconds=0.05,
                          clock=services.clock, rng=random.Random(len(str(id(services)))),
                          lock=SenderLock(services.engine), standby_poll=0.2)
    return services, sender


async def _fan_out(ctx: Any, fc: Any, n: int) -> list[str]:
    users = [User.named(f"Fan Out {i:03d}") for i in range(n)]
    for i, user in enumerate(users):
        await known_chat(ctx, fc, user, staff_id=f"F{i:03d}")
    async with ctx.sessions.begin() as s:
        for i in range(n):
            s.add(OutboxMessage(recipient=f"staff:F{i:03d}", staff_id=f"F{i:03d}",
                                activity={"text": f"card {i}"}, dedupe_key=f"fan:{i}",
                                status="pending", attempts=0, created_at=utcnow()))
    return [f"card {i}" for i in range(n)]


async def test_two_instances_send_each_message_once_at_one_tenant_rate_and_take_over(
        ctx: Any, fake_connector: Any) -> None:
    fc = fake_connector
    rate, n = 20.0, 80
    expected = await _fan_out(ctx, fc, n)
    fc.fail_randomly({429: 0.10, 503: 0.02}, seed=11, retry_after=0)
    (a_services, a), (b_services, b) = _instance(ctx, rate), _instance(ctx, rate)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(a.run(stop_a))
    task_b = asyncio.create_task(b.run(stop_b))
    try:
        await fc.wait_for(n // 2, timeout=30)
        leader, standby = (a, b) if a.stats.leader else (b, a)
        assert leader.stats.leader and not standby.stats.leader
        assert standby.stats.sent == 0
        # The sender stops mid fan-out, as an instance going away would (its lock goes
        # with it); the other takes over without waiting for any lease.
        stopped_at = time.monotonic()
        if leader is a:
            stop_a.set()
            await asyncio.wait_for(task_a, 10)
        else:
            stop_b.set()
            await asyncio.wait_for(task_b, 10)
        await fc.wait_for(lambda c: standby.stats.leader, timeout=10)
        took_over_after = time.monotonic() - stopped_at
        await fc.wait_for(lambda c: len({d.activity.get("text") for d in c.deliveries}) >= n,
                          timeout=60)
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.gather(task_a, task_b, return_exceptions=True)
        await a_services.close()
        await b_services.close()
    texts = [d.activity.get("text") for d in fc.deliveries]
    assert sorted(set(texts)) == sorted(expected)
    assert len(texts) == n, f"{len(texts) - n} delivered twice"
    assert took_over_after < 3.0
    accepted = [r.at for r in fc.requests if r.operation == "send_to_conversation"
                and 200 <= r.status < 300]
    # One budget across both instances. The limiter lets a second's budget go at once, so
    # a 2 s window holds two bursts, and arrival jitter on a busy machine can pull a third
    # in: 3 x rate. Two instances sending at once would reach 4 x rate.
    assert max_in_window(accepted, 2.0) <= 3 * rate
    rows = await _rows(ctx)
    fan = [r for r in rows if r.dedupe_key and r.dedupe_key.startswith("fan:")]
    assert {r.status for r in fan} == {"sent"}


async def test_a_sender_that_lost_its_claims_sends_nothing_more(ctx: Any, fake_connector: Any
                                                                ) -> None:
    fc = fake_connector
    expected = await _fan_out(ctx, fc, 6)
    services, stale = _instance(ctx, 50.0)
    try:
        claimed = await services.outbox.claim(utcnow(), 10, owner=stale.owner)
        assert len(claimed) == 6
        # Meanwhile another instance became the sender and took everything back.
        await ctx.outbox.take_over("new-sender/1")
        sent_before = len(fc.deliveries)
        for item in claimed:
            await stale._deliver(item)  # what its workers would still try
        assert len(fc.deliveries) == sent_before
        assert stale.stats.lost_claims == 6 and stale.stats.sent == 0
    finally:
        await services.close()
    assert expected  # nothing was lost: the rows wait, pending, for the new sender
    assert {r.status for r in await _rows(ctx) if r.dedupe_key} == {"pending"}


async def test_an_expired_lease_of_a_stalled_claim_is_due_again(ctx: Any, fake_connector: Any
                                                               ) -> None:
    await known_chat(ctx, fake_connector)
    await ctx.outbox.queue(staff_id="A1", message="stalled")
    await ctx.outbox.claim(utcnow() - timedelta(seconds=200), 10, owner="x/1",
                           lease_seconds=120)
    assert len(await ctx.outbox.claim(utcnow(), 10, owner="y/1")) == 1


# ---------------------------------------------------------------------------- the limiter


async def test_a_slow_call_followed_by_fast_ones_keeps_the_conversation_windows() -> None:
    from bot.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(100.0, clock=lambda: now[0])
    # One conversation, calls one at a time: the first takes 0.5 s to arrive and return,
    # the others are instant. Counted at their start, the 9th would go at 2.02 s although
    # the 1st arrived at about 0.5 s: 8 arrivals in 2 s, which Teams refuses.
    arrivals = []
    for n in range(9):
        at = await limiter.acquire("conv")
        now[0] = max(now[0], at)
        latency = 0.5 if n == 0 else 0.0
        now[0] += latency
        arrivals.append(now[0])
        limiter.completed("conv", at)
        wait = 0.0
        while True:  # what acquire would sleep for, on the fake clock
            delay = limiter._per_conversation.wait("conv", now[0])
            if delay <= 0:
                break
            now[0] += delay
            wait += delay
    assert all(arrivals[i + 8] - arrivals[i] >= 2.0 for i in range(len(arrivals) - 8))


async def test_a_failing_batch_gives_its_rows_back_at_once(ctx: Any, fake_connector: Any,
                                                           monkeypatch: Any) -> None:
    await _fan_out(ctx, fake_connector, 3)
    services, sender = _instance(ctx, 50.0)
    try:
        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the directory's database went away")

        monkeypatch.setattr(services.directory, "target_for_staff", broken)
        with pytest.raises(RuntimeError):
            await sender.drain_once()
    finally:
        await services.close()
    rows = [r for r in await _rows(ctx) if r.dedupe_key]
    assert {r.status for r in rows} == {"pending"}  # not stuck in 'sending' for 120 s
