"""The audit form (SPEC R5) through the running service, plus its cards as pure functions.

Service tests POST Action.Execute invokes to /api/messages and read the card that
replaces the clicked one from the invoke response (``body["value"]``). Audit rows are made
directly here, so these tests do not depend on the allocation code.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from cards import audit_form as cards
from cards.common import notice_card, teams_findings
from cards.payloads import OpenAudit, SaveDraft, SubmitAudit
from qa import form_rules as fr
from qa.framework import Framework, Tool
from qa.framework_file import bundled_framework_path, load_framework
from qabot.services import Services
from store.models import (
    AllocationRun,
    Audit,
    AuditAction,
    AuditLogEntry,
    Case,
    DomainGrade,
    OutboxMessage,
    Staff,
    Team,
)
from tests.fakes import User, card_action, message, personal_conversation_id

AUDITOR = User.named("Alex Auditor")
OTHER = User.named("Olly Other")
LEAD = User.named("Quinn Lead")
DELEGATE = User.named("Dee Delegate")
STRANGER = User.named("Not Staff")
CASE = "C-1001"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
SNAPSHOTS = Path(__file__).parent / "snapshots"


# ---------------------------------------------------------------------------- helpers


def _today(ctx: Services) -> date:
    return ctx.clock().astimezone(ctx.framework.zone).date()


async def seed(ctx: Services, *, area: str = "early_help", tool: str = "case_audit") -> int:
    """Teams, staff, one case and one allocated audit of it by AUD1; returns the audit id."""
    today = _today(ctx)

    def staff(staff_id: str, name: str, roles: list[str], team: Team, user: User | None = None,
              manager: str | None = None) -> Staff:
        return Staff(staff_id=staff_id, name=name, roles=roles, team_id=team.id,
                     email=user.email if user else f"{staff_id.lower()}@council.example",
                     manager_id=manager, active=True,
                     teams_user_id=user.id if user else None,
                     aad_object_id=user.aad_object_id if user else None)

    async with ctx.sessions.begin() as s:
        case_team, audit_team, qa_team, far_team = (
            Team(name="Referral and Assessment 1"), Team(name="Children in Care 2"),
            Team(name="Quality Assurance"), Team(name="Disabled Children"))
        s.add_all([case_team, audit_team, qa_team, far_team])
        await s.flush()
        s.add_all([
            staff("TM1", "Tia Manager", ["team_manager"], case_team),
            staff("TM2", "Ted Manager", ["team_manager"], case_team),
            staff("SW1", "Sam Worker", ["social_worker"], case_team, manager="TM1"),
            staff("AUD1", AUDITOR.name, ["team_manager"], audit_team, AUDITOR),
            staff("OTH1", OTHER.name, ["team_manager"], audit_team, OTHER),
            staff("QA1", LEAD.name, ["qa_lead"], qa_team, LEAD),
            staff("DEL1", DELEGATE.name, ["advanced_practitioner"], far_team, DELEGATE),
        ])
        await s.flush()
        s.add(Case(case_ref=CASE, team_id=case_team.id, social_worker_id="SW1", area=area,
                   opened_on=date(2025, 1, 6), status="open", tags=[]))
        run = AllocationRun(key="test:run", kind="monthly", month=f"{today:%Y-%m}", seed=7,
                            created_by="test", deadline=today + timedelta(days=21), summary={})
        s.add(run)
        await s.flush()
        audit = Audit(run_id=run.id, case_ref=CASE, auditor_id="AUD1", team_id=case_team.id,
                      area=area, tool=tool, month=f"{today:%Y-%m}", reason="random",
                      status="allocated", deadline=today + timedelta(days=21),
                      look_back_from=today - timedelta(days=182), look_back_to=today)
        s.add(audit)
        await s.flush()
        return audit.id


async def click(service: Any, verb: str, data: dict[str, Any], user: User = AUDITOR
                ) -> dict[str, Any]:
    """Press an Action.Execute button; returns the card that replaces the clicked one."""
    resp = await service.post(card_action(verb, data, user=user,
                                          service_url=service.connector.url))
    assert resp.status == 200
    body = await resp.json()
    assert body["statusCode"] == 200 and body["type"] == CARD_TYPE
    card = body["value"]
    assert teams_findings(card) == []
    return card


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def inputs(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in walk(card) if str(e.get("type", "")).startswith("Input.")}


def executes(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in walk(card) if e.get("type") == "Action.Execute"]


def texts(card: dict[str, Any]) -> str:
    return "\n".join(e["text"] for e in walk(card) if e.get("type") == "TextBlock")


def error_under(card: dict[str, Any], input_id: str) -> str | None:
    """The red note directly under an input (the next element in the same list), if any."""
    for node in walk(card):
        for key in ("body", "items"):
            siblings = node.get(key)
            if not isinstance(siblings, list):
                continue
            for i, element in enumerate(siblings):
                if isinstance(element, dict) and element.get("id") == input_id:
                    after = siblings[i + 1] if i + 1 < len(siblings) else {}
                    if after.get("type") == "TextBlock" and after.get("color") == "attention":
                        return str(after["text"])
                    return None
    raise AssertionError(f"no input {input_id!r} on the card")


def good_form(tool: Tool, **changes: str) -> dict[str, str]:
    values = {fr.domain_id(d.key): "good" for d in tool.domains}
    values |= {fr.OVERALL: "good", fr.OUTCOMES: "met", fr.SW_TOOK_PART: "yes",
               fr.CHILD_CONTACTED: "yes", fr.FAMILY_CONTACTED: "yes",
               fr.FEEDBACK: "Felt listened to.", fr.SAFEGUARDING: "false",
               fr.STRENGTHS: "Warm, consistent relationship with the family."}
    values |= {k.replace("__", "."): v for k, v in changes.items()}
    return values


def action_row(n: int, due: date, *, owner: str = "SW1", what: str = "Update the plan",
               priority: str = "high") -> dict[str, str]:
    return {fr.action_id(n, "what"): what, fr.action_id(n, "owner"): owner,
            fr.action_id(n, "due"): due.isoformat(), fr.action_id(n, "priority"): priority}


async def audit_row(ctx: Services, audit_id: int) -> Audit:
    async with ctx.sessions() as s:
        audit = await s.get(Audit, audit_id)
        assert audit is not None
        return audit


async def count(ctx: Services, model: Any, *where: Any) -> int:
    async with ctx.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def log_actions(ctx: Services) -> list[str]:
    """Audit-log entries about audits and their actions (not conversations and the like)."""
    async with ctx.sessions() as s:
        return list(await s.scalars(
            select(AuditLogEntry.action)
            .where(AuditLogEntry.entity.in_(("audit", "audit_action")))
            .order_by(AuditLogEntry.id)))


def lambeth_tool(ctx: Services) -> Tool:
    return ctx.framework.tools["case_audit"]


# ---------------------------------------------------------------------------- open


async def test_open_shows_every_domain_of_the_cases_tool(service: Any) -> None:
    ctx = service.ctx
    audit_id = await seed(ctx)
    card = await click(service, OpenAudit.verb, OpenAudit(audit_id).pack())
    tool = lambeth_tool(ctx)
    ids = inputs(card)
    assert [i for i in ids if i.startswith("domain.")] == [fr.domain_id(d.key) for d in tool.domains]
    assert set(ids) == set(fr.input_ids(tool, ctx.framework.max_actions))
    for domain in tool.domains:  # the title is the grade's label now (issue 12: shorter)
        assert ids[fr.domain_id(domain.key)]["label"].startswith(domain.title)
        assert domain.questions[0] in texts(card)
    assert ids["domain.planning"]["style"] == "compact"
    assert [c["value"] for c in ids["overall"]["choices"]] == [g.key for g in ctx.framework.grades]
    assert [c["value"] for c in ids["action1.owner"]["choices"]] == ["SW1", "TM1", "TM2"]
    assert "Sam Worker (case social worker)" in json.dumps(ids["action1.owner"])
    assert [(a["verb"], a["data"]) for a in executes(card)] == [
        (SaveDraft.verb, {"audit_id": audit_id}), (SubmitAudit.verb, {"audit_id": audit_id})]
    assert CASE in texts(card) and "Early help" in json.dumps(card)
    assert all("value" not in e for k, e in ids.items() if k != fr.SAFEGUARDING)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_open_uses_the_bedford_ten_standard_tool(settings: Any, fake_connector: Any) -> None:
    from qabot.app import SERVICES, init_app

    bedford = load_framework(bundled_framework_path("bedford_like"))
    async with TestClient(TestServer(init_app(settings, framework=bedford))) as client:
        ctx = client.app[SERVICES]
        audit_id = await seed(ctx, area="children_in_need", tool="practice_standards")

        class _Service:
            connector = fake_connector

            @staticmethod
            async def post(activity: dict[str, Any]) -> Any:
                return await client.post("/api/messages", json=activity)

        card = await click(_Service, OpenAudit.verb, OpenAudit(audit_id).pack())
    domains = [i for i in inputs(card) if i.startswith("domain.")]
    assert len(domains) == 10 and domains[0] == "domain.assessment"
    assert sum(i.endswith(".what") for i in inputs(card)) == bedford.max_actions == 5


# ---------------------------------------------------------------------------- invalid submit


def _scenarios(today: date) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(name, changes to a valid form, {input id: words in the error under it})."""
    return [
        ("missing domain grade", {"domain.review": ""}, {"domain.review": "grade this domain"}),
        ("good with outcomes not met", {"outcomes": "not_met"}, {"overall": "not met"}),
        ("RI with no action", {"overall": "requires_improvement", "outcomes": "on_the_way"},
         {"action1.what": "at least one action"}),
        ("past due date", action_row(1, today - timedelta(days=1)),
         {"action1.due": "after today"}),
        ("too long text", {"worries": "w" * (fr.TEXT_LIMITS[fr.WORRIES] + 1)},
         {"worries": "characters or fewer"}),
        ("half-filled action row", {"action2.what": "Chase the health assessment",
                                    "action2.due": (today + timedelta(days=9)).isoformat()},
         {"action2.owner": "who owns", "action2.priority": "priority"}),
    ]


@pytest.mark.parametrize("scenario", range(6), ids=[s[0] for s in _scenarios(date(2026, 1, 1))])
async def test_invalid_submit_keeps_entries_and_shows_errors_by_fields(
        service: Any, scenario: int) -> None:
    ctx = service.ctx
    audit_id = await seed(ctx)
    _name, changes, expected = _scenarios(_today(ctx))[scenario]
    values = good_form(lambeth_tool(ctx)) | changes
    data = SubmitAudit(audit_id).pack() | values
    card = await click(service, SubmitAudit.verb, data)

    fields = inputs(card)
    for key, value in values.items():
        if value:
            assert fields[key]["value"] == value, key
    for key, words in expected.items():
        note = error_under(card, key)
        assert note is not None and words in note, (key, note)
    assert error_under(card, "domain.planning") is None
    count_line = (f"{len(expected)} thing{'s' if len(expected) > 1 else ''} "
                  f"need{'' if len(expected) > 1 else 's'} fixing")
    assert count_line in texts(card)
    assert [a["verb"] for a in executes(card)] == [SaveDraft.verb, SubmitAudit.verb]

    audit = await audit_row(ctx, audit_id)
    assert audit.status == "allocated" and audit.submitted_at is None and audit.draft is None
    assert await count(ctx, DomainGrade) == 0 and await count(ctx, AuditAction) == 0
    assert await log_actions(ctx) == []
    assert service.connector.texts() == []


# ---------------------------------------------------------------------------- drafts


async def test_draft_is_saved_and_restored_on_open(service: Any) -> None:
    ctx = service.ctx
    audit_id = await seed(ctx)
    entries = {"domain.assessment": "requires_improvement", "worries": "Drift since May.",
               "action1.what": "Book a strategy meeting", "safeguarding": "true"}
    data = SaveDraft(audit_id).pack() | entries | {"verb": "spoofed", "unrelated": "dropped"}
    card = await click(service, SaveDraft.verb, data)
    assert "Draft saved" in texts(card)
    assert {k: inputs(card)[k].get("value") for k in entries} == entries
    assert not any(error_under(card, k) for k in entries)

    audit = await audit_row(ctx, audit_id)
    assert audit.draft == entries and audit.draft_saved_at is not None
    assert audit.status == "allocated"
    assert await log_actions(ctx) == ["audit.draft_saved"]

    reopened = await click(service, OpenAudit.verb, OpenAudit(audit_id).pack())
    assert {k: inputs(reopened)[k].get("value") for k in entries} == entries
    assert "carry on where you left off" in texts(reopened)


# ---------------------------------------------------------------------------- submit


async def test_submit_records_the_audit_and_replaces_the_form_with_a_summary(
        service: Any) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed(ctx)
    await click(service, SaveDraft.verb, SaveDraft(audit_id).pack() | {"worries": "draft"})
    due1, due2 = _today(ctx) + timedelta(days=14), _today(ctx) + timedelta(days=30)
    values = (good_form(lambeth_tool(ctx), overall="requires_improvement", outcomes="on_the_way",
                        domain__planning="inadequate", worries="No contingency plan.")
              | action_row(1, due1, what="Write a contingency plan")
              | action_row(3, due2, owner="TM2", what="Audit supervision notes", priority="low"))
    card = await click(service, SubmitAudit.verb, SubmitAudit(audit_id).pack() | values)

    assert inputs(card) == {} and executes(card) == []
    summary = texts(card) + json.dumps(card)
    for expected in (CASE, "Early help", "Requires Improvement", "Inadequate",
                     "On the way to being met", "Write a contingency plan", "Sam Worker",
                     "Ted Manager", cards.fmt_date(due1), cards.fmt_date(due2), AUDITOR.name):
        assert expected in summary, expected

    audit = await audit_row(ctx, audit_id)
    assert audit.status == "submitted" and audit.submitted_by == "AUD1"
    assert audit.submitted_at is not None and audit.draft is None
    assert audit.overall_grade == "requires_improvement" and audit.outcomes == "on_the_way"
    assert audit.answers is not None and audit.answers["worries"] == "No contingency plan."
    assert audit.answers["sw_took_part"] is True and audit.safeguarding_concern is False
    async with ctx.sessions() as s:
        grades = {g.domain: g.grade for g in await s.scalars(select(DomainGrade))}
        actions = list(await s.scalars(select(AuditAction).order_by(AuditAction.seq)))
    assert len(grades) == 7 and grades["planning"] == "inadequate"
    assert [(a.seq, a.owner_id, a.due_on, a.priority, a.status) for a in actions] == [
        (1, "SW1", due1, "high", "open"), (2, "TM2", due2, "low", "open")]
    assert await log_actions(ctx) == ["audit.draft_saved", "audit.submitted",
                                      "action.created", "action.created"]

    thanks = fc.texts(personal_conversation_id(AUDITOR))
    assert len(thanks) == 1 and thanks[0].startswith("Thank you, Alex") and CASE in thanks[0]


async def test_replayed_and_concurrent_submits_create_nothing_more(service: Any) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed(ctx)
    values = good_form(lambeth_tool(ctx), overall="inadequate", outcomes="not_met") | action_row(
        1, _today(ctx) + timedelta(days=7))
    data = SubmitAudit(audit_id).pack() | values
    # Open first: the chat's first activity is remembered once (see the report on races in
    # Directory.save_conversation), so the concurrent clicks below race only on the submit.
    await click(service, OpenAudit.verb, OpenAudit(audit_id).pack())
    first, second, third = await asyncio.gather(
        *(click(service, SubmitAudit.verb, data) for _ in range(3)))
    replay = await click(service, SubmitAudit.verb, data | {"overall": "outstanding"})
    for card in (first, second, third, replay):
        assert inputs(card) == {} and "Audit submitted" in texts(card)
        assert "Inadequate" in json.dumps(card)
    assert await count(ctx, DomainGrade) == 7
    assert await count(ctx, AuditAction) == 1
    assert (await log_actions(ctx)).count("audit.submitted") == 1
    assert len(fc.texts(personal_conversation_id(AUDITOR))) == 1
    assert (await audit_row(ctx, audit_id)).overall_grade == "inadequate"

    # A draft save after submit changes nothing either: the summary comes back.
    card = await click(service, SaveDraft.verb, SaveDraft(audit_id).pack() | {"worries": "x"})
    assert inputs(card) == {} and (await audit_row(ctx, audit_id)).draft is None


async def test_opening_a_submitted_audit_shows_the_summary(service: Any) -> None:
    ctx = service.ctx
    audit_id = await seed(ctx)
    await click(service, SubmitAudit.verb, SubmitAudit(audit_id).pack()
                | good_form(lambeth_tool(ctx)))
    card = await click(service, OpenAudit.verb, OpenAudit(audit_id).pack())
    assert inputs(card) == {} and executes(card) == [] and "Audit submitted" in texts(card)
    assert "No actions were recorded." in texts(card)


async def test_safeguarding_flag_is_recorded(service: Any) -> None:
    ctx = service.ctx
    audit_id = await seed(ctx)
    values = good_form(lambeth_tool(ctx), safeguarding="true",
                       safeguarding_details="Unexplained bruising, no strategy discussion.")
    # Issue 12: Good overall with a serious concern ticked is asked about first (a warning,
    # never a refusal): the form comes back with one tick to confirm, nothing recorded yet.
    asked = await click(service, SubmitAudit.verb, SubmitAudit(audit_id).pack() | values)
    assert fr.CONFIRM in inputs(asked) and "fixing" not in texts(asked)
    assert "You graded this audit Good overall" in texts(asked)
    assert {k: inputs(asked)[k].get("value") for k in values if values[k]} == {
        k: v for k, v in values.items() if v}
    assert (await audit_row(ctx, audit_id)).status == "allocated"
    values |= {fr.CONFIRM: "true"}
    card = await click(service, SubmitAudit.verb, SubmitAudit(audit_id).pack() | values)
    assert "serious safeguarding concern" in texts(card)
    audit = await audit_row(ctx, audit_id)
    assert audit.safeguarding_concern is True
    assert audit.answers is not None and "bruising" in audit.answers["safeguarding_details"]


# ---------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("user", [OTHER, STRANGER], ids=["other-auditor", "not-staff"])
async def test_someone_elses_click_is_refused_and_changes_nothing(service: Any,
                                                                  user: User) -> None:
    ctx = service.ctx
    audit_id = await seed(ctx)
    values = good_form(lambeth_tool(ctx))
    for verb, packed in ((OpenAudit.verb, OpenAudit(audit_id).pack()),
                         (SaveDraft.verb, SaveDraft(audit_id).pack()),
                         (SubmitAudit.verb, SubmitAudit(audit_id).pack())):
        card = await click(service, verb, packed | values, user=user)
        assert inputs(card) == {} and executes(card) == []
        assert "Nothing was changed" in texts(card)
        assert CASE not in json.dumps(card)
    audit = await audit_row(ctx, audit_id)
    assert audit.status == "allocated" and audit.draft is None
    assert await count(ctx, DomainGrade) == 0 and await log_actions(ctx) == []


@pytest.mark.parametrize(("data", "words"), [
    ({"audit_id": "x"}, "that button did not work"),
    ({}, "that button did not work"),
    ({"audit_id": 987654}, "cannot find that audit"),
])
async def test_tampered_payload_gets_a_polite_message(service: Any, data: dict[str, Any],
                                                      words: str) -> None:
    ctx = service.ctx
    await seed(ctx)
    for verb in (OpenAudit.verb, SaveDraft.verb, SubmitAudit.verb):
        card = await click(service, verb, data | good_form(lambeth_tool(ctx)))
        assert words in texts(card) and inputs(card) == {}
    assert await log_actions(ctx) == [] and await count(ctx, DomainGrade) == 0


# ---------------------------------------------------------------------------- delegate


async def test_qa_lead_names_a_delegate_who_can_then_submit(service: Any) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed(ctx)
    await service.post(message(f"delegate {CASE} to DEE.Delegate@council.example", user=LEAD,
                               service_url=fc.url))
    reply = fc.texts(personal_conversation_id(LEAD))
    assert len(reply) == 1 and reply[0].startswith("Done: Dee Delegate can now open")
    assert (await audit_row(ctx, audit_id)).delegate_id == "DEL1"
    assert "audit.delegated" in await log_actions(ctx)
    assert await count(ctx, OutboxMessage, OutboxMessage.staff_id == "DEL1") == 2
    assert await count(ctx, OutboxMessage, OutboxMessage.staff_id == "AUD1") == 1

    delegate_chat = personal_conversation_id(DELEGATE)
    await fc.wait_for(lambda f: len(f.cards(delegate_chat)) == 1)
    assert CASE in fc.texts(delegate_chat)[0]
    invite = fc.cards(delegate_chat)[0]
    assert teams_findings(invite) == []
    [button] = executes(invite)
    assert button["verb"] == OpenAudit.verb and button["data"] == {"audit_id": audit_id}

    form = await click(service, OpenAudit.verb, button["data"], user=DELEGATE)
    assert "domain.planning" in inputs(form)
    card = await click(service, SubmitAudit.verb,
                       SubmitAudit(audit_id).pack() | good_form(lambeth_tool(ctx)), user=DELEGATE)
    assert "Audit submitted" in texts(card) and DELEGATE.name in json.dumps(card)
    assert (await audit_row(ctx, audit_id)).submitted_by == "DEL1"

    # Naming the same delegate again changes and sends nothing.
    await service.post(message(f"delegate {CASE} to dee.delegate@council.example", user=LEAD,
                               service_url=fc.url))
    assert "no audit waiting" in fc.texts(personal_conversation_id(LEAD))[-1]


async def test_delegate_is_refused_for_a_non_qa_user(service: Any) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed(ctx)
    await service.post(message(f"delegate {CASE} to dee.delegate@council.example", user=AUDITOR,
                               service_url=fc.url))
    [reply] = fc.texts(personal_conversation_id(AUDITOR))
    assert "is for the QA team only" in reply
    assert (await audit_row(ctx, audit_id)).delegate_id is None
    assert await log_actions(ctx) == [] and await count(ctx, OutboxMessage) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("text", "words"), [
    (f"delegate {CASE} dee.delegate@council.example", "Please write it as"),
    (f"delegate {CASE} to nobody@council.example", "No current member of staff"),
    ("delegate C-9999 to dee.delegate@council.example", "cannot find case C-9999"),
    (f"delegate {CASE} to tm2@council.example", "works on this case's team"),
    (f"delegate {CASE} to alex.auditor@council.example", "already the auditor"),
])
async def test_delegate_explains_what_is_wrong(service: Any, text: str, words: str) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed(ctx)
    await service.post(message(text, user=LEAD, service_url=fc.url))
    assert words in fc.texts(personal_conversation_id(LEAD))[-1]
    assert (await audit_row(ctx, audit_id)).delegate_id is None
    assert await count(ctx, OutboxMessage) == 0


async def test_a_second_delegate_replaces_the_first_without_resending(service: Any) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed(ctx)
    for _ in range(2):
        await service.post(message(f"delegate {CASE} to dee.delegate@council.example",
                                   user=LEAD, service_url=fc.url))
    assert "can already do the audit" in fc.texts(personal_conversation_id(LEAD))[-1]
    assert await count(ctx, OutboxMessage, OutboxMessage.staff_id == "DEL1") == 2
    assert (await log_actions(ctx)).count("audit.delegated") == 1
    assert (await audit_row(ctx, audit_id)).delegate_id == "DEL1"


# ---------------------------------------------------------------------------- cards (pure)

LOOK_FROM, LOOK_TO, DEADLINE = date(2026, 6, 8), date(2026, 12, 7), date(2027, 1, 6)
OWNER_CHOICES = (("SW1", "Sam Worker (case social worker)"),
                 ("TM1", "Tia Manager (social worker's manager)"),
                 ("TM2", "Ted Manager (team manager)"))


def form_view(framework: Framework, area: str, **kwargs: Any) -> cards.FormView:
    tool = framework.tool_for_area(area)
    return cards.FormView(
        audit_id=42, case_ref=CASE, area_label=framework.areas[area].label,
        tool_label=tool.label, domains=tool.domains, grades=framework.grades,
        look_back_from=LOOK_FROM, look_back_to=LOOK_TO, deadline=DEADLINE,
        owner_choices=OWNER_CHOICES, max_actions=framework.max_actions,
        action_grades=tuple(g.label for g in framework.grades
                            if g.key in framework.actions_required), **kwargs)


def assert_snapshot(name: str, card: dict[str, Any]) -> None:
    """Compare with tests/snapshots/<name>.json; UPDATE_SNAPSHOTS=1 rewrites it."""
    path = SNAPSHOTS / f"{name}.json"
    text = json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run with UPDATE_SNAPSHOTS=1"
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text)


@pytest.fixture(scope="module")
def bedford() -> Framework:
    return load_framework(bundled_framework_path("bedford_like"))


def test_empty_form_card(framework: Framework) -> None:
    card = cards.audit_form_card(form_view(framework, "early_help"))
    assert teams_findings(card) == []
    assert "Grading guide" in json.dumps(card)  # the rubric fits
    assert_snapshot("audit_form_empty", card)


def test_form_card_with_values_and_errors(framework: Framework) -> None:
    values = {"domain.assessment": "good", "overall": "good", "outcomes": "not_met",
              "strengths": "Consistent visits.", "action1.what": "Update the plan",
              "action1.owner": "TM2", "action1.due": "2026-12-01", "safeguarding": "true"}
    errors = {"domain.planning": "Please grade this domain.",
              "overall": "Good is not possible when the child's outcomes are not met or on "
                         "the way to being met.",
              "action1.due": "The due date must be after today.",
              "safeguarding_details": "Please describe the safeguarding concern."}
    card = cards.audit_form_card(form_view(framework, "early_help", values=values,
                                           errors=errors, note="Draft saved 14:32"))
    assert teams_findings(card) == []
    assert "4 things need fixing" in texts(card)
    for key, message_text in errors.items():
        assert error_under(card, key) == message_text
    for key, value in values.items():
        assert inputs(card)[key]["value"] == value
    assert_snapshot("audit_form_errors", card)


def test_bedford_form_card_with_five_action_rows(bedford: Framework) -> None:
    card = cards.audit_form_card(form_view(bedford, "children_in_need"))
    assert teams_findings(card) == []
    assert sum(k.startswith("domain.") for k in inputs(card)) == 10
    assert [k for k in inputs(card) if k.endswith(".priority")] == [
        f"action{n}.priority" for n in range(1, 6)]
    assert_snapshot("audit_form_bedford", card)


@pytest.mark.parametrize("area", ["children_in_need"])
def test_a_form_full_to_every_limit_still_fits_in_teams(bedford: Framework, area: str) -> None:
    """Every entry at its limit, 10 standards, 5 actions: the card must not exceed 28 KB."""
    tool = bedford.tool_for_area(area)
    values = {fr.domain_id(d.key): "requires_improvement" for d in tool.domains}
    values |= {key: "x" * limit for key, limit in fr.TEXT_LIMITS.items()}
    for n in range(1, 6):
        values |= action_row(n, DEADLINE, what="y" * fr.ACTION_MAX)
    errors = {fr.OVERALL: "Please give an overall grade.",
              fr.OUTCOMES: "Please say whether the child's outcomes are met.",
              fr.SW_TOOK_PART: "Please say whether the social worker took part."}
    card = cards.audit_form_card(form_view(bedford, area, values=values, errors=errors,
                                           note="Draft saved 14:32"))
    assert teams_findings(card) == []
    assert cards.wire_size(card) <= cards.FORM_BUDGET_BYTES
    assert {k: inputs(card)[k]["value"] for k in values} == values  # nothing cut
    assert "guiding questions are hidden" in texts(card)


def test_summary_card() -> None:
    view = cards.SummaryView(
        audit_id=42, case_ref=CASE, area_label="Early help", tool_label="Monthly case audit",
        domain_grades=(("Quality of assessment", "Good"), ("Quality of planning", "Inadequate")),
        overall_label="Requires Improvement", outcomes_label="On the way to being met",
        actions=(cards.SummaryAction("Write a contingency plan", "Sam Worker", date(2026, 12, 21),
                                     "High"),),
        submitted_by="Alex Auditor",
        submitted_at=datetime(2026, 12, 7, 14, 32, tzinfo=UTC), safeguarding=True)
    card = cards.audit_summary_card(view)
    assert teams_findings(card) == []
    assert inputs(card) == {} and executes(card) == [] and "actions" not in card
    assert "7 Dec 2026 14:32" in json.dumps(card)
    assert_snapshot("audit_summary", card)


def test_refusal_and_open_form_cards() -> None:
    refusal = notice_card("This audit is allocated to someone else.")
    invite = cards.open_form_card(CASE, "Early help", DEADLINE, 42)
    for card in (refusal, invite):
        assert teams_findings(card) == []
    assert executes(invite)[0]["verb"] == OpenAudit.verb
    assert_snapshot("audit_refusal", refusal)
    assert_snapshot("audit_open_form", invite)


# ---------------------------------------------------------------------------- use cases (direct)


async def test_exactly_one_of_many_concurrent_submits_wins(ctx: Services) -> None:
    from flows.audit_form import submit

    audit_id = await seed(ctx)
    tool = lambeth_tool(ctx)
    submission, errors = fr.validate(
        good_form(tool) | action_row(1, _today(ctx) + timedelta(days=5)), tool=tool,
        framework=ctx.framework, today=_today(ctx), owner_ids={"SW1"})
    assert submission is not None, errors
    outcomes = await asyncio.gather(*(submit(ctx, audit_id, "AUD1", submission)
                                      for _ in range(5)))
    assert sorted(o.created for o in outcomes) == [False] * 4 + [True]
    assert {o.result.audit.submitted_at for o in outcomes} != {None}
    assert await count(ctx, DomainGrade) == 7 and await count(ctx, AuditAction) == 1
    assert (await log_actions(ctx)).count("audit.submitted") == 1


async def test_delegation_is_refused_for_anyone_outside_the_qa_team(ctx: Services) -> None:
    from flows.delegation import delegate
    from qa.errors import NotAllowed

    audit_id = await seed(ctx)
    for actor in ("AUD1", None, "nobody"):
        with pytest.raises(NotAllowed):
            await delegate(ctx, CASE, "dee.delegate@council.example", actor)
    assert (await audit_row(ctx, audit_id)).delegate_id is None


async def test_a_safeguarding_concern_alerts_the_team_managers_and_their_managers_at_once(
        service: Any) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed(ctx)
    async with ctx.sessions.begin() as s:  # TM1 reports to a service manager
        sm_team = (await s.scalars(select(Team).where(Team.name == "Quality Assurance"))).one()
        s.add(Staff(staff_id="SM1", name="Sue Service", roles=["service_manager"],
                    team_id=sm_team.id, email="sm1@council.example", active=True))
        (await s.get(Staff, "TM1")).manager_id = "SM1"
    values = good_form(lambeth_tool(ctx)) | {
        "safeguarding": "true", "safeguarding_details": "Bruising seen on the last visit.",
        fr.CONFIRM: "true"}  # Good with a concern: confirmed on the form (issue 12)
    await click(service, SubmitAudit.verb, SubmitAudit(audit_id).pack() | values)
    async with ctx.sessions() as s:
        alerts = {m.staff_id: json.dumps(m.activity["card"]) for m in await s.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key.like("safeguarding:%")))}
        logged = [e.after for e in await s.scalars(
            select(AuditLogEntry).where(AuditLogEntry.action == "safeguarding.alerted"))]
    # the case team's managers (TM1 also manages the social worker) and TM1's manager
    assert sorted(alerts) == ["SM1", "TM1", "TM2"]
    assert all(CASE in t and "Bruising seen" in t for t in alerts.values())
    assert logged == [{"recipients": ["SM1", "TM1", "TM2"]}]
    thanks = fc.texts(personal_conversation_id(AUDITOR))[-1]
    # issue 9: the auditor is told it is queued (not sent), and for whom
    assert "queued the safeguarding alert for Sue Service, Tia Manager and Ted Manager" in thanks
    # a replayed submit alerts nobody again
    await click(service, SubmitAudit.verb, SubmitAudit(audit_id).pack() | values)
    async with ctx.sessions() as s:
        assert len((await s.scalars(select(OutboxMessage).where(
            OutboxMessage.dedupe_key.like("safeguarding:%")))).all()) == 3


async def test_no_alert_without_the_safeguarding_flag(service: Any) -> None:
    ctx = service.ctx
    audit_id = await seed(ctx)
    await click(service, SubmitAudit.verb, SubmitAudit(audit_id).pack() | good_form(lambeth_tool(ctx)))
    async with ctx.sessions() as s:
        assert (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.dedupe_key.like("safeguarding:%")))).all() == []



# ---------------------------------------------------------------------------- shorter and kinder
# (issue 12)


def _by_id(card: dict[str, Any], element_id: str) -> dict[str, Any]:
    [found] = [e for e in walk(card) if e.get("id") == element_id]
    return found


def _toggles(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in walk(card) if e.get("type") == "Action.ToggleVisibility"]


def test_guiding_questions_fold_under_each_domain(framework: Framework) -> None:
    card = cards.audit_form_card(form_view(framework, "early_help"))
    tool = framework.tool_for_area("early_help")
    toggles = [t for t in _toggles(card) if t["title"] == "Guiding questions"]
    assert len(toggles) == len(tool.domains)
    for domain, toggle in zip(tool.domains, toggles, strict=True):
        [target] = toggle["targetElements"]
        folded = _by_id(card, target["elementId"])
        assert folded.get("isVisible") is False and "isVisible" not in target  # tap: show/hide
        assert all(q in json.dumps(folded) for q in domain.questions)


def test_action_rows_open_one_at_a_time(framework: Framework) -> None:
    fresh = cards.audit_form_card(form_view(framework, "early_help"))
    for n in range(1, framework.max_actions + 1):
        assert _by_id(fresh, f"row{n}")["isVisible"] is False  # a Good audit shows no rows
    add = _by_id(fresh, "add0")
    assert add.get("isVisible", True) is True
    [button] = add["actions"]
    assert button["title"] == "Add an action" and button["targetElements"] == [
        {"elementId": "row1", "isVisible": True}, {"elementId": "add0", "isVisible": False}]
    for n in range(1, framework.max_actions):  # each row opens the next, then hides its button
        assert _by_id(fresh, f"add{n}").get("isVisible", True) is True  # shows with its row
        [more] = _by_id(fresh, f"add{n}")["actions"]
        assert more["title"] == "Add another action"
        assert more["targetElements"] == [{"elementId": f"row{n + 1}", "isVisible": True},
                                          {"elementId": f"add{n}", "isVisible": False}]
    assert not [e for e in walk(fresh) if e.get("id") == f"add{framework.max_actions}"]

    # a draft with two rows (the second only partly) opens with those two showing
    started = cards.audit_form_card(form_view(framework, "early_help", values={
        "action1.what": "Book a meeting", "action2.priority": "high"}))
    assert [_by_id(started, f"row{n}").get("isVisible", True) for n in range(1, 6)] == [
        True, True, False, False, False]
    assert _by_id(started, "add2").get("isVisible", True) is True
    assert not [e for e in walk(started) if e.get("id") in ("add0", "add1")]


def test_required_answers_are_marked_and_the_reason_isrequired_is_not_used(
        framework: Framework) -> None:
    card = cards.audit_form_card(form_view(framework, "early_help"))
    fields = inputs(card)
    required = [fr.domain_id(d.key) for d in framework.tool_for_area("early_help").domains]
    required += [fr.OVERALL, fr.OUTCOMES, fr.SW_TOOK_PART, fr.CHILD_CONTACTED,
                 fr.FAMILY_CONTACTED]
    for key in required:
        assert fields[key]["label"].endswith("(required)"), key
    for key in (fr.STRENGTHS, "action1.owner", "action1.priority"):
        assert "(required)" not in fields[key]["label"]
    # Teams checks isRequired before any button sends the inputs, Save draft too: a
    # half-done draft could not be saved. Required answers are checked on submit instead.
    assert not any(f.get("isRequired") for f in fields.values())


def test_after_a_refused_submit_what_to_fix_is_next_to_submit(framework: Framework) -> None:
    errors = {"domain.planning": "Please grade this domain.",
              "overall": "Please give an overall grade.",
              "action1.due": "The due date must be after today."}
    card = cards.audit_form_card(form_view(framework, "early_help", errors=errors))
    assert "3 things need fixing" in texts(card)  # at the top, as before
    last = card["body"][-1]  # the element right above Save draft and Submit audit
    assert last["id"] == "by-submit" and last.get("isVisible", True) is True
    words = json.dumps(last)
    assert "Before you can submit, fix these" in words
    assert words.index("- Quality of planning: Please grade") < words.index("Overall grade") < words.index(
        "Action 1, due by")
    assert all(message_text in words for message_text in errors.values())
    assert [a["title"] for a in card["actions"]] == ["Save draft", "Submit audit"]


def test_draft_saved_shows_by_the_buttons_and_a_resumed_draft_at_the_top(
        framework: Framework) -> None:
    saved = cards.audit_form_card(form_view(framework, "early_help", note="Draft saved 14:32.",
                                            note_by_buttons=True))
    assert "Draft saved 14:32." in json.dumps(saved["body"][-1])
    assert "Draft saved 14:32." not in json.dumps(saved["body"][:3])
    resumed = cards.audit_form_card(form_view(framework, "early_help", note="Draft saved 9:10"))
    assert "Draft saved 9:10" in json.dumps(resumed["body"][:3])
    assert resumed["body"][-1].get("isVisible") is False


async def test_save_draft_says_so_by_the_button_clicked(service: Any) -> None:
    audit_id = await seed(service.ctx)
    card = await click(service, SaveDraft.verb, SaveDraft(audit_id).pack() | {"worries": "x"})
    assert "Draft saved" in json.dumps(card["body"][-1])


def test_a_full_form_with_an_error_in_every_row_still_fits(bedford: Framework) -> None:
    tool = bedford.tool_for_area("children_in_need")
    values = {fr.domain_id(d.key): "requires_improvement" for d in tool.domains}
    values |= {key: "x" * limit for key, limit in fr.TEXT_LIMITS.items()}
    errors: dict[str, str] = {}
    for n in range(1, 6):  # every due date already passed (a draft kept too long)
        values |= action_row(n, DEADLINE, what="y" * fr.ACTION_MAX)
        errors[fr.action_id(n, "due")] = "The due date must be after today."
    errors |= {fr.OVERALL: "Please give an overall grade.",
               fr.OUTCOMES: "Please say whether the child's outcomes are met.",
               fr.SW_TOOK_PART: "Please say whether the social worker took part.",
               fr.FAMILY_CONTACTED: "Please say whether the family was contacted."}
    card = cards.audit_form_card(form_view(bedford, "children_in_need", values=values,
                                           errors=errors))
    assert teams_findings(card) == []  # under Teams' 28 KB, with room for the envelope:
    assert cards.wire_size(card) <= 27 * 1024  # (26 KB is the aim; nine errors cost more)
    assert {k: inputs(card)[k]["value"] for k in values} == values
    assert "9 things need fixing" in json.dumps(card["body"][-1])
