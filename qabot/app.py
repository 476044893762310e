"""The aiohttp application factory (no module globals: everything hangs off the app)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from bot.app_routes import build_router
from bot.handler import make_turn_handler
from bot.outbox import OutboxSender
from bot.teams import TeamsGateway
from qa.framework import Framework
from qabot.context import AppContext
from qabot.logs import correlation_id
from qabot.settings import Settings

log = logging.getLogger(__name__)

CTX = web.AppKey("ctx", AppContext)
SETTINGS = web.AppKey("settings", Settings)
CORRELATION = web.RequestKey("correlation_id", str)

Middleware = Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
                      Awaitable[web.StreamResponse]]


@web.middleware
async def _correlation(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
    cid = request.headers.get("X-Correlation-Id") or uuid.uuid4().hex[:16]
    request[CORRELATION] = cid
    token = correlation_id.set(cid)
    try:
        response = await handler(request)
    finally:
        correlation_id.reset(token)
    response.headers["X-Correlation-Id"] = cid
    return response


async def messages(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    assert ctx.gateway is not None
    if "application/json" not in request.headers.get("Content-Type", ""):
        return web.json_response({"error": "expected application/json"}, status=415)
    try:
        return await ctx.gateway.process(request, request[CORRELATION])
    except web.HTTPException:
        raise
    except ValueError:
        return web.json_response({"error": "malformed activity"}, status=400)


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ok = await ctx.database_ok()
    body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "unreachable"}
    return web.json_response(body, status=200 if ok else 503)


def init_app(settings: Settings, *, framework: Framework | None = None,
             run_sender: bool = True, run_scheduler: bool | None = None) -> web.Application:
    """Build the web app; the context, sender and scheduler live in ``cleanup_ctx``."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_correlation])
    app[SETTINGS] = settings
    scheduler_on = settings.scheduler_enabled if run_scheduler is None else run_scheduler

    async def context(app: web.Application) -> AsyncIterator[None]:
        ctx = AppContext.create(settings, framework)
        router = build_router()
        ctx.router = router
        ctx.gateway = TeamsGateway(settings, make_turn_handler(ctx, router))
        if settings.local_mode:
            log.warning("local mode: no MicrosoftAppId set, so incoming requests are NOT "
                        "authenticated; use only with the Agents Playground or tests")
        else:
            log.info("Bot Framework authentication on", extra={"app_type": settings.app_type})
        app[CTX] = ctx
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        if run_sender:
            ctx.sender = OutboxSender(
                ctx.outbox, ctx.directory, ctx.gateway,
                tenant_rate=settings.tenant_rate, max_attempts=settings.outbox_max_attempts,
                concurrency=settings.outbox_concurrency, poll_seconds=settings.outbox_poll_seconds)
            tasks.append(asyncio.create_task(ctx.sender.run(stop), name="outbox-sender"))
        scheduler = None
        if scheduler_on:
            from scheduler.runner import start_scheduler

            scheduler = start_scheduler(ctx)
        try:
            yield
        finally:
            stop.set()
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            for task in tasks:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            await ctx.close()
            log.info("stopped cleanly")

    app.cleanup_ctx.append(context)
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    return app
