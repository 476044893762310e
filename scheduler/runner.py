"""APScheduler 3 wiring: triggers from the framework file, work from :func:`run_job`.

The runner is handed the services (and through them the job list the app factory
collected); it never imports a flow.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from scheduler.jobs import Job, run_job

if TYPE_CHECKING:
    from qa.framework import Framework
    from qabot.services import Services

log = logging.getLogger(__name__)


def trigger_for(job: Job, framework: Framework) -> BaseTrigger:
    """Every day at the job's time of the framework's schedule, or every N minutes on the
    clock (:00, :15, ...), in the framework's zone."""
    if job.every_minutes is not None:
        return CronTrigger(minute=f"*/{job.every_minutes}", timezone=framework.zone)
    assert job.daily_at is not None
    at = job.daily_at(framework.schedule)
    return CronTrigger(hour=at.hour, minute=at.minute, timezone=framework.zone)


class _FinishingExecutor(AsyncIOExecutor):
    """APScheduler's asyncio executor, able to wait for the jobs it is running.

    Its own ``shutdown`` cancels them at once: a job cancelled mid-query left its database
    connection to be closed by the garbage collector after the engine was disposed
    ("Exception closing connection" at SIGTERM) and threw away the job's work.
    """

    async def finish(self, seconds: float) -> int:
        """Wait up to ``seconds`` for running jobs; returns how many still run."""
        running = {f for f in self._pending_futures if not f.done()}
        if not running:
            return 0
        _, still = await asyncio.wait(running, timeout=seconds)
        return len(still)


def start_scheduler(services: Services) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=services.framework.timezone,
                                 executors={"default": _FinishingExecutor()})
    for job in services.jobs.values():
        scheduler.add_job(
            _entry, trigger_for(job, services.framework), args=[services, job.name],
            id=job.name, name=job.summary, coalesce=True, max_instances=1,
            misfire_grace_time=3600,
        )
    scheduler.start()
    log.info("scheduler started", extra={"jobs": len(scheduler.get_jobs())})
    return scheduler


async def stop_scheduler(scheduler: AsyncIOScheduler, seconds: float = 10.0) -> None:
    """Fire nothing more, let running jobs finish (up to ``seconds``), then shut down.

    A job still running after that is cancelled (its unit of work rolls back; jobs
    are idempotent, so the next run does it).
    """
    if not scheduler.running:
        return
    scheduler.pause()
    executor = scheduler._lookup_executor("default")
    if isinstance(executor, _FinishingExecutor):
        left = await executor.finish(seconds)
        if left:
            log.warning("stopping: %d job(s) still running after %.0f s are cancelled",
                        left, seconds)
    scheduler.shutdown(wait=False)


async def _entry(services: Services, name: str) -> None:
    try:
        await run_job(services, name, services.clock())
    except Exception:
        pass  # already logged with its correlation id by run_job


def next_runs(services: Services, now: datetime) -> list[tuple[str, str, datetime | None]]:
    """Each job with the next time its trigger fires after ``now``."""
    return [(job.name, job.summary,
             trigger_for(job, services.framework).get_next_fire_time(None, now))
            for job in services.jobs.values()]
