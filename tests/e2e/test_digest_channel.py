"""The leadership digest as leaders see it: a card posted in a team channel of a real client.

The Agents Playground renders the card the digest job posts (through the outbox and the
running sender) in its team's channel, chart and tables included. The channel is registered
in the store here, as ``digests here`` would (that command, with its @mention, its refusal
for others and its confirmation, is covered against the fake connector in
tests/test_learning.py). Screenshots are kept in tests/e2e/artifacts/.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bench.bigdata import generate
from qabot.services import Services
from scheduler.jobs import run_job
from store import digests

from .bots import running_bot
from .playground import MockTenant, PlaygroundPage, PlaygroundServer

POST_AT = datetime(2026, 11, 5, 10, 0, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture
def mock_tenant() -> MockTenant:
    return MockTenant(bot_name="Case Audit QA")


@pytest.fixture
async def qa_bot(bot_port: int, tmp_path: Path) -> AsyncIterator[Services]:
    async with running_bot(bot_port, tmp_path) as ctx:
        await generate(ctx.engine, years=1, scale=0.5, framework=ctx.framework)
        yield ctx


async def test_the_digest_card_renders_in_a_channel(
    qa_bot: Services, playground: PlaygroundServer, playground_page: PlaygroundPage
) -> None:
    ctx, ui, tenant = qa_bot, playground_page, playground.tenant
    channel_id, channel_name = tenant.channels[0]
    reference = {
        "conversation": {"id": channel_id, "conversationType": "channel",
                         "tenantId": tenant.tenant_id},
        "serviceUrl": playground.service_url, "channelId": "msteams",
        "bot": {"id": tenant.bot_id, "name": tenant.bot_name},
    }
    async with ctx.sessions.begin() as session:
        await digests.register_channel(
            session, conversation_id=channel_id, service_url=playground.service_url,
            tenant_id=tenant.tenant_id, reference=reference, team_id=tenant.team_id,
            team_name=tenant.team_name, actor="e2e", at=POST_AT)
    await ui.open()
    await ui.page.get_by_role("treeitem", name=channel_name).first.click()
    result = await run_job(ctx, "digest", POST_AT)
    assert "2026-10: 1 of 1 channel(s) queued" in result
    card = await ui.wait_for_card(containing="audit digest", timeout_s=20)
    await card.get_by_text("Overall grades").first.wait_for(timeout=10_000)
    await asyncio.sleep(1.0)  # let the chart finish drawing
    await card.scroll_into_view_if_needed()
    await ui.screenshot("digest-card-in-channel")
    await ui.screenshot("digest-card-in-channel-full", full_page=True)
    text = await card.inner_text()
    assert "October 2026" in text and "By the case's team" in text
    assert "Completion by the auditor's team" in text
    # Further down: escalations open and moderation agreement (the generated year moderates).
    assert "Escalations open" in text and "Agreed with the auditor" in text
    await card.get_by_text("Escalations open").first.scroll_into_view_if_needed()
    await ui.screenshot("digest-escalations-and-moderation")
    assert await card.get_by_role("button", name="Details (1:1, leaders and QA team)").count() == 1
    async with ctx.sessions() as session:
        from sqlalchemy import select

        from store.models import OutboxMessage

        statuses = (await session.scalars(select(OutboxMessage.status))).all()
    assert statuses == ["sent"]
