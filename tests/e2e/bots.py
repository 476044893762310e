"""The real QA bot for the end-to-end tests: on localhost, in local mode (the Playground sends
no token), on a migrated SQLite file, with the Lambeth-like framework; an audit allocated to
seed it with; and a small wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from qa.framework_file import bundled_framework_path, load_framework
from qabot.app import SERVICES, init_app
from qabot.services import Services
from qabot.settings import Settings
from store.db import upgrade
from store.models import AllocationRun, Audit


@asynccontextmanager
async def running_bot(port: int, workdir: Path) -> AsyncIterator[Services]:
    """The service on localhost:port until the block ends."""
    url = f"sqlite+aiosqlite:///{workdir / 'e2e.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(database_url=url, port=port, scheduler_enabled=False,
                        outbox_poll_seconds=0.2, log_format="text")
    app = init_app(settings, framework=load_framework(bundled_framework_path("lambeth_like")))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host="localhost", port=port).start()
    try:
        yield app[SERVICES]
    finally:
        await runner.cleanup()


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout_s: float,
                     what: str) -> None:
    """Wait until ``predicate()`` holds, polling every 0.1 s; fail naming ``what``."""
    for _ in range(int(timeout_s / 0.1)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def allocated_audit(s: AsyncSession, *, key: str, case_ref: str, auditor_id: str,
                          team_id: int, area: str, today: date) -> int:
    """An audit of ``case_ref`` allocated this month (deadline in 20 days), in a run of its
    own; returns its id."""
    run = AllocationRun(key=key, kind="monthly", month=f"{today:%Y-%m}", seed=1,
                        created_by="e2e", deadline=today + timedelta(days=20), summary={})
    s.add(run)
    await s.flush()
    audit = Audit(run_id=run.id, case_ref=case_ref, auditor_id=auditor_id, team_id=team_id,
                  area=area, tool="case_audit", month=f"{today:%Y-%m}", reason="random",
                  status="allocated", deadline=today + timedelta(days=20),
                  look_back_from=today - timedelta(days=180), look_back_to=today)
    s.add(audit)
    await s.flush()
    return int(audit.id)
