"""Linking staff to Teams users from rosters, and channel posts through the outbox."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from store.models import OutboxMessage, Staff
from tests.fakes import Team, User, message, personal_install, team_install
from tests.test_service import add_staff

QA = User.named("Quinn Lead")
TM = User.named("Tara Manager")
SW = User.named("Sol Worker")


async def staff_row(ctx, staff_id: str) -> Staff:
    async with ctx.sessions() as session:
        row = await session.get(Staff, staff_id)
        assert row is not None
        return row


async def test_team_install_welcomes_once_links_roster_and_reports_missing(service) -> None:
    fc, ctx = service.connector, service.ctx
    team = Team.named("Children's QA")
    # staff known by email only (not yet linked); the roster has a different case for one
    await add_staff(ctx, "Q1", None, ["qa_lead"], email=QA.email, team="QA")
    await add_staff(ctx, "T1", None, ["team_manager"], email=TM.email.upper(), team="Team 1")
    await add_staff(ctx, "X9", None, ["social_worker"], email="nobody@council.example", team="Team 2")
    roster = [QA, TM] + [User.named(f"Member {i}") for i in range(5)]
    fc.add_team(team, members=roster)
    fc.page_size_limits = (1, 2)  # force several pages

    for activity in team_install(team, service_url=fc.url, user=QA):
        assert (await service.post(activity)).status in (200, 201)

    channel_texts = fc.texts(team.id)
    assert len(channel_texts) == 1 and "only ever post totals" in channel_texts[0]
    assert (await staff_row(ctx, "Q1")).teams_user_id == QA.id
    assert (await staff_row(ctx, "T1")).teams_user_id == TM.id
    assert (await staff_row(ctx, "X9")).teams_user_id is None
    paged = [r for r in fc.requests if r.operation and "paged" in r.operation.lower()]
    assert len(paged) >= 4  # 7 members, 2 a page
    # the QA lead is told, 1:1, who could not be linked (once, despite two install events)
    await fc.wait_for(lambda f: len(f.texts()) >= 2, timeout=5)
    report = [t for t in fc.texts() if t.startswith("Teams roster check")]
    assert len(report) == 1 and "X9" in report[0] and "Linked 2 staff" in report[0]
    assert report[0] not in channel_texts


async def test_first_personal_contact_links_by_upn_and_welcomes_by_role(service) -> None:
    fc, ctx = service.connector, service.ctx
    await add_staff(ctx, "S1", None, ["social_worker"], email=SW.upn or SW.email, team="Team 1")
    fc.add_users(SW)
    for activity in personal_install(user=SW, service_url=fc.url):
        await service.post(activity)
    texts = fc.texts()
    assert len(texts) == 1
    # issue 9: a social worker is now promised the findings, Part B and their actions
    assert "Social worker" in texts[0] and "findings of audits of cases you hold" in texts[0]
    assert (await staff_row(ctx, "S1")).teams_user_id == SW.id


async def test_teams_sync_command_links_staff_added_after_install(service, monkeypatch) -> None:
    from flows.roster import sync_all

    fc, ctx = service.connector, service.ctx
    team = Team.named("Children's QA")
    fc.add_team(team, members=[QA, TM])
    for activity in team_install(team, service_url=fc.url, user=QA):
        await service.post(activity)
    await add_staff(ctx, "T1", None, ["team_manager"], email=TM.email, team="Team 1")
    results = await sync_all(ctx)
    assert [r.linked for _, r in results] == [["T1"]]
    assert (await staff_row(ctx, "T1")).teams_user_id == TM.id


async def test_help_in_a_channel_needs_a_mention_and_is_answered_there(service) -> None:
    fc, ctx = service.connector, service.ctx
    team = Team.named("Children's QA")
    await add_staff(ctx, "T1", TM, ["team_manager"])
    await service.post(message("help", user=TM, service_url=fc.url, conversation_type="channel",
                               team=team, conversation_id=team.id))
    [text] = fc.texts(team.id)
    assert "Team manager" in text


async def test_a_channel_post_can_be_queued_and_is_delivered(service) -> None:
    fc, ctx = service.connector, service.ctx
    team = Team.named("Leadership")
    fc.add_team(team)
    for activity in team_install(team, service_url=fc.url):
        await service.post(activity)
    await ctx.outbox.queue(conversation_id=team.id, message="Monthly digest: 42 audits completed")
    ctx.outbox_queued()
    await fc.wait_for(lambda f: len(f.texts(team.id)) >= 2, timeout=5)
    assert fc.texts(team.id)[-1] == "Monthly digest: 42 audits completed"
    for _ in range(50):
        async with ctx.sessions() as session:
            rows = (await session.scalars(select(OutboxMessage))).all()
        if rows[0].status == "sent":
            break
        await asyncio.sleep(0.05)
    assert [(r.status, r.sent_conversation_id) for r in rows] == [("sent", team.id)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_unknown_conversation_fails_with_reason(service) -> None:
    await service.ctx.outbox.queue(conversation_id="19:gone@thread.tacv2", message="x")
    service.ctx.outbox_queued()
    for _ in range(50):
        st = await service.ctx.outbox.status()
        if st.failed:
            break
        await asyncio.sleep(0.05)
    assert "unknown conversation" in (st.failures[0][2] or "")


async def test_install_events_arriving_together_welcome_once(service) -> None:
    fc, ctx = service.connector, service.ctx
    fc.add_users(SW)
    await asyncio.gather(*(service.post(a) for a in personal_install(user=SW, service_url=fc.url)))
    assert len(fc.texts()) == 1
    # the flag itself is claimed atomically, however many ask at once
    await ctx.directory.save_conversation(conversation_id="19:x", kind="channel",
                                          service_url=fc.url, tenant_id="t", reference={})
    results = await asyncio.gather(*(ctx.directory.mark_welcomed("19:x") for _ in range(6)))
    assert sorted(results) == [False] * 5 + [True]


async def test_case_level_commands_are_refused_outside_one_to_one_chats(service) -> None:
    fc, ctx = service.connector, service.ctx
    team = Team.named("Children's QA")
    await add_staff(ctx, "Q1", QA, ["qa_lead"])
    for text in ("delegate C-000123 to tara.manager@council.example", "status"):
        await service.post(message(text, user=QA, service_url=fc.url, conversation_type="channel",
                                   team=team, conversation_id=team.id))
    replies = fc.texts(team.id)
    assert len(replies) == 2
    assert all(r.startswith("Please message me 1:1") for r in replies)
    assert not any("C-000123" in r for r in replies) and fc.cards(team.id) == []
