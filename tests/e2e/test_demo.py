"""``make demo`` as a newcomer meets it: the real launcher, headless, in the Agents Playground.

The test runs ``scripts/demo.py`` (what ``make demo`` runs) as its own process on free ports,
opens the page it prints in Debian's Chromium, and finds what a newcomer should find within
a minute: the welcome, their allocation card and the month's QA summary (held for them until
opening the page linked them). It then walks the first hour: ``status``, the audit form with
its folded questions and one-at-a-time action rows, a refused submit with what to fix next to
Submit, and a saved draft. Screenshots of the summary, status and the form (before and after
the refused submit) are kept in tests/e2e/artifacts/ (``test_demo-NN-*.png``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Locator

from .playground import ARTIFACTS_DIR, PlaygroundPage, free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.py"
_OPEN = re.compile(r"Open (http://localhost:\d+/) in your browser")


class Demo:
    """The demo launcher's process and what it printed."""

    def __init__(self, process: asyncio.subprocess.Process, workdir: Path) -> None:
        self.process = process
        self.workdir = workdir
        self.lines: list[str] = []

    async def read_until(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(),
                                             deadline - time.monotonic())
            except TimeoutError:
                break
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            found = pattern.search(line)
            if found:
                return found
        raise AssertionError("the demo never said it was ready:\n" + "\n".join(self.lines))

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(self.workdir / "demo.db")) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture
async def demo(e2e_ready: None, tmp_path: Path) -> AsyncIterator[Demo]:
    """``scripts/demo.py`` on free ports and a fresh folder; stopped by its pid."""
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Microsoft", "QABOT_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(DEMO), "--port", str(free_port()), "--ui-port", str(free_port()),
        "--data-dir", str(workdir), cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    running = Demo(process, workdir)
    try:
        yield running
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                await process.wait()


async def shot(ui: PlaygroundPage, target: Locator, name: str) -> Path:
    """A screenshot of one card, whole: the viewport is made tall enough to hold it."""
    ui._shots += 1
    path = ARTIFACTS_DIR / f"{ui.prefix}-{ui._shots:02d}-{name}.png"
    box = await target.bounding_box()
    height = int(box["height"]) + 400 if box else 900
    await ui.page.set_viewport_size({"width": 1280, "height": max(900, min(height, 12000))})
    await target.scroll_into_view_if_needed()
    await asyncio.sleep(0.3)
    await target.screenshot(path=str(path), timeout=15_000)
    await ui.page.set_viewport_size({"width": 1280, "height": 900})
    return path


async def clip(ui: PlaygroundPage, top: Locator, bottom: Locator, name: str) -> Path:
    """A screenshot from one element down to another, at full size (to read the details)."""
    await bottom.scroll_into_view_if_needed()
    await asyncio.sleep(0.3)
    a, b = await top.bounding_box(), await bottom.bounding_box()
    assert a and b
    ui._shots += 1
    path = ARTIFACTS_DIR / f"{ui.prefix}-{ui._shots:02d}-{name}.png"
    y = max(0.0, a["y"] - 16)
    await ui.page.screenshot(path=str(path), clip={
        "x": max(0.0, min(a["x"], b["x"]) - 16), "y": y, "width": 520,
        "height": min(900.0, b["y"] + b["height"] + 16 - y)})
    return path


async def test_make_demo_gives_a_newcomer_an_allocation_and_the_first_hour(
    demo: Demo, chromium: BrowserContext
) -> None:
    started = time.monotonic()
    url = (await demo.read_until(_OPEN, timeout_s=60)).group(1)
    said = "\n".join(demo.lines)
    assert "imported demo/staff.csv: staff: 36 added" in said
    assert "imported demo/cases.csv: cases: 48 added" in said
    assert re.search(r"allocated 17 audit\(s\) to 17 auditor\(s\).*0 shortfall", said), said

    for stale in ARTIFACTS_DIR.glob("test_demo-[0-9][0-9]-*.png"):
        stale.unlink()
    page = await chromium.new_page()
    page.set_default_timeout(15_000)
    ui = PlaygroundPage(page, url, prefix="test_demo")
    await ui.open()
    welcome = await ui.wait_for_first_bot_message(timeout_s=20)
    assert "case audit" in welcome.lower()

    # Held until opening the page linked Sam Rivers; then delivered at once.
    card = await ui.wait_for_card(containing="Your case audits for", timeout_s=30)
    assert time.monotonic() - started < 60, "a newcomer should see it within a minute"
    await shot(ui, card, "allocation-card")
    summary = await ui.wait_for_card(containing="Case audit allocation", timeout_s=20)
    assert await summary.get_by_text("Area of planning", exact=True).count() == 1
    text = await summary.inner_text()
    assert "Not linked to Teams yet (16)" in text  # the others are not linked yet...
    assert "Sam Rivers" not in text  # ...and the reader is never told about themselves
    await shot(ui, summary, "allocation-summary")

    await ui.send("status")
    status = await ui.wait_for_card(containing="Audit completion", timeout_s=15)
    assert await status.get_by_text("Auditor's team", exact=True).count() == 1
    await shot(ui, status, "status")

    await ui.click("Open audit form", card=card)
    form = await ui.wait_for_card(containing="Grade each domain", timeout_s=15)
    first_question = "Does the child have a suitable, current assessment?"
    assert not await form.get_by_text(first_question).is_visible()  # folded
    await form.get_by_role("button", name="Guiding questions").first.click()
    await form.get_by_text(first_question).wait_for(state="visible")
    assert not await form.get_by_label("What needs to happen").first.is_visible()  # no rows
    await form.get_by_role("button", name="Add an action").click()
    await form.get_by_label("What needs to happen").first.wait_for(state="visible")
    assert await form.get_by_role("button", name="Add another action").first.is_visible()
    await shot(ui, form, "form-before-submit")
    await clip(ui, form.get_by_text("Grade each domain"),
               form.get_by_role("button", name="Guiding questions").nth(2), "form-top")

    await ui.fill("What is working well (strengths)", "Clear plan, reviewed on time",
                  card=form)
    await ui.click("Submit audit", card=form)
    form = await ui.wait_for_card(containing="Before you can submit, fix these", timeout_s=15)
    submit = form.get_by_role("button", name="Submit audit")
    last_fix = form.locator("li", has_text="Was the family contacted?").last
    fix_box, submit_box = await last_fix.bounding_box(), await submit.bounding_box()
    assert fix_box and submit_box  # the list of what to fix ends right above Submit:
    assert 0 < submit_box["y"] - (fix_box["y"] + fix_box["height"]) < 120
    assert await form.get_by_label("What is working well (strengths)").input_value() == (
        "Clear plan, reviewed on time")
    await shot(ui, form, "form-after-refused-submit")
    await clip(ui, form.get_by_text("Before you can submit, fix these"), submit,
               "form-what-to-fix-by-submit")

    await ui.click("Save draft", card=form)
    form = await ui.wait_for_card(containing="Draft saved", timeout_s=15)
    saved, save = form.get_by_text("Draft saved"), form.get_by_role("button", name="Save draft")
    saved_box, save_box = await saved.bounding_box(), await save.bounding_box()
    assert saved_box and save_box and 0 < save_box["y"] - saved_box["y"] < 300  # where clicked

    linked = demo.query("SELECT teams_user_id FROM staff WHERE staff_id = 'D900'")
    assert linked == [("user-id-0",)]
    assert demo.query("SELECT status, count(*) FROM outbox WHERE staff_id = 'D900' "
                      "GROUP BY status") == [("sent", 2)]

    # The team: opening its channel installs the bot there, which links the members it
    # can (the Playground's mock tenant: five colleagues) and opens their 1:1 chats.
    await page.get_by_role("treeitem", name=re.compile("General")).first.click()
    linked: list[tuple[object, ...]] = []
    for _ in range(150):
        linked = demo.query("SELECT staff_id FROM staff WHERE teams_user_id IS NOT NULL "
                            "ORDER BY staff_id")
        chats = demo.query("SELECT count(*) FROM conversations WHERE kind = 'personal' "
                           "AND staff_id IS NOT NULL")
        helen = demo.query("SELECT status, count(*) FROM outbox WHERE staff_id = 'D100' "
                           "GROUP BY status")
        if len(linked) == 6 and chats == [(6,)] and helen == [("sent", 1)]:
            break
        await asyncio.sleep(0.2)
    assert [r[0] for r in linked] == sorted(["D900", "D100", "D200", "D111", "D211", "D910"])
    assert chats == [(6,)]
    assert helen == [("sent", 1)]  # Helen's allocation card went once she was linked

    demo.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(demo.process.wait(), 20) == 0
    await demo.read_until(re.compile("demo stopped"), timeout_s=5)
