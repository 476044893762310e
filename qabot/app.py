"""The aiohttp application factory (no module globals: everything hangs off the app)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from bot.app_routes import build_router
from bot.handler import make_turn_handler
from bot.outbox import OutboxSender
from bot.teams import TeamsGateway
from qa.framework import Framework
from qabot.context import AppContext
from qabot.logs import correlation_id
from qabot.metrics import EXTRAS_KEY, Metrics
from qabot.settings import Settings

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The background parts /readyz reports on (None until started, or when switched off)."""

    scheduler_enabled: bool
    sender_enabled: bool
    scheduler: BaseScheduler | None = None
    sender_task: asyncio.Task[None] | None = None


CTX = web.AppKey("ctx", AppContext)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
RUNTIME = web.AppKey("runtime", Runtime)
READY_TIMEOUT_SECONDS = 5.0

@web.middleware
async def _correlation(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
    cid = request.headers.get("X-Correlation-Id") or uuid.uuid4().hex[:16]
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
    started = time.perf_counter()
    try:
        body = await request.json()
        response = await ctx.gateway.process(body, request.headers.get("Authorization", ""))
    except web.HTTPException:
        raise
    except ValueError:
        return web.json_response({"error": "malformed activity"}, status=400)
    activity_type = body.get("type") if isinstance(body, dict) else None
    request.app[METRICS].record_activity(
        activity_type if isinstance(activity_type, str) else None, time.perf_counter() - started)
    return response


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ok = await ctx.database_ok()
    body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "unreachable"}
    return web.json_response(body, status=200 if ok else 503)


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers, and the scheduler and sender run where enabled.

    503 names the parts that failed, so a load balancer stops routing to an instance
    that cannot do its work while liveness (/healthz) stays cheap.
    """
    ctx, runtime = request.app[CTX], request.app[RUNTIME]
    try:
        db_ok = await asyncio.wait_for(ctx.database_ok(), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        db_ok = False
    checks = {"database": "ok" if db_ok else "unreachable"}
    if runtime.scheduler_enabled:
        running = runtime.scheduler is not None and runtime.scheduler.running
        checks["scheduler"] = "running" if running else "stopped"
    else:
        checks["scheduler"] = "disabled"
    if runtime.sender_enabled:
        alive = runtime.sender_task is not None and not runtime.sender_task.done()
        checks["outbox_sender"] = "running" if alive else "stopped"
    else:
        checks["outbox_sender"] = "disabled"
    failed = [name for name, state in checks.items() if state in ("unreachable", "stopped")]
    body = {"status": "not ready" if failed else "ready", "checks": checks, "failed": failed}
    return web.json_response(body, status=503 if failed else 200)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format, behind QABOT_METRICS_TOKEN (404 when none is configured)."""
    token = request.app[SETTINGS].metrics_token
    if not token:
        raise web.HTTPNotFound()
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                            token.encode()):
        return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    ctx = request.app[CTX]
    try:
        outbox = await ctx.outbox.status(failures=0)
    except Exception:
        log.warning("metrics: outbox status unavailable", exc_info=True)
        outbox = None
    text = request.app[METRICS].render(ctx.sender.stats if ctx.sender else None, outbox)
    return web.Response(body=text.encode("utf-8"),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def init_app(settings: Settings, *, framework: Framework | None = None,
             run_sender: bool = True, run_scheduler: bool | None = None) -> web.Application:
    """Build the web app; the context, sender and scheduler live in ``cleanup_ctx``."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_correlation])
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    scheduler_on = settings.scheduler_enabled if run_scheduler is None else run_scheduler
    runtime = Runtime(scheduler_enabled=scheduler_on, sender_enabled=run_sender)
    app[RUNTIME] = runtime

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
        ctx.extras[EXTRAS_KEY] = app[METRICS]
        app[CTX] = ctx
        # Everything built so far lives as long as the process: move it out of the cyclic
        # collector's sight, so a full collection scans only what turns create. Without
        # this a gen-2 collection paused a click for about 70 ms (bench/NOTES.md).
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        if run_sender:
            ctx.sender = OutboxSender(
                ctx.outbox, ctx.directory, ctx.gateway,
                tenant_rate=settings.tenant_rate, max_attempts=settings.outbox_max_attempts,
                concurrency=settings.outbox_concurrency, poll_seconds=settings.outbox_poll_seconds)
            tasks.append(asyncio.create_task(ctx.sender.run(stop), name="outbox-sender"))
            runtime.sender_task = tasks[-1]
        scheduler = None
        if scheduler_on:
            from scheduler.runner import start_scheduler

            scheduler = start_scheduler(ctx)
            runtime.scheduler = scheduler
        try:
            yield
        finally:
            stop.set()
            if scheduler is not None and scheduler.running:  # it may have stopped already
                scheduler.shutdown(wait=False)
            for task in tasks:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            await ctx.close()
            log.info("stopped cleanly")

    app.cleanup_ctx.append(context)
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
