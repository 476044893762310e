"""The application context: one place that owns the engine, stores and Teams gateway.

Built by a factory (no module globals) and reached by handlers through
``Request.ctx``, by jobs as their first argument, and by CLI commands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from qa.calendar import WorkingCalendar
from qa.framework import Framework, bundled_framework_path, load_framework
from qabot.settings import Settings
from store.db import make_engine, make_sessionmaker
from store.directory import Directory
from store.models import utcnow
from store.outbox import OutboxStore

if TYPE_CHECKING:
    from bot.outbox import OutboxSender
    from bot.router import Router
    from bot.teams import TeamsGateway


def load_configured_framework(settings: Settings) -> Framework:
    """The framework file named by QABOT_FRAMEWORK, else the bundled Lambeth-like one."""
    return load_framework(settings.framework_path or bundled_framework_path("lambeth_like"))


@dataclass
class AppContext:
    settings: Settings
    framework: Framework
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    directory: Directory
    outbox: OutboxStore
    calendar: WorkingCalendar
    clock: Callable[[], datetime] = utcnow
    gateway: TeamsGateway | None = None
    sender: OutboxSender | None = None
    router: Router | None = None
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, framework: Framework | None = None,
               clock: Callable[[], datetime] = utcnow) -> AppContext:
        framework = framework or load_configured_framework(settings)
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        return cls(
            settings=settings,
            framework=framework,
            engine=engine,
            sessions=sessions,
            directory=Directory(sessions),
            outbox=OutboxStore(sessions),
            calendar=WorkingCalendar(framework.calendar.region, framework.calendar.extra_closures),
            clock=clock,
        )

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

    async def close(self) -> None:
        await self.engine.dispose()
