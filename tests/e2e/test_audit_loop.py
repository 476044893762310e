"""The monthly audit loop as an auditor sees it, in a real Teams client.

The Agents Playground (driven by Playwright in Debian's Chromium) talks to the real bot
(app factory, CloudAdapter, SQLite, outbox, allocation job). The person at the keyboard
is an auditor: they receive the month's allocation, open the form, submit it with a rule
broken, see the error next to the field with their entries kept, fix it, submit, and see
the read-only summary that replaces the form.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from qabot.services import Services
from scheduler.jobs import run_job
from store.models import Audit, Case, Staff, Team

from .bots import eventually, running_bot
from .playground import MockTenant, MockUser, PlaygroundPage, PlaygroundServer

log = logging.getLogger(__name__)

AUDITOR = MockUser(id="user-id-0", name="Ann Auditor", email="ann.auditor@council.example",
                   aad_object_id="11111111-2222-3333-4444-555555555555")
CASE_REF = "C-004217"
ALLOCATION_AT = datetime(2026, 12, 1, 9, 0, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture
def mock_tenant() -> MockTenant:
    return MockTenant(bot_name="Case Audit QA").with_current_user(
        email=AUDITOR.email, name=AUDITOR.name, aad_object_id=AUDITOR.aad_object_id)


async def _seed(ctx: Services) -> None:
    """One auditor (the person at the keyboard) and one open case in another team."""
    async with ctx.sessions.begin() as session:
        mine, theirs, qa = Team(name="Assessment 1"), Team(name="Children in Care 2"), Team(name="QA")
        session.add_all([mine, theirs, qa])
        await session.flush()
        session.add_all([
            Staff(staff_id="S-AA", name=AUDITOR.name, email=AUDITOR.email.upper(),
                  roles=["team_manager"], team_id=mine.id),
            Staff(staff_id="S-TM", name="Theo Manager", email="theo.manager@council.example",
                  roles=["team_manager"], team_id=theirs.id),
            Staff(staff_id="S-SW", name="Sita Worker", email="sita.worker@council.example",
                  roles=["social_worker"], team_id=theirs.id, manager_id="S-TM"),
            Staff(staff_id="S-QA", name="Quinn Lead", email="quinn.lead@council.example",
                  roles=["qa_lead"], team_id=qa.id),
        ])
        await session.flush()
        session.add(Case(case_ref=CASE_REF, team_id=theirs.id, social_worker_id="S-SW",
                         area="children_in_care", opened_on=date(2025, 2, 3), status="open",
                         tags=["neglect"]))


@pytest.fixture
async def qa_bot(bot_port: int, tmp_path: Path) -> AsyncIterator[Services]:
    """The real service on localhost:bot_port, in local mode, on a migrated SQLite file."""
    async with running_bot(bot_port, tmp_path) as ctx:
        await _seed(ctx)
        yield ctx


async def _linked(ctx: Services) -> bool:
    async with ctx.sessions() as session:
        staff = await session.get(Staff, "S-AA")
        return staff is not None and staff.teams_user_id == AUDITOR.id



async def test_auditor_gets_allocation_fixes_a_broken_rule_and_submits(
    qa_bot: Services, playground: PlaygroundServer, playground_page: PlaygroundPage
) -> None:
    ctx, ui = qa_bot, playground_page

    # Opening Teams installs the bot: it links the auditor by email and welcomes them.
    await ui.open()
    welcome = await ui.wait_for_first_bot_message(timeout_s=20)
    assert "Team manager" in welcome or "case audit" in welcome.lower()
    await eventually(lambda: _linked(ctx), 10, "the auditor to be linked to their Teams account")
    await ui.screenshot("welcome")

    # The month's allocation runs (as the scheduler would on the first working day).
    summary = await run_job(ctx, "allocation", ALLOCATION_AT)
    assert "1 audit" in summary or "allocated" in summary
    card = await ui.wait_for_card(containing=CASE_REF, timeout_s=15)
    await ui.screenshot("allocation-card")

    # The button opens the form in place of the allocation card.
    await ui.click("Open audit form", card=card)
    form = await ui.wait_for_card(containing="Grade each domain", timeout_s=10)
    await ui.screenshot("form-opened")

    tool = ctx.framework.tool_for_area("children_in_care")
    for domain in tool.domains:
        await ui.pick(f"{domain.title}: grade", "Good", card=form)
    await ui.pick("Overall grade", "Good", card=form)
    await ui.pick("Are the child's outcomes met?", "Not met", card=form)  # the broken rule
    await ui.pick("Did the social worker take part?", "Yes", card=form)
    await ui.pick("Was the child (12 or over) contacted?", "Not expected: child under 12", card=form)
    await ui.pick("Was the family contacted?", "No", card=form)
    await ui.fill("What is working well (strengths)", "Plan is clear and reviewed on time",
                  card=form)
    await ui.screenshot("form-filled-with-a-rule-broken")
    await ui.click("Submit audit", card=form)

    # The form comes back with the error next to the overall grade and every entry kept.
    form = await ui.wait_for_card(containing="fixing before you can submit", timeout_s=10)
    await ui.wait_for_bot_text("is not possible when the")
    assert await form.get_by_label("What is working well (strengths)").input_value() == (
        "Plan is clear and reviewed on time")
    first_domain = form.get_by_role("combobox", name=f"{tool.domains[0].title}: grade")
    assert "Good" in (await first_domain.inner_text() or await first_domain.input_value())
    await form.get_by_text("is not possible when the").first.scroll_into_view_if_needed()
    await ui.screenshot("form-rejected-with-error")
    async with ctx.sessions() as session:
        audit = (await session.execute(Audit.__table__.select())).one()
    assert audit.status == "allocated"  # nothing was submitted

    # The auditor fixes it and submits: the form is replaced by a read-only summary.
    await ui.pick("Are the child's outcomes met?", "Met", card=form)
    await ui.click("Submit audit", card=form)
    summary_card = await ui.wait_for_card(containing="Submitted", timeout_s=10)
    await ui.wait_for_bot_text("Thank you")
    assert await summary_card.get_by_role("button", name="Submit audit").count() == 0
    assert await summary_card.get_by_role("combobox").count() == 0
    await ui.screenshot("summary")
    async with ctx.sessions() as session:
        audit = (await session.execute(Audit.__table__.select())).one()
    assert (audit.status, audit.overall_grade, audit.outcomes) == ("submitted", "good", "met")
