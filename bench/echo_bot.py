"""A bare botbuilder CloudAdapter echo bot: the framework's own floor on this machine.

Local mode (no MicrosoftAppId), the SDK's stock connector factory, one ``send_activity``
per message and an inline invoke response (a small card) for Action.Execute clicks, so it
answers the same workload as the QA bot with no database and no logic. Prints
``{"ready": true, "port": ..., "pid": ...}`` once listening on 127.0.0.1; stops on SIGTERM
or when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

from aiohttp import web
from botbuilder.core import Bot, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    InvokeResponse,
)

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
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(json.dumps({"ready": True, "port": port, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # stdin closing (the benchmark went away) stops the bot too
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_stdin() -> None:
        while await reader.readline():
            pass
        stop.set()

    watcher = asyncio.create_task(watch_stdin())
    await stop.wait()
    watcher.cancel()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
