"""The job registry: named, idempotent functions of (context, as-of time).

The scheduler and ``qabot jobs run NAME --at ISO`` call the same entry point,
:func:`run_job`, so what operations run by hand is exactly what the schedule runs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.triggers.base import BaseTrigger

from qabot.logs import correlation_id
from qabot.metrics import record_job_run

if TYPE_CHECKING:
    from qa.framework import Framework
    from qabot.context import AppContext

log = logging.getLogger(__name__)

JobFunc = Callable[["AppContext", datetime], Awaitable[str]]
TriggerFactory = Callable[["Framework"], BaseTrigger]


@dataclass(frozen=True)
class Job:
    name: str
    summary: str
    func: JobFunc
    trigger: TriggerFactory


_REGISTRY: dict[str, Job] = {}


def job(name: str, summary: str, trigger: TriggerFactory) -> Callable[[JobFunc], JobFunc]:
    """Register a job definition (definitions only: no state lives here)."""

    def register(func: JobFunc) -> JobFunc:
        if name in _REGISTRY:
            raise ValueError(f"job {name!r} registered twice")
        _REGISTRY[name] = Job(name, summary, func, trigger)
        return func

    return register


def all_jobs() -> dict[str, Job]:
    import scheduler.definitions  # noqa: F401  (registers the jobs)

    return dict(_REGISTRY)


class UnknownJob(KeyError):
    pass


async def run_job(ctx: AppContext, name: str, at: datetime) -> str:
    """Run one job as if at ``at``; errors are logged with the run's correlation id."""
    jobs = all_jobs()
    if name not in jobs:
        raise UnknownJob(f"no job named {name!r}; known: {', '.join(sorted(jobs))}")
    if at.tzinfo is None:
        raise ValueError("the as-of time must carry a time zone")
    cid = f"job-{name}-{uuid.uuid4().hex[:8]}"
    token = correlation_id.set(cid)
    try:
        log.info("job started", extra={"job": name, "as_of": at.isoformat()})
        result = await jobs[name].func(ctx, at)
        log.info("job finished", extra={"job": name, "result": result})
        record_job_run(ctx, name, "ok")
        ctx.outbox_queued()
        return result
    except Exception:
        log.exception("job failed", extra={"job": name})
        record_job_run(ctx, name, "failed")
        raise
    finally:
        correlation_id.reset(token)
