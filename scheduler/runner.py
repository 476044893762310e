"""APScheduler 3 wiring: triggers come from the framework file, work from run_job."""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from qabot.context import AppContext
from scheduler.jobs import all_jobs, run_job

log = logging.getLogger(__name__)


def start_scheduler(ctx: AppContext) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=ctx.framework.timezone)
    for job in all_jobs().values():
        scheduler.add_job(
            _entry, job.trigger(ctx.framework), args=[ctx, job.name], id=job.name,
            name=job.summary, coalesce=True, max_instances=1, misfire_grace_time=3600,
        )
    scheduler.start()
    log.info("scheduler started", extra={"jobs": len(scheduler.get_jobs())})
    return scheduler


async def _entry(ctx: AppContext, name: str) -> None:
    try:
        await run_job(ctx, name, ctx.clock())
    except Exception:
        pass  # already logged with its correlation id by run_job


def next_runs(ctx: AppContext, now: datetime) -> list[tuple[str, str, datetime | None]]:
    """Each job with the next time its trigger fires after ``now``."""
    out = []
    for job in all_jobs().values():
        trigger = job.trigger(ctx.framework)
        out.append((job.name, job.summary, trigger.get_next_fire_time(None, now)))
    return out
