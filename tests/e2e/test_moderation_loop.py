"""Moderation, as the moderator sees it in a real Teams client (issue 10, SPEC R10).

The Agents Playground (Playwright in Debian's Chromium) talks to the real bot. The person at
the keyboard is a QA lead who moderates: the month's request arrives 1:1, they open the
audit from it, read it, regrade it to Requires Improvement with a reason and an added
action, and the card shows what was decided. Screenshots are kept as artifacts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from flows.audit_form import submit
from flows.moderation import sample_month
from qa import form_rules as fr
from qa.periods import first_of_month
from qabot.services import Services
from store.models import AuditAction, Case, Moderation, Staff, Team

from .bots import allocated_audit, eventually, running_bot
from .playground import MockTenant, MockUser, PlaygroundPage, PlaygroundServer

MODERATOR = MockUser(id="user-id-0", name="Mo Lead", email="mo.lead@council.example",
                     aad_object_id="33333333-4444-5555-6666-777777777777")
CASE_REF = "C-005311"


@pytest.fixture
def mock_tenant() -> MockTenant:
    return MockTenant(bot_name="Case Audit QA").with_current_user(
        email=MODERATOR.email, name=MODERATOR.name, aad_object_id=MODERATOR.aad_object_id)


async def _seed(ctx: Services) -> int:
    """The moderator (a QA lead, at the keyboard), a case's team with its social worker and
    team manager, an auditor from another team, and an audit of the case."""
    today = ctx.clock().astimezone(ctx.framework.zone).date()
    async with ctx.sessions.begin() as s:
        theirs, other, qa = (Team(name="Assessment 3"), Team(name="Children in Care 1"),
                             Team(name="Quality Assurance"))
        s.add_all([theirs, other, qa])
        await s.flush()
        s.add(Staff(staff_id="S-TM", name="Tess Manager", email="tess.manager@council.example",
                    roles=["team_manager"], team_id=theirs.id))
        await s.flush()
        s.add_all([
            Staff(staff_id="S-SW", name="Sol Worker", email="sol.worker@council.example",
                  roles=["social_worker"], team_id=theirs.id, manager_id="S-TM"),
            Staff(staff_id="S-AA", name="Ada Auditor", email="ada.auditor@council.example",
                  roles=["team_manager"], team_id=other.id),
            Staff(staff_id="S-QA", name=MODERATOR.name, email=MODERATOR.email,
                  roles=["qa_lead"], team_id=qa.id),
        ])
        s.add(Case(case_ref=CASE_REF, team_id=theirs.id, social_worker_id="S-SW",
                   area="early_help", opened_on=date(2025, 4, 7), status="open"))
        return await allocated_audit(s, key="e2e:moderation", case_ref=CASE_REF, auditor_id="S-AA",
                                     team_id=theirs.id, area="early_help", today=today)


@pytest.fixture
async def qa_bot(bot_port: int, tmp_path: Path) -> AsyncIterator[tuple[Services, int]]:
    async with running_bot(bot_port, tmp_path) as ctx:
        yield ctx, await _seed(ctx)



async def test_moderator_regrades_an_audit_with_an_added_action(
    qa_bot: tuple[Services, int], playground: PlaygroundServer,
    playground_page: PlaygroundPage,
) -> None:
    ctx, audit_id = qa_bot
    ui = playground_page
    await ui.open()
    await ui.wait_for_first_bot_message(timeout_s=20)

    async def linked() -> bool:
        async with ctx.sessions() as s:
            return (await s.get(Staff, "S-QA")).teams_user_id == MODERATOR.id

    await eventually(linked, 10, "the moderator to be linked to their Teams account")

    # The auditor submits Good (in another chat); the month's sample gives it to Mo.
    tool = ctx.framework.tools["case_audit"]
    today = ctx.clock().astimezone(ctx.framework.zone).date()
    values = {fr.domain_id(d.key): "good" for d in tool.domains} | {
        fr.OVERALL: "good", fr.OUTCOMES: "met", fr.SW_TOOK_PART: "yes",
        fr.CHILD_CONTACTED: "under_12", fr.FAMILY_CONTACTED: "no", fr.SAFEGUARDING: "false",
        fr.STRENGTHS: "Regular visits; the child's routine is described well.",
        fr.WORRIES: "The plan has not been reviewed since the summer.",
        fr.BETTER: "Review the plan with the family."}
    submission, errors = fr.validate(values, tool=tool, framework=ctx.framework, today=today,
                                     owner_ids={"S-SW", "S-TM"})
    assert submission is not None, errors
    await submit(ctx, audit_id, "S-AA", submission)
    outcome = await sample_month(ctx, first_of_month(today), at=ctx.clock(), actor="e2e",
                                 seed=1)
    assert outcome.sampled == 1 and not outcome.unassigned

    invite = await ui.wait_for_card(containing="Audits to moderate", timeout_s=20)
    await ui.screenshot("moderation-request")
    assert CASE_REF in await invite.inner_text()
    await ui.click(f"Open {CASE_REF}", card=invite)
    card = await ui.wait_for_card(containing=f"Moderation: case {CASE_REF}", timeout_s=10)
    await ui.screenshot("moderation-card")
    text = await card.inner_text()
    assert "The plan has not been reviewed since the summer." in text and "Ada Auditor" in text

    # Regrade: overall Requires Improvement, a reason, an added action for the team manager.
    await ui.click("Regrade", card=card)
    await ui.pick("Overall grade", "Requires Improvement", card=card)
    await ui.fill("Why you regraded it", "The plan is out of date; drift since the summer.",
                  card=card)
    await ui.fill(card.get_by_label("Action 1: what needs doing"),
                  "Review the child's plan with the family")
    await ui.pick(card.get_by_role("combobox", name="Owner").first, "Tess Manager", card=card)
    await card.get_by_label("Due by").first.fill((today + timedelta(days=21)).isoformat())
    await ui.pick(card.get_by_role("combobox", name="Priority").first, "High", card=card)
    await ui.screenshot("regrade-filled", full_page=True)
    await ui.click("Record the regrade", card=card)
    done = await ui.wait_for_card(containing="Regraded: final grade Requires Improvement",
                                  timeout_s=10)
    await ui.screenshot("regraded")
    assert "Review the child's plan with the family" in await done.inner_text()

    async with ctx.sessions() as s:
        row = await s.scalar(select(Moderation))
        added = (await s.scalars(select(AuditAction))).all()
    assert (row.status, row.overall_grade, row.decided_by) == (
        "regraded", "requires_improvement", "S-QA")
    assert [(a.what, a.owner_id, a.priority) for a in added] == [
        ("Review the child's plan with the family", "S-TM", "high")]
