"""Shared fixtures: a migrated database per test (SQLite always, PostgreSQL when
TEST_DATABASE_URL is set), the application context, and the running service wired to
the fake Bot Connector."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from qa.framework import Framework
from qa.framework_file import bundled_framework_path, load_framework
from qabot.app import build_services
from qabot.services import Services
from qabot.settings import Settings
from store.db import make_engine, upgrade
from store.models import Base, utcnow

pytest_plugins = ["tests.fakes.fixtures"]

PG_URL = os.environ.get("TEST_DATABASE_URL", "")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must never reach the real network: only loopback connections are allowed."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and self.family in (socket.AF_INET, socket.AF_INET6) and not (
            host.startswith("127.") or host in ("localhost", "::1")
        ):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once, copy per test: migrations stay the only way the schema is made."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _pg_migrated() -> str:
    async def reset() -> None:
        engine = make_engine(PG_URL)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(reset())
    upgrade(PG_URL)
    return PG_URL


async def _truncate_pg(url: str) -> None:
    engine = make_engine(url)
    names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database URL for one test."""
    if request.param == "sqlite":
        path = tmp_path / "qabot.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    url = request.getfixturevalue("_pg_migrated")
    asyncio.run(_truncate_pg(url))
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """For tests about behaviour that does not depend on the database engine."""
    path = tmp_path / "qabot.db"
    shutil.copy(_sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def framework() -> Framework:
    return load_framework(bundled_framework_path("lambeth_like"))


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, outbox_poll_seconds=0.05, scheduler_enabled=False,
                    log_format="text")


class Clock:
    """The services' one clock in a test: the machine's time until a test sets it, then
    running on from the time set (a stopped clock would never let a retry fall due)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def set(self, now: datetime) -> None:
        self.offset = now - utcnow()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def ctx(settings: Settings, framework: Framework, clock: Clock) -> AsyncIterator[Services]:
    context = build_services(settings, framework, clock=clock)
    try:
        yield context
    finally:
        await context.close()


class Service:
    """The running bot (real app factory, real CloudAdapter) and its fake connector."""

    def __init__(self, client: object, ctx: Services, connector: object, clock: Clock) -> None:
        self.client = client
        self.ctx = ctx
        self.connector = connector
        self.clock = clock

    async def post(self, activity: dict) -> object:
        """POST an activity to /api/messages as Teams would."""
        return await self.client.post("/api/messages", json=activity)  # type: ignore[attr-defined]


@pytest.fixture
async def service(settings: Settings, framework: Framework, fake_connector: object,
                  clock: Clock) -> AsyncIterator[Service]:
    from aiohttp.test_utils import TestClient, TestServer

    from qabot.app import SERVICES, init_app

    app = init_app(settings, framework=framework, clock=clock)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Service(client, app[SERVICES], fake_connector, clock)
    finally:
        await _register_known(app[SERVICES], fake_connector)
        await client.close()


async def _register_known(services: Services, connector: object) -> None:
    """Tell the channel scan (tests/channel_scan.py) what case refs and names exist."""
    from sqlalchemy import select

    from store.models import Case, Staff, Team

    known = getattr(connector, "known", None)
    if known is None:
        return
    try:
        async with services.sessions() as session:
            known.case_refs |= set((await session.scalars(select(Case.case_ref))).all())
            known.staff_names |= set((await session.scalars(select(Staff.name))).all())
            known.labels |= set((await session.scalars(select(Team.name))).all())
    except Exception:  # the test may have dropped the database; the scan still runs
        pass


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "channel_scan_exempt: tests of the fake connector "
                                       "itself; its channel posts are not the bot's")
