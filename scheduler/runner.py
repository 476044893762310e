"""APScheduler 3 wiring: triggers from the framework file, work from :func:`run_job`.

The runner is handed the services (and through them the job list the app factory
collected); it never imports a flow.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from scheduler.jobs import Job, run_job

if TYPE_CHECKING:
    from qa.framework import Framework
    from qabot.services import Services

log = logging.getLogger(__name__)


def trigger_for(job: Job, framework: Framework) -> BaseTrigger:
    """Every day at the job's time of the framework's schedule, in the framework's zone."""
    at = job.daily_at(framework.schedule)
    return CronTrigger(hour=at.hour, minute=at.minute, timezone=framework.zone)


def start_scheduler(services: Services) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=services.framework.timezone)
    for job in services.jobs.values():
        scheduler.add_job(
            _entry, trigger_for(job, services.framework), args=[services, job.name],
            id=job.name, name=job.summary, coalesce=True, max_instances=1,
            misfire_grace_time=3600,
        )
    scheduler.start()
    log.info("scheduler started", extra={"jobs": len(scheduler.get_jobs())})
    return scheduler


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
