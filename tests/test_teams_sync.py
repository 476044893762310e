"""Linking staff to Teams users from rosters, and channel posts through the outbox."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from store.models import OutboxMessage, Staff
from tests.fakes import (
    Team,
    User,
    message,
    personal_conversation_id,
    personal_install,
    team_install,
)
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


# ---------------------------------------------------------------------------------------------
# Staff reachable (issue 12): chats opened at roster sync, linked on the spot, held until linked


async def _council_of(ctx, n: int) -> tuple[list[User], User]:
    """n team managers (one team each) with a case each, and a QA lead: none linked yet."""
    from datetime import date

    from store.models import Case
    from store.models import Team as TeamRow

    managers = [User.named(f"Manager {chr(65 + i)}") for i in range(n)]
    lead = User.named("Quinn Lead")
    async with ctx.sessions.begin() as session:
        rows = [TeamRow(name=f"Team {i}") for i in range(n)] + [TeamRow(name="QA")]
        session.add_all(rows)
        await session.flush()
        for i, user in enumerate(managers):
            session.add(Staff(staff_id=f"M{i}", name=user.name, email=user.email,
                              roles=["team_manager"], team_id=rows[i].id))
            session.add(Case(case_ref=f"C-10{i:04d}", team_id=rows[i].id,
                             area="help_and_protection", opened_on=date(2025, 1, 6)))
        session.add(Staff(staff_id="Q1", name=lead.name, email=lead.email, roles=["qa_lead"],
                          team_id=rows[-1].id))
    return managers, lead


async def _until(predicate, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_fan_out_after_roster_sync_creates_no_new_chats(service) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from scheduler.jobs import run_job

    fc, ctx = service.connector, service.ctx
    managers, lead = await _council_of(ctx, 8)
    team = Team.named("Children's Services")
    fc.add_team(team, members=[lead, *managers])
    for activity in team_install(team, service_url=fc.url, user=lead):
        await service.post(activity)

    async def all_chats_open() -> bool:
        return not await ctx.directory.staff_without_chat() and len(fc.created) == 9

    await _until(all_chats_open)  # one create per linked person, ahead of allocation day
    await fc.wait_for(lambda f: any(t.startswith("Teams roster check") for t in f.texts()))
    assert sorted(c["members"][0]["id"] for c in fc.created) == sorted(
        u.id for u in [lead, *managers])
    fc.reset()

    result = await run_job(ctx, "allocation", datetime(2026, 12, 1, 9, tzinfo=ZoneInfo(
        "Europe/London")))
    assert "allocated 8 audit(s)" in result and "0 not reachable" in result
    await fc.wait_for(lambda f: len(f.cards()) >= 9, timeout=10)  # 8 allocations + 1 summary
    assert fc.created == []  # the fan-out opened no chat: one call per person
    sends = [r for r in fc.requests if r.operation == "send_to_conversation"]
    assert len(sends) == 9 and fc.duplicates() == []


async def test_a_person_who_messages_the_bot_is_linked_and_gets_what_was_held(service) -> None:
    fc, ctx = service.connector, service.ctx
    (manager,), lead = await _council_of(ctx, 1)
    fc.add_users(manager, lead)
    # The QA lead talks first (so the bot knows the service URL) and is linked on the spot.
    await service.post(message("help", user=lead, service_url=fc.url))
    assert (await staff_row(ctx, "Q1")).teams_user_id == lead.id
    await ctx.outbox.queue(staff_id="M0", message="Your case audit for December")
    ctx.outbox_queued()

    async def held() -> bool:
        return (await ctx.outbox.status()).held == 1

    await _until(held)
    assert fc.texts(personal_conversation_id(manager)) == []

    await service.post(message("hi", user=manager, service_url=fc.url))
    assert (await staff_row(ctx, "M0")).teams_user_id == manager.id
    await fc.wait_for(lambda f: "Your case audit for December" in f.texts(
        personal_conversation_id(manager)), timeout=5)
    st = await ctx.outbox.status()
    assert (st.held, st.failed) == (0, 0)
    # the reply to "hi" is not the "I do not recognise you" one: they are known now
    assert not any("do not recognise you" in t for t in fc.texts(personal_conversation_id(manager)))


async def test_teams_sync_releases_what_was_held_for_the_people_it_links(service) -> None:
    from flows.roster import sync_all

    fc, ctx = service.connector, service.ctx
    (manager,), lead = await _council_of(ctx, 1)
    team = Team.named("Children's Services")
    fc.add_team(team, members=[lead])  # the manager is not in the team yet
    for activity in team_install(team, service_url=fc.url, user=lead):
        await service.post(activity)
    await ctx.outbox.queue(staff_id="M0", message="held for M0")
    ctx.outbox_queued()

    async def held() -> bool:
        return (await ctx.outbox.status()).held == 1

    await _until(held)
    fc.add_team(team, members=[lead, manager])  # added to the team later
    [(_, report)] = await sync_all(ctx)
    assert report.linked == ["M0"] and report.released == 1
    await fc.wait_for(lambda f: "held for M0" in f.texts(personal_conversation_id(manager)),
                      timeout=5)


async def test_staff_unlinked_names_the_teams_and_spots_a_wrong_domain(service) -> None:
    from flows.roster import unlinked_report

    fc, ctx = service.connector, service.ctx
    team = Team.named("Children's Services")
    await add_staff(ctx, "Q1", None, ["qa_lead"], email=QA.email, team="QA")
    await add_staff(ctx, "T1", None, ["team_manager"], email="tara.manager@counci1.example",
                    team="Team 1")  # a typo in the domain
    await add_staff(ctx, "X9", None, ["social_worker"], email="xavi@council.example",
                    team="Team 2")  # not in the team
    fc.add_team(team, members=[QA, TM])
    for activity in team_install(team, service_url=fc.url, user=QA):
        await service.post(activity)
    lines = await unlinked_report(ctx)
    text = "\n".join(lines)
    assert lines[0] == "2 of 3 active people cannot be reached in Teams (not linked to a Teams account)."
    assert "The bot is installed in: Children's Services." in text
    t1 = lines.index(next(line for line in lines if line.startswith("T1 ")))
    assert "its domain (counci1.example) is not the domain of anyone linked so far " \
           "(council.example)" in lines[t1 + 1]
    x9 = lines.index(next(line for line in lines if line.startswith("X9 ")))
    assert "no member of the teams the bot is in has this email" in lines[x9 + 1]
    assert lines[-1].startswith("How to fix:")
