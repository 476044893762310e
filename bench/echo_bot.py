"""A bare botbuilder CloudAdapter echo bot: the framework's own floor on this machine.

Local mode (no MicrosoftAppId), the SDK's stock connector factory, one ``send_activity``
per message and an inline invoke response (a small card) for Action.Execute clicks, so it
answers the same workload as the QA bot with no database and no logic. Prints
``{"ready": true, "port": ..., "pid": ...}`` once listening on 127.0.0.1; stops on SIGTERM
or when stdin closes.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from botbuilder.core import Bot, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    InvokeResponse,
)

from bench.child import serve_until_stopped

CARD = {
    "type": "AdaptiveCard",
    "version": "1.5",
    "body": [{"type": "TextBlock", "text": "Saved", "wrap": True}],
}


class _Config:
    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


class EchoBot(Bot):
    async def on_turn(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.type == ActivityTypes.message:
            await turn_context.send_activity(f"echo: {activity.text or ''}")
        elif activity.type == ActivityTypes.invoke:
            body = AdaptiveCardInvokeResponse(
                status_code=200, type="application/vnd.microsoft.card.adaptive", value=CARD)
            await turn_context.send_activity(
                Activity(type=ActivityTypes.invoke_response,
                         value=InvokeResponse(status=200, body=body)))


def make_app() -> web.Application:
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(_Config()))
    bot = EchoBot()

    async def messages(request: web.Request) -> web.StreamResponse:
        response = await adapter.process(request, bot)
        return response if response is not None else web.Response(status=201)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    return app


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    runner = web.AppRunner(make_app(), access_log=None)
    await serve_until_stopped(runner)


if __name__ == "__main__":
    asyncio.run(main())
