"""After the audit, as the case's social worker sees it in a real Teams client (issue 9).

The Agents Playground (Playwright in Debian's Chromium) talks to the real bot. The person at
the keyboard is the social worker of an audited case: the findings arrive 1:1 with Part B
to record; they record it on the card, then ask for their actions and mark one done from
its card.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from flows.audit_form import submit
from qa import form_rules as fr
from qabot.services import Services
from store.models import AuditAction, Case, PartB, Staff, Team

from .bots import allocated_audit, eventually, running_bot
from .playground import MockTenant, MockUser, PlaygroundPage, PlaygroundServer

WORKER = MockUser(id="user-id-0", name="Sita Worker", email="sita.worker@council.example",
                  aad_object_id="22222222-3333-4444-5555-666666666666")
CASE_REF = "C-004218"


@pytest.fixture
def mock_tenant() -> MockTenant:
    return MockTenant(bot_name="Case Audit QA").with_current_user(
        email=WORKER.email, name=WORKER.name, aad_object_id=WORKER.aad_object_id)


async def _seed(ctx: Services) -> int:
    """The social worker (at the keyboard), their team manager, an auditor from another
    team, and an audit of one of the worker's cases allocated to the auditor."""
    today = ctx.clock().astimezone(ctx.framework.zone).date()
    async with ctx.sessions.begin() as s:
        theirs, other = Team(name="Children in Care 2"), Team(name="Assessment 1")
        s.add_all([theirs, other])
        await s.flush()
        s.add(Staff(staff_id="S-TM", name="Theo Manager", email="theo.manager@council.example",
                    roles=["team_manager"], team_id=theirs.id))
        await s.flush()
        s.add_all([
            Staff(staff_id="S-SW", name=WORKER.name, email=WORKER.email.upper(),
                  roles=["social_worker"], team_id=theirs.id, manager_id="S-TM"),
            Staff(staff_id="S-AA", name="Ann Auditor", email="ann.auditor@council.example",
                  roles=["team_manager"], team_id=other.id),
        ])
        s.add(Case(case_ref=CASE_REF, team_id=theirs.id, social_worker_id="S-SW",
                   area="children_in_care", opened_on=date(2025, 2, 3), status="open"))
        return await allocated_audit(s, key="e2e:after", case_ref=CASE_REF, auditor_id="S-AA",
                                     team_id=theirs.id, area="children_in_care", today=today)


@pytest.fixture
async def qa_bot(bot_port: int, tmp_path: Path) -> AsyncIterator[tuple[Services, int]]:
    async with running_bot(bot_port, tmp_path) as ctx:
        yield ctx, await _seed(ctx)



async def test_social_worker_records_part_b_and_closes_an_action_from_its_card(
    qa_bot: tuple[Services, int], playground: PlaygroundServer,
    playground_page: PlaygroundPage,
) -> None:
    ctx, audit_id = qa_bot
    ui = playground_page
    await ui.open()
    await ui.wait_for_first_bot_message(timeout_s=20)

    async def linked() -> bool:
        async with ctx.sessions() as s:
            return (await s.get(Staff, "S-SW")).teams_user_id == WORKER.id

    await eventually(linked, 10, "the social worker to be linked to their Teams account")

    # The auditor submits (in another chat): Requires Improvement with an action for Sita.
    tool = ctx.framework.tools["case_audit"]
    today = ctx.clock().astimezone(ctx.framework.zone).date()
    values = {fr.domain_id(d.key): "requires_improvement" for d in tool.domains} | {
        fr.OVERALL: "requires_improvement", fr.OUTCOMES: "on_the_way", fr.SW_TOOK_PART: "yes",
        fr.CHILD_CONTACTED: "under_12", fr.FAMILY_CONTACTED: "no", fr.SAFEGUARDING: "false",
        fr.STRENGTHS: "Visits are regular and recorded.", fr.WORRIES: "No contingency plan.",
        fr.BETTER: "Write the contingency plan with the carers.",
        fr.action_id(1, "what"): "Write the contingency plan", fr.action_id(1, "owner"): "S-SW",
        fr.action_id(1, "due"): (today + timedelta(days=14)).isoformat(),
        fr.action_id(1, "priority"): "high"}
    submission, errors = fr.validate(values, tool=tool, framework=ctx.framework, today=today,
                                     owner_ids={"S-SW", "S-TM"})
    assert submission is not None, errors
    await submit(ctx, audit_id, "S-AA", submission)

    findings = await ui.wait_for_card(containing="Audit findings", timeout_s=20)
    await ui.screenshot("findings-with-part-b")
    assert "No contingency plan." in await findings.inner_text()

    # Part B on the card: agree, reflections, send.
    await asyncio.sleep(0.4)  # let the new card settle before choosing (field note)
    await findings.get_by_role("radio", name="Yes, I agree with the findings").check()
    await ui.fill("Your reflections", "Agreed; plan drafted with the carers this week.",
                  card=findings)
    await ui.click("Send my response", card=findings)
    await ui.wait_for_card(containing="You agreed with the findings", timeout_s=10)
    await ui.screenshot("part-b-recorded")
    async with ctx.sessions() as s:
        row = await s.scalar(select(PartB).where(PartB.staff_id == "S-SW"))
    assert row.status == "submitted" and row.agrees is True
    assert row.reflections == "Agreed; plan drafted with the carers this week."

    # Their actions, and one marked done from its card.
    await ui.send("my actions")
    todo = await ui.wait_for_card(containing="Your actions", timeout_s=10)
    await ui.screenshot("my-actions")
    await ui.click("Done", card=todo)
    await ui.fill("What was done (optional)", "Plan written and shared with the carers.",
                  card=todo)
    await ui.click("Mark it done", card=todo)
    done = await ui.wait_for_card(containing="Done: Write the contingency plan", timeout_s=10)
    await ui.screenshot("action-done")
    assert "Nothing is waiting on you" in await done.inner_text()
    async with ctx.sessions() as s:
        action = await s.scalar(select(AuditAction))
    assert (action.status, action.done_by) == ("done", "S-SW")
    assert action.done_note == "Plan written and shared with the carers."
