"""What a scheduled job is, and the one entry point that runs it.

A job is a named, idempotent function of (services, as-of time) that returns a one-line
summary. Flows declare their jobs (``jobs = (Job(...),)`` in each ``flows/`` module); the app
factory collects them into ``Services.jobs``. The scheduler and ``qabot jobs run NAME --at
ISO`` both call :func:`run_job`, so what operations run by hand is exactly what the schedule
runs. Nothing here imports a flow.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time
from types import MappingProxyType
from typing import TYPE_CHECKING

from qabot.logs import correlation_id

if TYPE_CHECKING:
    from qa.framework import Schedule
    from qabot.services import Services

log = logging.getLogger(__name__)

JobFunc = Callable[["Services", datetime], Awaitable[str]]


@dataclass(frozen=True)
class Job:
    """A job and when it runs: daily at a time of the framework's schedule.

    Every job fires daily and decides as of its time whether today is its day (the monthly
    allocation acts from its working day on), so a service that was down catches up at the
    next run and a replay with ``--at`` is honest.
    """

    name: str
    summary: str
    run: JobFunc
    daily_at: Callable[[Schedule], time]


def job_table(jobs: Iterable[Job]) -> Mapping[str, Job]:
    """Jobs by name; a name used twice is a programming error, refused at start."""
    table: dict[str, Job] = {}
    for job in jobs:
        if job.name in table:
            raise ValueError(f"job {job.name!r} registered twice")
        table[job.name] = job
    return MappingProxyType(table)


class UnknownJob(KeyError):
    pass


async def run_job(services: Services, name: str, at: datetime) -> str:
    """Run one job as if at ``at``; errors are logged with the run's correlation id."""
    jobs = services.jobs
    if name not in jobs:
        raise UnknownJob(f"no job named {name!r}; known: {', '.join(sorted(jobs))}")
    if at.tzinfo is None:
        raise ValueError("the as-of time must carry a time zone")
    cid = f"job-{name}-{uuid.uuid4().hex[:8]}"
    token = correlation_id.set(cid)
    metrics = services.metrics
    try:
        log.info("job started", extra={"job": name, "as_of": at.isoformat()})
        result = await jobs[name].run(services, at)
        log.info("job finished", extra={"job": name, "result": result})
        if metrics is not None:
            metrics.record_job_run(name, "ok")
        services.outbox_queued()
        return result
    except Exception:
        log.exception("job failed", extra={"job": name})
        if metrics is not None:
            metrics.record_job_run(name, "failed")
        raise
    finally:
        correlation_id.reset(token)
