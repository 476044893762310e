"""The fake Bot Connector and activity factories, proven against the real botbuilder SDK.

If botbuilder changes its wire format or retry behaviour, these tests fail first, before the
bot's own tests start passing for the wrong reason.
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.core.teams import TeamsActivityHandler, TeamsInfo
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import (
    Activity,
    AdaptiveCardInvokeResponse,
    AdaptiveCardInvokeValue,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
    ErrorResponseException,
)
from botbuilder.schema.teams import TeamInfo
from msrest.exceptions import ClientRequestError, HttpOperationError

from tests.fakes import (
    ADAPTIVE_CARD,
    BOT_ID,
    DEFAULT_TENANT_ID,
    FakeConnector,
    Team,
    User,
    card_action,
    make_users,
    message,
    personal_conversation_id,
    personal_install,
    submit,
    team_install,
)
from tests.fakes.fixtures import fake_connector  # noqa: F401  (fixture, until conftest exists)


class _LocalConfig:
    """Local mode (empty app id): the SDK sends no token, as with the Agents Playground."""

    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


class EchoBot(TeamsActivityHandler):
    """Tiny bot that records what arrived, so factory shapes are checked through the SDK."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        if turn_context.activity.value is not None:
            self.seen.append(f"submit:{turn_context.activity.value['verb']}")
            return
        text = TurnContext.remove_recipient_mention(turn_context.activity).strip()
        await turn_context.send_activity(f"echo: {text}")

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        action = invoke_value.action  # a plain dict: the schema types it "{object}"
        self.seen.append(f"execute:{action['verb']}:{action['data']['case']}")
        return AdaptiveCardInvokeResponse(
            status_code=200,
            type="application/vnd.microsoft.card.adaptive",
            value={"type": "AdaptiveCard", "version": "1.5", "body": []},
        )

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        self.seen.append("installed")

    async def on_teams_members_added(
        self,
        teams_members_added: list[Any],
        team_info: TeamInfo,
        turn_context: TurnContext,
    ) -> None:
        for member in teams_members_added:
            if member.id == turn_context.activity.recipient.id:
                self.seen.append(f"added:{team_info.id if team_info else 'personal'}")


@pytest.fixture
def adapter() -> CloudAdapter:
    return CloudAdapter(ConfigurationBotFrameworkAuthentication(_LocalConfig()))


@pytest.fixture
def fc(fake_connector: FakeConnector) -> FakeConnector:  # noqa: F811
    return fake_connector


async def _turn(adapter: CloudAdapter, bot: EchoBot, activity: dict[str, Any]) -> Any:
    return await adapter.process_activity("", Activity().deserialize(activity), bot.on_turn)


def _params(user: User) -> ConversationParameters:
    return ConversationParameters(
        is_group=False,
        bot=ChannelAccount(id=BOT_ID),
        members=[ChannelAccount(id=user.id, aad_object_id=user.aad_object_id)],
        tenant_id=DEFAULT_TENANT_ID,
        channel_data={"tenant": {"id": DEFAULT_TENANT_ID}},
    )


async def _create_1to1(
    adapter: CloudAdapter, fc: FakeConnector, user: User, text: str | None = None
) -> ConversationReference:
    """The create_conversation call form that works with CloudAdapter in local mode."""
    refs: list[ConversationReference] = []

    async def callback(turn_context: TurnContext) -> None:
        # The create activity carries a random id: drop it first, or every later send through
        # this reference goes out as a reply to an activity that does not exist.
        turn_context.activity.id = None
        refs.append(TurnContext.get_conversation_reference(turn_context.activity))
        if text:
            await turn_context.send_activity(text)

    await adapter.create_conversation("", callback, _params(user), "msteams", fc.url, None)
    return refs[0]


# ---------------------------------------------------------------------- replies and sends


async def test_echo_reply_is_recorded(adapter: CloudAdapter, fc: FakeConnector) -> None:
    inbound = message("hello", service_url=fc.url)
    await _turn(adapter, EchoBot(), inbound)
    [reply] = fc.sent(inbound["conversation"]["id"])
    assert reply["text"] == "echo: hello"
    assert fc.requests[-1].path.endswith(f"/activities/{inbound['id']}")
    assert fc.deliveries[-1].reply_to_id == inbound["id"]


async def test_echo_through_aiohttp_process(fc: FakeConnector, adapter: CloudAdapter) -> None:
    bot = EchoBot()

    async def messages(request: web.Request) -> web.StreamResponse:
        return await adapter.process(request, bot) or web.Response(status=201)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        team = Team.named("QA Team")
        inbound = message("status", service_url=fc.url, conversation_type="channel", team=team)
        response = await client.post("/api/messages", json=inbound)
        assert response.status in (200, 201)
    assert fc.texts(team.id) == ["echo: status"]


async def test_wait_for_sees_a_proactive_send(adapter: CloudAdapter, fc: FakeConnector) -> None:
    reference = await _create_1to1(adapter, fc, User.named("Sam Social"))
    task = asyncio.create_task(
        adapter.continue_conversation(reference, lambda tc: tc.send_activity("later"), "")
    )
    sent = await fc.wait_for(1, timeout=5)
    await task
    assert [a["text"] for a in sent] == ["later"]
    with pytest.raises(TimeoutError):
        await fc.wait_for(lambda f: len(f.deliveries) > 1, timeout=0.05)


# ---------------------------------------------------------------------- proactive 1:1


async def test_create_conversation_is_stable_per_user(
    adapter: CloudAdapter, fc: FakeConnector
) -> None:
    sam = User.named("Sam Social")
    first = await _create_1to1(adapter, fc, sam, "Your audit is due")
    second = await _create_1to1(adapter, fc, sam)
    assert first.conversation.id == second.conversation.id == personal_conversation_id(sam)
    assert fc.texts(first.conversation.id) == ["Your audit is due"]
    assert fc.created[0]["members"][0]["aadObjectId"] == sam.aad_object_id
    assert fc.created[0]["tenantID"] == DEFAULT_TENANT_ID


async def test_continue_conversation_sends_to_saved_reference(
    adapter: CloudAdapter, fc: FakeConnector
) -> None:
    reference = await _create_1to1(adapter, fc, User.named("Sam Social"))

    async def nudge(turn_context: TurnContext) -> None:
        await turn_context.send_activity("Reminder: 2 working days left")

    await adapter.continue_conversation(reference, nudge, "")
    assert fc.texts(reference.conversation.id) == ["Reminder: 2 working days left"]


async def test_unknown_user_is_forbidden_when_strict(adapter: CloudAdapter) -> None:
    async with FakeConnector(known_users_only=True) as strict:
        with pytest.raises(ErrorResponseException) as raised:
            await _create_1to1(adapter, strict, User.named("Nobody Known"))
    assert raised.value.response.status_code == HTTPStatus.FORBIDDEN


async def test_channel_thread_creation_posts_the_activity(
    adapter: CloudAdapter, fc: FakeConnector
) -> None:
    team = Team.named("QA Team")
    params = ConversationParameters(
        is_group=True,
        channel_data={"channel": {"id": team.id}, "tenant": {"id": DEFAULT_TENANT_ID}},
        activity=Activity(type="message", text="Monthly digest"),
    )
    ids: list[str] = []

    async def callback(turn_context: TurnContext) -> None:
        ids.append(turn_context.activity.conversation.id)

    await adapter.create_conversation("", callback, params, "msteams", fc.url, None)
    assert ids[0].startswith(f"{team.id};messageid=")
    assert fc.texts(ids[0]) == ["Monthly digest"]


# ---------------------------------------------------------------------- rosters and teams


async def test_paged_members_pages_with_continuation_tokens(
    adapter: CloudAdapter, fc: FakeConnector
) -> None:
    team = Team.named("QA Team", extra_channels=("Audits",))
    staff = make_users(5)
    fc.add_team(team, members=staff)
    inbound = message("who", service_url=fc.url, conversation_type="channel", team=team)
    pages: list[list[str]] = []

    async def logic(turn_context: TurnContext) -> None:
        token = None
        while True:
            page = await TeamsInfo.get_paged_members(turn_context, token, page_size=2)
            pages.append([m.email for m in page.members])
            token = page.continuation_token
            if not token:
                return

    await adapter.process_activity("", Activity().deserialize(inbound), logic)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sum(pages, []) == [u.email for u in staff]


async def test_team_details_channels_and_member(adapter: CloudAdapter, fc: FakeConnector) -> None:
    team = Team.named("QA Team", extra_channels=("Audits",))
    staff = make_users(3)
    fc.add_team(team, members=staff)
    inbound = message("x", service_url=fc.url, conversation_type="channel", team=team)
    got: dict[str, Any] = {}

    async def logic(turn_context: TurnContext) -> None:
        # These two use the synchronous TeamsConnectorClient on the loop: the threaded fake
        # is what keeps them from deadlocking.
        got["details"] = await TeamsInfo.get_team_details(turn_context)
        got["channels"] = await TeamsInfo.get_team_channels(turn_context)
        got["member"] = await TeamsInfo.get_member(turn_context, staff[1].aad_object_id)

    await adapter.process_activity("", Activity().deserialize(inbound), logic)
    assert got["details"].aad_group_id == team.aad_group_id
    assert [c.name for c in got["channels"]] == [None, "Audits"]
    assert got["member"].email == staff[1].email


# ---------------------------------------------------------------------- faults


async def test_fail_next_429_raises_with_status_and_retry_after(
    adapter: CloudAdapter, fc: FakeConnector
) -> None:
    reference = await _create_1to1(adapter, fc, User.named("Sam Social"))
    fc.fail_next(429, retry_after=2)
    with pytest.raises(ErrorResponseException) as raised:
        await adapter.continue_conversation(reference, lambda tc: tc.send_activity("x"), "")
    error = raised.value
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "2"
    assert error.error.error.code == "ThrottledRequest"
    await adapter.continue_conversation(reference, lambda tc: tc.send_activity("y"), "")
    assert fc.texts() == ["y"]
    assert [r.status for r in fc.requests[-2:]] == [429, 201]


async def test_sdk_does_not_retry_posts_but_retries_gets(
    adapter: CloudAdapter, fc: FakeConnector
) -> None:
    """Pins msrest 0.7.1 + urllib3 2.x: POST errors surface at once (urllib3 2 ignores
    msrest's ``method_whitelist``); GETs on 5xx are retried inside the SDK first."""
    team = Team.named("QA Team")
    fc.add_team(team, members=make_users(2))
    reference = await _create_1to1(adapter, fc, User.named("Sam Social"))
    # continue_conversation gives its activity a fresh uuid, so sends go out as replies.
    fc.fail_next(503, match=r"^POST .*/activities")
    with pytest.raises(ErrorResponseException) as raised:
        await adapter.continue_conversation(reference, lambda tc: tc.send_activity("x"), "")
    assert raised.value.response.status_code == 503
    assert fc.requests[-1].operation == "reply_to_activity"

    fc.fail_next(503, match="get_conversation_paged_members")
    inbound = message("x", service_url=fc.url, conversation_type="channel", team=team)
    pages: list[Any] = []

    async def logic(turn_context: TurnContext) -> None:
        pages.append(await TeamsInfo.get_paged_members(turn_context))

    await adapter.process_activity("", Activity().deserialize(inbound), logic)
    assert len(pages[0].members) == 2
    statuses = [r.status for r in fc.requests if r.operation == "get_conversation_paged_members"]
    assert statuses == [503, 200]


async def test_sdk_honours_retry_after_on_get_429(adapter: CloudAdapter, fc: FakeConnector) -> None:
    team = Team.named("QA Team")
    fc.add_team(team, members=make_users(1))
    fc.fail_next(429, retry_after=1, match="get_conversation_paged_members")
    inbound = message("x", service_url=fc.url, conversation_type="channel", team=team)
    started = time.monotonic()

    async def logic(turn_context: TurnContext) -> None:
        await TeamsInfo.get_paged_members(turn_context)

    await adapter.process_activity("", Activity().deserialize(inbound), logic)
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in fc.requests] == [429, 200]


async def test_paged_member_errors_are_plain_http_operation_errors(
    adapter: CloudAdapter, fc: FakeConnector
) -> None:
    inbound = message("x", service_url=fc.url)  # personal chat with no roster: 404

    async def logic(turn_context: TurnContext) -> None:
        await TeamsInfo.get_paged_members(turn_context)

    with pytest.raises(HttpOperationError) as raised:
        await adapter.process_activity("", Activity().deserialize(inbound), logic)
    assert not isinstance(raised.value, ErrorResponseException)
    assert raised.value.response.status_code == 404


async def test_enforce_limits_throttles_the_eighth_send_in_a_second(
    adapter: CloudAdapter, fc: FakeConnector
) -> None:
    fc.enforce_limits()
    busy = await _create_1to1(adapter, fc, User.named("Busy Worker"))
    quiet = await _create_1to1(adapter, fc, User.named("Quiet Worker"))
    for i in range(7):
        await adapter.continue_conversation(busy, lambda tc, i=i: tc.send_activity(f"m{i}"), "")
    with pytest.raises(ErrorResponseException) as raised:
        await adapter.continue_conversation(busy, lambda tc: tc.send_activity("m7"), "")
    await adapter.continue_conversation(quiet, lambda tc: tc.send_activity("other chat"), "")
    assert raised.value.response.status_code == 429
    assert int(raised.value.response.headers["Retry-After"]) >= 1
    assert fc.limit_violations == 1
    assert len(fc.sent(busy.conversation.id)) == 7
    assert fc.texts(quiet.conversation.id) == ["other chat"]


async def test_tenant_limit_counts_all_conversations(fc: FakeConnector) -> None:
    fc.enforce_limits(per_conversation=(), tenant_per_second=3)
    async with aiohttp.ClientSession() as http:
        statuses = []
        for i in range(4):
            body = {"type": "message", "text": str(i), "channelData": {"tenant": {"id": "t1"}}}
            async with http.post(f"{fc.url}v3/conversations/c{i}/activities", json=body) as r:
                statuses.append(r.status)
    assert statuses == [201, 201, 201, 429]


async def test_fail_randomly_is_seeded_and_not_counted(fc: FakeConnector) -> None:
    async def run() -> list[int]:
        fc.reset()
        fc.fail_randomly({429: 0.10, 503: 0.02}, seed=7)
        async with aiohttp.ClientSession() as http:
            out = []
            for i in range(200):
                url = f"{fc.url}v3/conversations/c{i % 20}/activities"
                async with http.post(url, json={"type": "message", "text": str(i)}) as r:
                    out.append(r.status)
        return out

    first, second = await run(), await run()
    assert first == second
    assert 5 <= first.count(429) <= 40
    assert len(fc.sent()) == first.count(201)


async def test_failed_sends_do_not_count_and_duplicates_are_found(fc: FakeConnector) -> None:
    fc.fail_next(500, match="/v3/conversations/c1/")
    async with aiohttp.ClientSession() as http:
        for text in ("a", "a", "b", "a"):
            body = {"type": "message", "text": text, "timestamp": time.monotonic()}
            await http.post(f"{fc.url}v3/conversations/c1/activities", json=body)
    assert fc.texts("c1") == ["a", "b", "a"]
    assert [d["text"] for d in fc.duplicates()] == ["a"]


async def test_latency_and_card_helpers(fc: FakeConnector) -> None:
    fc.latency = 0.05
    card = {"type": "AdaptiveCard", "version": "1.5", "body": []}
    body = {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "content": card}]}
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        await http.post(f"{fc.url}v3/conversations/c1/activities", json=body)
        elapsed = time.monotonic() - started
        await http.put(f"{fc.url}v3/conversations/c1/activities/9", json=body)
    assert elapsed >= 0.05
    assert fc.cards("c1") == [card]
    assert len(fc.cards("c1", include_updates=True)) == 2


# ---------------------------------------------------------------------- inbound factories


async def test_factories_reach_the_right_handlers(adapter: CloudAdapter, fc: FakeConnector) -> None:
    bot = EchoBot()
    for activity in personal_install(service_url=fc.url):
        await _turn(adapter, bot, activity)
    for activity in team_install(Team.named("QA Team"), service_url=fc.url):
        await _turn(adapter, bot, activity)
    await _turn(adapter, bot, submit({"verb": "claim"}, service_url=fc.url))
    response = await _turn(adapter, bot, card_action("grade", {"case": "C-1"}, service_url=fc.url))
    assert isinstance(response, InvokeResponse) and response.status == 200
    assert bot.seen == [
        "added:personal",
        "installed",
        f"added:{Team.named('QA Team').id}",
        "installed",
        "submit:claim",
        "execute:grade:C-1",
    ]


async def test_dropped_connection_after_accept_exposes_double_delivery(
    adapter: CloudAdapter, fc: FakeConnector
) -> None:
    reference = await _create_1to1(adapter, fc, User.named("Sam Social"))
    fc.drop_next(after_accept=True)
    with pytest.raises(ClientRequestError):
        await adapter.continue_conversation(reference, lambda tc: tc.send_activity("once"), "")
    await adapter.continue_conversation(reference, lambda tc: tc.send_activity("once"), "")
    assert fc.texts() == ["once", "once"]
    assert [d["text"] for d in fc.duplicates()] == ["once"]
    assert [r.status for r in fc.requests[-2:]] == [0, 201]
