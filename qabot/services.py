"""The services: one frozen object holding everything a handler, job or command needs.

Built once by the app factory (``qabot.app.build_services``) and never changed after: no
field is filled in later and nothing lives in a module global. Handlers reach it as
``request.services``, jobs as their first argument, CLI commands from the factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from qa.calendar import WorkingCalendar
from qa.framework import Framework
from qabot.settings import Settings
from store.directory import Directory
from store.outbox import OutboxStore

if TYPE_CHECKING:
    from bot.outbox import OutboxSender
    from bot.router import Router
    from bot.teams import TeamsGateway
    from flows.base import SubmitHook
    from qabot.metrics import Metrics
    from scheduler.jobs import Job


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    framework: Framework
    calendar: WorkingCalendar
    #: The one clock: turns read it once at their start, jobs are handed their ``at``.
    clock: Callable[[], datetime]
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    directory: Directory
    outbox: OutboxStore
    #: Every flow's card verbs, commands and events, combined.
    router: Router
    #: Every flow's scheduled jobs, by name.
    jobs: Mapping[str, Job]
    #: Every flow's ``on_audit_submitted``, run in the submit's transaction, in FLOWS order.
    submit_hooks: tuple[SubmitHook, ...] = ()
    #: The Teams edge for proactive calls (roster, member lookups); None in a process that
    #: only queues (most CLI commands).
    teams: TeamsGateway | None = None
    #: The in-process outbox sender; None where another process delivers.
    sender: OutboxSender | None = None
    metrics: Metrics | None = None
    #: Work started by a turn that must not hold up its answer (opening 1:1 chats after a
    #: team install); awaited, or cancelled, when the services close.
    background: set[asyncio.Task[Any]] = field(default_factory=set, compare=False, repr=False)

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``work`` in the background; its failure is logged, never lost."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self.background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self.background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    def outbox_queued(self) -> None:
        """Wake the in-process sender after queueing, so delivery does not wait a poll."""
        if self.sender is not None:
            self.sender.notify()

    async def database_ok(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Let background work finish (briefly), then close the connection pool."""
        if self.background:
            _, pending = await asyncio.wait(set(self.background), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.engine.dispose()
