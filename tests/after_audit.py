"""A small council for the tests of what follows a submitted audit (issue 9), and helpers.

One social work team (Assessment 1) with two team managers, a social worker, a service
manager, an assistant director and a director above it; an auditor from another team; a
QA lead. Everyone is a Teams user the fake connector knows, linked by their Teams id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from cards.common import teams_findings
from cards.payloads import SubmitAudit
from qa import form_rules as fr
from store.models import AllocationRun, Audit, Case, OutboxMessage, Staff, Team
from tests.fakes import User, card_action, message, personal_conversation_id

CASE = "C-2001"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"

PEOPLE: dict[str, tuple[str, list[str], str, str | None]] = {
    # staff id: (name, roles, team, manager id)
    "DIR": ("Dana Director", ["director"], "Leadership", None),
    "AD1": ("Ade Assistant", ["assistant_director"], "Leadership", "DIR"),
    "SM1": ("Sue Service", ["service_manager"], "Leadership", "AD1"),
    "TM1": ("Tia Manager", ["team_manager"], "Assessment 1", "SM1"),
    "TM2": ("Ted Manager", ["team_manager"], "Assessment 1", "SM1"),
    "SW1": ("Sam Worker", ["social_worker"], "Assessment 1", "TM1"),
    "AUD1": ("Alex Auditor", ["team_manager"], "Assessment 2", "SM1"),
    "QA1": ("Quinn Lead", ["qa_lead"], "Quality Assurance", None),
}
USERS = {sid: User.named(name) for sid, (name, _, _, _) in PEOPLE.items()}


async def seed_council(ctx: Any, fc: Any, *, unlinked: frozenset[str] = frozenset(),
                       roster_only: frozenset[str] = frozenset()) -> int:
    """The council, one open case and its allocated audit (by AUD1); returns the audit id.

    ``unlinked`` staff have no Teams link; ``roster_only`` ones are not linked either but
    the fake knows them (as Teams would, on a team roster), so a lookup can find them.
    """
    fc.add_users(*(u for sid, u in USERS.items() if sid not in unlinked or sid in roster_only))
    today = ctx.clock().astimezone(ctx.framework.zone).date()
    async with ctx.sessions.begin() as s:
        teams = {name: Team(name=name) for name in {t for _, _, t, _ in PEOPLE.values()}}
        s.add_all(teams.values())
        await s.flush()
        for sid in ("DIR", "AD1", "SM1", "TM1", "TM2", "SW1", "AUD1", "QA1"):
            name, roles, team, manager = PEOPLE[sid]
            user = USERS[sid]
            linked = sid not in unlinked
            s.add(Staff(staff_id=sid, name=name, roles=roles, team_id=teams[team].id,
                        email=user.email, manager_id=manager, active=True,
                        teams_user_id=user.id if linked else None,
                        aad_object_id=user.aad_object_id if linked else None))
            await s.flush()
        s.add(Case(case_ref=CASE, team_id=teams["Assessment 1"].id, social_worker_id="SW1",
                   area="early_help", opened_on=date(2025, 1, 6), status="open", tags=[]))
        run = AllocationRun(key="test:after", kind="monthly", month=f"{today:%Y-%m}", seed=1,
                            created_by="test", deadline=today + timedelta(days=21), summary={})
        s.add(run)
        await s.flush()
        audit = Audit(run_id=run.id, case_ref=CASE, auditor_id="AUD1",
                      team_id=teams["Assessment 1"].id, area="early_help", tool="case_audit",
                      month=f"{today:%Y-%m}", reason="random", status="allocated",
                      deadline=today + timedelta(days=21),
                      look_back_from=today - timedelta(days=182), look_back_to=today)
        s.add(audit)
        await s.flush()
        audit_id = audit.id
    # The auditor has talked to the bot: the sender knows the service URL and tenant.
    return audit_id


async def anchor(service: Any) -> None:
    await service.post(message("hi", user=USERS["AUD1"], service_url=service.connector.url))


def form(ctx: Any, overall: str = "good", **extra: str) -> dict[str, str]:
    tool = ctx.framework.tools["case_audit"]
    values = {fr.domain_id(d.key): overall for d in tool.domains}
    values |= {fr.OVERALL: overall, fr.OUTCOMES: "met" if overall in ("good", "outstanding")
               else "on_the_way", fr.SW_TOOK_PART: "yes", fr.CHILD_CONTACTED: "under_12",
               fr.FAMILY_CONTACTED: "no", fr.SAFEGUARDING: "false",
               fr.STRENGTHS: "Warm relationship with the family.",
               fr.WORRIES: "Chronology out of date.", fr.BETTER: "Update the chronology."}
    return values | extra


def action(n: int, due: date, owner: str = "SW1", what: str = "Update the chronology"
           ) -> dict[str, str]:
    return {fr.action_id(n, "what"): what, fr.action_id(n, "owner"): owner,
            fr.action_id(n, "due"): due.isoformat(), fr.action_id(n, "priority"): "high"}


async def click(service: Any, verb: str, data: dict[str, Any], who: str) -> dict[str, Any]:
    """Press an Action.Execute button as staff member ``who``; the card that replaces it."""
    resp = await service.post(card_action(verb, data, user=USERS[who],
                                          service_url=service.connector.url))
    assert resp.status == 200
    body = await resp.json()
    assert body["statusCode"] == 200 and body["type"] == CARD_TYPE
    assert teams_findings(body["value"]) == []
    return body["value"]


async def submit(service: Any, audit_id: int, values: dict[str, str]) -> dict[str, Any]:
    return await click(service, SubmitAudit.verb, SubmitAudit(audit_id).pack() | values, "AUD1")


async def say(service: Any, text: str, who: str) -> None:
    await service.post(message(text, user=USERS[who], service_url=service.connector.url))


def chat(who: str) -> str:
    return personal_conversation_id(USERS[who])


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def texts_of(card: dict[str, Any]) -> str:
    return "\n".join(str(e.get("text", "")) for e in walk(card) if e.get("type") == "TextBlock")


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in walk(card) if e.get("type") == "Action.Execute"]


def button(card: dict[str, Any], verb: str, **data: Any) -> dict[str, Any]:
    found = [b for b in buttons(card) if b["verb"] == verb
             and all(b["data"].get(k) == v for k, v in data.items())]
    assert found, f"no {verb} button {data} on the card"
    return found[0]


async def queued(ctx: Any, prefix: str) -> list[OutboxMessage]:
    async with ctx.sessions() as s:
        return list(await s.scalars(select(OutboxMessage)
                                    .where(OutboxMessage.dedupe_key.like(f"{prefix}%"))
                                    .order_by(OutboxMessage.id)))


async def count(ctx: Any, model: Any, *where: Any) -> int:
    async with ctx.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def dumps(x: Any) -> str:
    return json.dumps(x)
