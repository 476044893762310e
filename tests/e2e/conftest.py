"""Fixtures for end-to-end tests in the Agents Playground.

A test that drives the UI typically asks for ``bot_port`` (to serve its bot on), overrides
``mock_tenant`` if the person at the keyboard must be a particular auditor, starts its bot, then
uses ``playground_page`` (opening it only once the bot is up, because opening the page is what
makes the Playground send the install events the bot welcomes).

Every process started here is stopped in teardown by pid. On failure the last screen and the
Playground's log are copied to ``tests/e2e/artifacts/`` so a CI failure can be read without a
rerun.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, async_playwright

from .playground import (
    ARTIFACTS_DIR,
    MockTenant,
    PlaygroundPage,
    PlaygroundServer,
    e2e_available,
    free_port,
    launch_offline_chromium,
    start_playground,
)

logger = logging.getLogger(__name__)


_E2E_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``e2e`` marker here (not in pyproject) so ``-m e2e``/``-m "not e2e"`` work."""
    config.addinivalue_line("markers", "e2e: drives the Agents Playground in headless Chromium")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e as ``e2e`` (this hook sees the whole session's items)."""
    for item in items:
        if _E2E_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Record each phase's report on the item so fixture teardown can tell if the test failed."""
    report = yield
    setattr(item, f"e2e_report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "e2e_report_call", None)
    return report is None or report.failed


def _slug(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")


@pytest.fixture
def e2e_ready() -> None:
    """Skip, with the reason, when node, Chromium or the Playground package is missing."""
    reason = e2e_available()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def bot_port(e2e_ready: None) -> int:
    """A free localhost port for the test's bot; the Playground is pointed at it."""
    return free_port()


@pytest.fixture
def mock_tenant() -> MockTenant:
    """The Playground's tenant. Override in a test module, e.g. with
    ``MockTenant().with_current_user(email=..., name=..., aad_object_id=...)``."""
    return MockTenant()


@pytest.fixture
async def playground(
    e2e_ready: None,
    bot_port: int,
    mock_tenant: MockTenant,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[PlaygroundServer]:
    """A running Playground pointed at ``http://localhost:{bot_port}/api/messages``."""
    server = await start_playground(bot_port, mock_tenant, tmp_path / "playground", timeout_s=30.0)
    try:
        yield server
    finally:
        await server.stop()
        if _failed(request):
            ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
            target = ARTIFACTS_DIR / f"{_slug(request)}-playground.log"
            if server.log_path.exists():
                shutil.copyfile(server.log_path, target)
                logger.info("playground log copied to %s", target)


@pytest.fixture
async def chromium(e2e_ready: None, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium, headless, fresh profile, every non-localhost request aborted."""
    async with async_playwright() as pw:
        context = await launch_offline_chromium(pw, tmp_path / "chromium-profile")
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
async def playground_page(
    playground: PlaygroundServer, chromium: BrowserContext, request: pytest.FixtureRequest
) -> AsyncIterator[PlaygroundPage]:
    """A tab on the Playground UI, not yet loaded: call ``await page.open()`` once the bot runs."""
    prefix = _slug(request)
    # Old screenshots of this test would mix with the new storyboard; other tests' are kept.
    for stale in [
        *ARTIFACTS_DIR.glob(f"{prefix}-[0-9][0-9]-*.png"),
        *ARTIFACTS_DIR.glob(f"{prefix}-playground.log"),
    ]:
        stale.unlink()
    page = await chromium.new_page()
    page.set_default_timeout(10_000)
    ui = PlaygroundPage(page, playground.url, prefix=prefix)
    try:
        yield ui
    finally:
        if _failed(request) and not page.is_closed():
            try:
                path = await ui.screenshot("FAILED")
                logger.error("failure screenshot: %s; bot said: %s", path, await ui.bot_texts())
            except Exception:  # noqa: BLE001 - evidence is best-effort; never mask the failure
                logger.exception("could not take the failure screenshot")
        await page.close()
