"""The app factory: one frozen :class:`Services` and the aiohttp application around it.

``build_services`` is the only place the engine, stores, Teams gateway, sender, router and
job table are made; ``init_app`` serves them. The flows are collected here (``FLOWS``):
each brings its router and its jobs.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from bot.edge import Unanswerable, read_activity
from bot.handler import make_reply_queue, make_turn_handler
from bot.outbox import OutboxSender
from bot.router import Router
from bot.teams import TeamsGateway
from bot.turn import TurnHandler, UndeliveredReplies
from flows import (
    actions,
    allocation,
    audit_form,
    completion,
    delegation,
    digest,
    export,
    findings,
    moderation,
    nudges,
    records,
    remedial,
    report,
    roster,
    safeguarding,
    themes,
    welcome,
)
from qa.calendar import WorkingCalendar
from qa.framework import Framework
from qa.framework_file import bundled_framework_path, load_framework
from qabot.logs import correlation_id
from qabot.metrics import Metrics
from qabot.services import Services
from qabot.settings import Settings
from qabot.warmup import WarmUp, warm_up
from scheduler.jobs import job_table
from store.db import make_engine, make_sessionmaker
from store.directory import Directory
from store.models import utcnow
from store.outbox import OutboxStore
from store.sender_lock import SenderLock

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
    warm_up: WarmUp | None = None
    started: float = field(default_factory=time.monotonic)


#: Every feature's module; each brings ``router`` and ``jobs``.
FLOWS = (welcome, allocation, audit_form, delegation, completion, roster, safeguarding, findings,
         remedial, moderation, actions, nudges, digest, export, themes, records, report)

SERVICES = web.AppKey("services", Services)
HANDLER = web.AppKey("turn_handler", TurnHandler)
UNDELIVERED = web.AppKey("undelivered_replies", UndeliveredReplies)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
RUNTIME = web.AppKey("runtime", Runtime)
READY_TIMEOUT_SECONDS = 5.0


def load_configured_framework(settings: Settings) -> Framework:
    """The framework file named by QABOT_FRAMEWORK, else the bundled Lambeth-like one."""
    return load_framework(settings.framework_path or bundled_framework_path("lambeth_like"))


def build_router() -> Router:
    """Every flow's card verbs, commands and events in one router."""
    return Router.combine(flow.router for flow in FLOWS)


def build_services(settings: Settings, framework: Framework | None = None, *,
                   clock: Callable[[], datetime] = utcnow, teams: bool = False,
                   sender: bool = False, metrics: Metrics | None = None) -> Services:
    """Everything a handler, job or command needs, made once.

    ``teams`` builds the Teams gateway (for roster and member lookups, and the sender);
    ``sender`` an outbox sender for this process (the service runs one; a CLI process only
    queues).
    """
    framework = framework or load_configured_framework(settings)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    directory = Directory(sessions, clock)
    outbox = OutboxStore(sessions, clock)
    gateway = TeamsGateway(settings) if teams or sender else None
    outbox_sender = None
    if sender:
        assert gateway is not None
        outbox_sender = OutboxSender(
            outbox, directory, gateway, tenant_rate=settings.tenant_rate,
            max_attempts=settings.outbox_max_attempts, concurrency=settings.outbox_concurrency,
            poll_seconds=settings.outbox_poll_seconds, clock=clock, lock=SenderLock(engine))
    return Services(
        settings=settings,
        framework=framework,
        calendar=WorkingCalendar(framework.calendar.region, framework.calendar.extra_closures),
        clock=clock,
        engine=engine,
        sessions=sessions,
        directory=directory,
        outbox=outbox,
        router=build_router(),
        jobs=job_table(job for flow in FLOWS for job in flow.jobs),
        submit_hooks=tuple(hook for flow in FLOWS
                           if (hook := getattr(flow, "on_audit_submitted", None)) is not None),
        teams=gateway,
        sender=outbox_sender,
        metrics=metrics,
    )


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
    services = request.app[SERVICES]
    assert services.teams is not None
    if "application/json" not in request.headers.get("Content-Type", ""):
        return web.json_response({"error": "expected application/json"}, status=415)
    started = time.perf_counter()
    try:
        # Checked and cleaned before the SDK sees it (bot/edge.py): one JSON object with
        # answerable addressing, every text storable.
        body = read_activity(await request.read())
        response = await services.teams.process(body, request.headers.get("Authorization", ""),
                                                request.app[HANDLER],
                                                undelivered=request.app[UNDELIVERED])
    except web.HTTPException:
        raise
    except Unanswerable as err:
        log.info("refused an activity that cannot be answered: %s", err.reason)
        return web.json_response({"error": "malformed activity", "reason": err.reason},
                                 status=400)
    activity_type = body.get("type") if isinstance(body, dict) else None
    request.app[METRICS].record_activity(
        activity_type if isinstance(activity_type, str) else None, time.perf_counter() - started)
    return response


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Cheap on purpose (no database, no I/O): a platform
    restarts an instance whose liveness fails, and a database outage is no reason to
    restart every instance; readiness (/readyz) is where dependencies are checked."""
    runtime = request.app[RUNTIME]
    return web.json_response({"status": "ok",
                              "uptime_seconds": round(time.monotonic() - runtime.started)})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers, and the scheduler and sender run where enabled.

    503 names the parts that failed, so a load balancer stops routing to an instance
    that cannot do its work while liveness (/healthz) stays cheap.
    """
    services, runtime = request.app[SERVICES], request.app[RUNTIME]
    try:
        db_ok = await asyncio.wait_for(services.database_ok(), READY_TIMEOUT_SECONDS)
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
    services = request.app[SERVICES]
    try:
        outbox = await services.outbox.status(failures=0)
    except Exception:
        log.warning("metrics: outbox status unavailable", exc_info=True)
        outbox = None
    text = request.app[METRICS].render(services.sender.stats if services.sender else None,
                                       outbox)
    return web.Response(body=text.encode("utf-8"),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def init_app(settings: Settings, *, framework: Framework | None = None,
             clock: Callable[[], datetime] = utcnow, run_sender: bool = True,
             run_scheduler: bool | None = None) -> web.Application:
    """Build the web app; the context, sender and scheduler live in ``cleanup_ctx``."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_correlation])
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    scheduler_on = settings.scheduler_enabled if run_scheduler is None else run_scheduler
    runtime = Runtime(scheduler_enabled=scheduler_on, sender_enabled=run_sender)
    app[RUNTIME] = runtime

    async def context(app: web.Application) -> AsyncIterator[None]:
        services = build_services(settings, framework, clock=clock, teams=True,
                                  sender=run_sender, metrics=app[METRICS])
        app[SERVICES] = services
        app[HANDLER] = make_turn_handler(services)
        # Before the first request: imports, SDK, cards, the pool and one whole turn.
        runtime.warm_up = await warm_up(services, app[HANDLER])
        app[METRICS].warmup_seconds = runtime.warm_up.seconds
        app[UNDELIVERED] = make_reply_queue(services)
        if settings.local_mode:
            log.warning("local mode: no MicrosoftAppId set, so incoming requests are NOT "
                        "authenticated; use only with the Agents Playground or tests")
        else:
            log.info("Bot Framework authentication on", extra={"app_type": settings.app_type})
        # Everything built so far lives as long as the process: move it out of the cyclic
        # collector's sight, so a full collection scans only what turns create. Without
        # this a gen-2 collection paused a click for about 70 ms (bench/NOTES.md).
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        if services.sender is not None:
            tasks.append(asyncio.create_task(services.sender.run(stop), name="outbox-sender"))
            runtime.sender_task = tasks[-1]
        scheduler = None
        if scheduler_on:
            from scheduler.runner import start_scheduler

            scheduler = start_scheduler(services)
            runtime.scheduler = scheduler
        try:
            yield
        finally:
            # Stop in order: no new jobs or sends; let running jobs and in-flight sends
            # finish (bounded); then close the database, once nothing uses it.
            stop.set()
            clean = True
            if scheduler is not None:
                from scheduler.runner import stop_scheduler

                try:
                    await stop_scheduler(scheduler, seconds=10)
                except Exception:
                    clean = False
                    log.exception("stopping the scheduler failed")
            for task in tasks:
                try:
                    await asyncio.wait_for(task, timeout=10)
                except (TimeoutError, asyncio.CancelledError):
                    clean = False
                    log.warning("the outbox sender did not stop in 10 s and was cancelled")
                except Exception:
                    clean = False
                    log.exception("the outbox sender failed while stopping")
            try:
                await services.close()
            except Exception:
                clean = False
                log.exception("closing the database failed")
            if clean:
                log.info("stopped cleanly")
            else:
                log.warning("stopped, not cleanly (see above)")

    app.cleanup_ctx.append(context)
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
