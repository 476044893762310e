"""The persisted outbox and its sender, against the fake Bot Connector."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.outbox import OutboxSender
from bot.teams import TeamsGateway
from store.models import OutboxMessage, utcnow
from tests.fakes import User, message, personal_conversation_id
from tests.test_service import add_staff

ALICE = User.named("Alice Auditor")


def make_sender(ctx, **kwargs) -> OutboxSender:
    gateway = TeamsGateway(ctx.settings)
    kwargs.setdefault("base_backoff", 0.05)
    kwargs.setdefault("poll_seconds", 0.05)
    kwargs.setdefault("clock", ctx.clock)
    return OutboxSender(ctx.outbox, ctx.directory, gateway, rng=random.Random(1), **kwargs)


async def known_chat(ctx, fc, user: User = ALICE, staff_id: str = "A1") -> str:
    """A staff member who has already talked to the bot (so a 1:1 reference exists)."""
    await add_staff(ctx, staff_id, user, ["team_manager"], team=f"Team {staff_id}")
    msg = message("hi", user=user, service_url=fc.url)
    from botbuilder.schema import Activity

    from bot.teams import to_incoming

    incoming = to_incoming(Activity().deserialize(msg))
    await ctx.directory.save_conversation(
        conversation_id=incoming.conversation_id, kind="personal", service_url=fc.url,
        tenant_id=incoming.tenant_id, reference=incoming.reference,
        teams_user_id=user.id, aad_object_id=user.aad_object_id)
    return incoming.conversation_id


async def rows(ctx) -> list[OutboxMessage]:
    async with ctx.sessions() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_message_to_staff_with_a_chat_is_delivered(ctx, fake_connector) -> None:
    conv = await known_chat(ctx, fake_connector)
    await ctx.outbox.queue(staff_id="A1", message="Your audit is ready")
    sender = make_sender(ctx)
    assert await sender.drain_once() == 1
    assert fake_connector.texts(conv) == ["Your audit is ready"]
    [row] = await rows(ctx)
    assert row.status == "sent" and row.sent_conversation_id == conv and row.attempts == 1


async def test_cards_are_sent_as_adaptive_card_attachments(ctx, fake_connector) -> None:
    conv = await known_chat(ctx, fake_connector)
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "x"}]}
    await ctx.outbox.queue(staff_id="A1", message=card)
    await make_sender(ctx).drain_once()
    assert fake_connector.cards(conv) == [card]


async def test_first_message_creates_the_one_to_one_chat(ctx, fake_connector) -> None:
    await known_chat(ctx, fake_connector)  # gives the service URL, tenant and bot id
    bob = User.named("Bob Manager")
    fake_connector.add_users(bob)
    await add_staff(ctx, "B1", bob, ["service_manager"], team="Team B")
    await ctx.outbox.queue(staff_id="B1", message="Escalation")
    await make_sender(ctx).drain_once()
    assert len(fake_connector.created) == 1
    assert fake_connector.created[0]["members"][0]["id"] == bob.id
    conv_id = (await rows(ctx))[0].sent_conversation_id
    assert fake_connector.texts(conv_id) == ["Escalation"]
    # the chat is remembered: the next message reuses it without creating another
    await ctx.outbox.queue(staff_id="B1", message="Second")
    await make_sender(ctx).drain_once()
    assert len(fake_connector.created) == 1
    assert fake_connector.texts(conv_id) == ["Escalation", "Second"]


async def test_a_message_for_unlinked_staff_is_held_then_sent_once_they_are_linked(
        ctx, fake_connector) -> None:
    # Issue 12: held (not failed, as before) until the person is linked, then sent.
    await known_chat(ctx, fake_connector)  # the bot is reachable at all
    user = User.named("Una Linked")
    fake_connector.add_users(user)
    await add_staff(ctx, "U1", None, ["team_manager"], email=user.email, team="Team U")
    for n in range(3):
        await ctx.outbox.queue(staff_id="U1", message=f"hello {n}")
    sender = make_sender(ctx)
    while await sender.drain_once():  # one at a time: each waits for the one before it
        pass
    assert [(r.status, r.attempts) for r in await rows(ctx)] == [("held", 0)] * 3
    assert "not linked to a Teams user yet" in (await rows(ctx))[0].last_error
    status = await ctx.outbox.status()
    assert (status.held, status.failed, status.pending) == (3, 0, 0)
    assert await ctx.outbox.held_by_staff() == {"U1": 3}
    assert await sender.drain_once() == 0  # held rows are not claimed again and again

    report = await ctx.directory.link_members([(user.id, user.aad_object_id, user.email)],
                                              actor="test")
    assert report.linked == ["U1"] and report.released == 3
    while await sender.drain_once():
        pass
    done = await rows(ctx)
    assert [r.status for r in done] == ["sent"] * 3
    assert fake_connector.texts(done[0].sent_conversation_id) == [f"hello {n}" for n in range(3)]


async def test_a_link_while_a_message_is_being_held_never_strands_it(ctx, fake_connector) -> None:
    """The sender saw no link, then the link committed before the hold: not held after all."""
    await known_chat(ctx, fake_connector)
    user = User.named("Race Person")
    fake_connector.add_users(user)
    await add_staff(ctx, "R1", None, ["team_manager"], email=user.email, team="Team R")
    await ctx.outbox.queue(staff_id="R1", message="for you")
    [claimed] = await ctx.outbox.claim(utcnow(), limit=10)
    await ctx.directory.link_members([(user.id, user.aad_object_id, user.email)], actor="test")
    assert await ctx.outbox.hold(claimed.id, "R1") is False
    [row] = await rows(ctx)
    assert row.status == "pending"
    await make_sender(ctx).drain_once()
    assert (await rows(ctx))[0].status == "sent"


async def test_a_message_to_an_unknown_conversation_still_fails(ctx, fake_connector) -> None:
    await ctx.outbox.queue(conversation_id="19:nowhere@thread.tacv2", message="x")
    await make_sender(ctx).drain_once()
    [row] = await rows(ctx)
    assert row.status == "failed" and "unknown conversation" in row.last_error


async def test_dedupe_key_queues_once(ctx, fake_connector) -> None:
    await known_chat(ctx, fake_connector)
    first = await ctx.outbox.queue(staff_id="A1", message="x", dedupe_key="alloc:2026-12:A1")
    second = await ctx.outbox.queue(staff_id="A1", message="x", dedupe_key="alloc:2026-12:A1")
    assert first is not None and second is None
    assert len(await rows(ctx)) == 1


@pytest.mark.parametrize("status", [429, 412, 502, 503, 504])
async def test_retryable_statuses_are_retried_and_delivered_once(ctx, fake_connector, status) -> None:
    conv = await known_chat(ctx, fake_connector)
    fake_connector.fail_next(status, times=2, match="send_to_conversation")
    await ctx.outbox.queue(staff_id="A1", message="persist")
    sender = make_sender(ctx)
    for _ in range(60):
        await sender.drain_once()
        if fake_connector.texts(conv):
            break
        await asyncio.sleep(0.05)
    [row] = await rows(ctx)
    assert fake_connector.texts(conv) == ["persist"], (row.status, row.attempts, row.last_error)
    assert row.status == "sent" and row.attempts == 3
    assert sender.stats.retried == 2


async def test_retry_after_is_honoured(ctx, fake_connector) -> None:
    await known_chat(ctx, fake_connector)
    fake_connector.fail_next(429, retry_after=30, match="send_to_conversation")
    await ctx.outbox.queue(staff_id="A1", message="later")
    before = utcnow()
    await make_sender(ctx).drain_once()
    [row] = await rows(ctx)
    assert row.status == "pending" and "429" in row.last_error
    assert row.next_attempt_at >= before + timedelta(seconds=29)


async def test_non_retryable_errors_fail_at_once(ctx, fake_connector) -> None:
    await known_chat(ctx, fake_connector)
    fake_connector.fail_next(403, match="send_to_conversation")
    await ctx.outbox.queue(staff_id="A1", message="no")
    await make_sender(ctx).drain_once()
    [row] = await rows(ctx)
    assert row.status == "failed" and row.last_error.startswith("refused: HTTP 403")
    assert row.attempts == 1


async def test_gives_up_after_a_bounded_number_of_tries(ctx, fake_connector) -> None:
    await known_chat(ctx, fake_connector)
    fake_connector.fail_next(503, times=100, match="send_to_conversation")
    await ctx.outbox.queue(staff_id="A1", message="doomed")
    sender = make_sender(ctx, max_attempts=3, base_backoff=0.01)
    for _ in range(50):
        await sender.drain_once()
        if (await rows(ctx))[0].status == "failed":
            break
        await asyncio.sleep(0.03)
    [row] = await rows(ctx)
    assert row.status == "failed" and row.attempts == 3
    assert "gave up after 3 attempt(s): HTTP 503" in row.last_error


async def test_a_429_storm_loses_nothing_and_duplicates_nothing(ctx, fake_connector) -> None:
    users = [User.named(f"Auditor {i}") for i in range(12)]
    await known_chat(ctx, fake_connector)
    for i, user in enumerate(users):
        fake_connector.add_users(user)
        await add_staff(ctx, f"S{i}", user, ["team_manager"], team=f"Team {i}")
    for i in range(12):
        for n in range(3):
            await ctx.outbox.queue(staff_id=f"S{i}", message=f"message {n} for S{i}")
    fake_connector.fail_randomly({429: 0.4, 503: 0.05}, seed=7, retry_after=0.05)
    sender = make_sender(ctx, max_attempts=30, base_backoff=0.02, max_backoff=0.2)
    for _ in range(400):
        await sender.drain_once()
        st = await ctx.outbox.status()
        if st.pending == 0 and st.sending == 0:
            break
        await asyncio.sleep(0.02)
    st = await ctx.outbox.status()
    assert (st.sent, st.failed, st.pending) == (36, 0, 0)
    assert fake_connector.duplicates() == []
    assert sender.stats.throttled > 0
    for i in range(12):
        conv_id = next(r.sent_conversation_id for r in await rows(ctx) if r.staff_id == f"S{i}")
        assert fake_connector.texts(conv_id) == [f"message {n} for S{i}" for n in range(3)]


async def test_per_conversation_limits_are_kept(ctx, fake_connector) -> None:
    conv = await known_chat(ctx, fake_connector)
    fake_connector.enforce_limits()
    for n in range(16):
        await ctx.outbox.queue(staff_id="A1", message=f"n{n}")
    sender = make_sender(ctx)
    while (await ctx.outbox.status()).pending:
        await sender.drain_once()
    assert fake_connector.limit_violations == 0
    assert fake_connector.texts(conv) == [f"n{n}" for n in range(16)]


async def test_resumes_pending_and_abandoned_messages_after_a_restart(ctx, fake_connector) -> None:
    conv = await known_chat(ctx, fake_connector)
    for n in range(5):
        await ctx.outbox.queue(staff_id="A1", message=f"m{n}")
    # a previous process claimed the first and died mid-send: its lease is now stale
    claimed = await ctx.outbox.claim(utcnow(), limit=10, lease_seconds=60)
    assert [c.message for c in claimed] == ["m0"]  # later ones wait behind it
    async with ctx.sessions.begin() as session:
        await session.execute(update(OutboxMessage).where(OutboxMessage.status == "sending")
                              .values(lease_until=utcnow() - timedelta(seconds=1)))
    # a new sender (as after a restart) delivers all five, in order, once each
    sender = make_sender(ctx)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    await fake_connector.wait_for(5, timeout=10)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert fake_connector.texts(conv) == [f"m{n}" for n in range(5)]
    assert fake_connector.duplicates() == []


async def test_a_live_lease_is_not_taken_by_another_sender(ctx, fake_connector) -> None:
    await known_chat(ctx, fake_connector)
    await ctx.outbox.queue(staff_id="A1", message="mine")
    first = await ctx.outbox.claim(utcnow(), limit=10, lease_seconds=60)
    second = await ctx.outbox.claim(utcnow(), limit=10, lease_seconds=60)
    assert len(first) == 1 and second == []


async def test_the_running_service_delivers_what_another_process_queued(service) -> None:
    from qabot.app import build_services

    fc = service.connector
    await known_chat(service.ctx, fc)
    other = build_services(service.ctx.settings, service.ctx.framework)  # e.g. a CLI process
    try:
        await other.outbox.queue(staff_id="A1", message="from the CLI")
    finally:
        await other.close()
    await fc.wait_for(1, timeout=5)
    assert fc.texts(personal_conversation_id(ALICE)) == ["from the CLI"]


async def test_a_message_queued_in_a_rolled_back_change_is_not_kept(ctx, fake_connector) -> None:
    from store.outbox import Message, queue_in

    await known_chat(ctx, fake_connector)
    with pytest.raises(RuntimeError):
        async with ctx.sessions.begin() as session:
            assert await queue_in(session, Message("one", staff_id="A1", dedupe_key="k1"),
                                  at=utcnow())
            assert await queue_in(session, Message("two", staff_id="A1"), at=utcnow())
            raise RuntimeError("the change that queued them failed")
    assert await rows(ctx) == []


async def test_two_processes_queueing_the_same_key_queue_it_once(ctx, fake_connector) -> None:
    from qabot.app import build_services

    await known_chat(ctx, fake_connector)
    other = build_services(ctx.settings, ctx.framework)
    try:
        ids = await asyncio.gather(
            ctx.outbox.queue(staff_id="A1", message="x", dedupe_key="same"),
            other.outbox.queue(staff_id="A1", message="x", dedupe_key="same"))
    finally:
        await other.close()
    assert sorted(i is None for i in ids) == [False, True]
    assert len(await rows(ctx)) == 1
