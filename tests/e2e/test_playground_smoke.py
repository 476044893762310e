"""Smoke test of the end-to-end harness: a minimal bot, driven through the real Playground UI.

It proves the four things the QA bot's own end-to-end tests will build on: a typed message gets
a reply; an Adaptive Card 1.5 with a compact Input.ChoiceSet, an Input.Text and an
Action.Execute renders and can be filled in; the card returned by the ``adaptiveCard/action``
invoke replaces the old card in place; and a proactive message started with
``CloudAdapter.create_conversation`` reaches the person at the keyboard.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from botbuilder.core import ActivityHandler, InvokeResponse, MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    AdaptiveCardInvokeResponse,
    Attachment,
    ChannelAccount,
    ConversationParameters,
)

from .playground import (
    MockTenant,
    MockUser,
    PlaygroundPage,
    PlaygroundServer,
    local_cloud_adapter,
    serve_bot,
)

logger = logging.getLogger(__name__)

WELCOME = "Smoke bot ready"
CARD_TITLE = "Audit triage"
PRIORITIES = ("Low", "Medium", "High")
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"

#: The person at the keyboard, as the QA bot would know them (linked by email).
AUDITOR = MockUser(
    id="user-id-0",
    name="Ann Auditor",
    email="ann.auditor@council.example",
    aad_object_id="11111111-2222-3333-4444-555555555555",
)


@pytest.fixture
def mock_tenant() -> MockTenant:
    """Make the Playground's current user our auditor, as the QA bot's tests will."""
    return MockTenant(bot_name="Smoke Bot").with_current_user(
        email=AUDITOR.email, name=AUDITOR.name, aad_object_id=AUDITOR.aad_object_id
    )


def triage_card() -> dict[str, Any]:
    """The card under test: compact ChoiceSet, Text input, Action.Execute (schema 1.5)."""
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": CARD_TITLE, "weight": "Bolder", "size": "Medium"},
            {
                "type": "Input.ChoiceSet",
                "id": "priority",
                "label": "Priority",
                "style": "compact",
                "placeholder": "Choose a priority",
                "choices": [{"title": p, "value": p.lower()} for p in PRIORITIES],
            },
            {
                "type": "Input.Text",
                "id": "note",
                "label": "Note",
                "placeholder": "Add a note for the auditor",
            },
        ],
        "actions": [{"type": "Action.Execute", "title": "Save triage", "verb": "saveTriage"}],
    }


def saved_card(priority_title: str, note: str) -> dict[str, Any]:
    """The card the invoke returns; it must replace the triage card in place."""
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": f"{CARD_TITLE}: saved", "weight": "Bolder"},
            {"type": "TextBlock", "text": f"Priority: {priority_title}", "wrap": True},
            {"type": "TextBlock", "text": f"Note: {note}", "wrap": True},
        ],
    }


class SmokeBot(ActivityHandler):
    """A minimal bot with the same shape of behaviour as the QA bot.

    It remembers the service URL, tenant and its own account from incoming activities because
    a proactive ``create_conversation`` needs them and cannot learn them any other way.
    """

    def __init__(self, adapter: CloudAdapter) -> None:
        self.adapter = adapter
        self.service_url: str | None = None
        self.tenant_id: str | None = None
        self.bot_account: ChannelAccount | None = None
        self.invoke_values: list[dict[str, Any]] = []

    async def on_turn(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        self.service_url = activity.service_url or self.service_url
        self.bot_account = activity.recipient or self.bot_account
        # botbuilder-schema drops conversation.tenantId (it expects "tenantID"): use channelData.
        tenant = (activity.channel_data or {}).get("tenant") or {}
        self.tenant_id = tenant.get("id") or self.tenant_id
        await super().on_turn(turn_context)

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id
        if any(member.id != bot_id for member in members_added):
            await turn_context.send_activity(WELCOME)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        text = (turn_context.activity.text or "").strip()
        if text.lower() == "card":
            attachment = Attachment(content_type=ADAPTIVE_CARD, content=triage_card())
            await turn_context.send_activity(MessageFactory.attachment(attachment))
        else:
            await turn_context.send_activity(f"You said: {text}")

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        """Answer Action.Execute here, not in ``on_adaptive_card_invoke``.

        botbuilder 4.17.1 serialises an ``on_adaptive_card_invoke`` result twice (ActivityHandler
        and CloudAdapter.process) and fails with ``'dict' object has no attribute
        'is_xml_model'``; returning the InvokeResponse from here avoids the second pass.
        """
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        value = activity.value or {}
        self.invoke_values.append(copy.deepcopy(value))
        data = (value.get("action") or {}).get("data") or {}
        chosen = str(data.get("priority", ""))
        title = next((p for p in PRIORITIES if p.lower() == chosen), chosen or "(none)")
        card = saved_card(title, str(data.get("note", "")))
        return InvokeResponse(
            status=200,
            body=AdaptiveCardInvokeResponse(status_code=200, type=ADAPTIVE_CARD, value=card),
        )

    async def send_proactive(self, member: MockUser, text: str) -> str:
        """Open (or find) the 1:1 chat with ``member`` and post ``text``; return the chat id.

        Local mode: empty bot app id, ``audience=None``, the service URL saved from an earlier
        activity, and the Playground's member id (``user-id-0``), not the AAD id.
        """
        if not (self.service_url and self.tenant_id and self.bot_account):
            raise RuntimeError("no activity seen yet: service URL, tenant and bot id unknown")
        params = ConversationParameters(
            is_group=False,
            bot=ChannelAccount(id=self.bot_account.id),
            members=[ChannelAccount(id=member.id, aad_object_id=member.aad_object_id)],
            tenant_id=self.tenant_id,
            channel_data={"tenant": {"id": self.tenant_id}},
        )
        conversation_ids: list[str] = []

        async def callback(turn_context: TurnContext) -> None:
            conversation_ids.append(turn_context.activity.conversation.id)
            # The callback's activity carries a random id; clear it so this is a new message
            # rather than a reply to a message that does not exist.
            turn_context.activity.id = None
            await turn_context.send_activity(text)

        await self.adapter.create_conversation(
            "", callback, params, "msteams", self.service_url, None
        )
        if not conversation_ids:
            raise RuntimeError("create_conversation never called back")
        return conversation_ids[0]


@pytest.fixture
async def smoke_bot(bot_port: int) -> AsyncIterator[SmokeBot]:
    """The smoke bot served in-process on ``bot_port`` for the duration of the test."""
    adapter = local_cloud_adapter()
    bot = SmokeBot(adapter)

    async def messages(request: web.Request) -> web.StreamResponse:
        return await adapter.process(request, bot)

    async with serve_bot(messages, bot_port):
        yield bot


async def test_playground_smoke(
    smoke_bot: SmokeBot, playground: PlaygroundServer, playground_page: PlaygroundPage
) -> None:
    started = time.monotonic()
    ui = playground_page

    # 1. Opening the page installs the bot; the bot welcomes the current user.
    await ui.open()
    assert WELCOME in await ui.wait_for_first_bot_message(timeout_s=20)
    await ui.screenshot("welcome")

    # 2. A typed message gets the bot's reply.
    await ui.send("hello playground")
    await ui.wait_for_bot_text("You said: hello playground")
    await ui.screenshot("echo")

    # 3. The bot answers with an Adaptive Card; the person fills it in and presses the button.
    await ui.send("card")
    card = await ui.wait_for_card(containing=CARD_TITLE)
    cards_before = await ui.cards().count()
    await ui.pick("Priority", "High", card=card)
    await ui.fill("Note", "Chronology is missing", card=card)
    await ui.screenshot("card-filled")
    await ui.click("Save triage", card=card)

    # 4. The invoke's card replaces the old one in place (same number of cards, no inputs left).
    saved = await ui.wait_for_card(containing=f"{CARD_TITLE}: saved")
    await ui.wait_for_bot_text("Priority: High")
    await ui.wait_for_bot_text("Note: Chronology is missing")
    assert await ui.cards().count() == cards_before
    assert await ui.page.get_by_role("combobox").count() == 0
    assert await saved.get_by_role("button", name="Save triage").count() == 0
    await ui.screenshot("card-replaced")
    assert len(smoke_bot.invoke_values) == 1
    action = smoke_bot.invoke_values[0]["action"]
    assert action["type"] == "Action.Execute"
    assert action["verb"] == "saveTriage"
    assert action["data"] == {"priority": "high", "note": "Chronology is missing"}

    # 5. A proactive message to the person at the keyboard appears in the open chat.
    conversation_id = await smoke_bot.send_proactive(
        playground.current_user, "Proactive: 2 audits are due"
    )
    assert conversation_id == playground.tenant.personal_chat_id
    await ui.wait_for_bot_text("Proactive: 2 audits are due")
    await ui.screenshot("proactive")

    elapsed = time.monotonic() - started
    logger.info("playground smoke flow took %.1fs (excluding fixtures)", elapsed)
    assert elapsed < 60
