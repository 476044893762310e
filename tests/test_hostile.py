"""Hostile input and bad luck at the Teams edge (issue 11, items 1-8).

Each test is one class of request that used to get a 5xx, lose an answer or lock a person
out. Everything goes through the real endpoint (``POST /api/messages``) of the real app with
the fake Bot Connector on loopback; no request may make the service reach beyond 127.0.0.1
(tests/conftest.py fails a test that tries).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select

from cards.payloads import OpenAudit, SaveDraft, SubmitAudit
from qa import form_rules as fr
from store.models import Audit, AuditLogEntry, Conversation, OutboxMessage, Staff
from tests.fakes import User, card_action, message, personal_conversation_id, submit
from tests.test_audit_form import AUDITOR, CARD_TYPE, LEAD, audit_row, click, good_form, seed
from tests.test_service import add_staff

JSON = {"Content-Type": "application/json"}


async def post_raw(service: Any, body: str | bytes) -> Any:
    return await service.client.post("/api/messages", data=body, headers=JSON)


async def healthy(service: Any) -> None:
    resp = await service.client.get("/healthz")
    assert resp.status == 200


# ---------------------------------------------------------------------------- items 1 and 2


@pytest.mark.parametrize("body", ["null", "[]", "42", '"message"', "true", "[" * 100_000,
                                  '{"type": "message", "value": ' + "[" * 5000 + "]" * 5000 + "}",
                                  '{"type": "message", "text": "\\ud800"',
                                  "{\"type\": \"message\"} trailing"])
async def test_bodies_that_are_not_an_activity_get_400(service: Any, body: str) -> None:
    resp = await post_raw(service, body)
    assert resp.status == 400, await resp.text()
    assert service.connector.requests == []
    await healthy(service)


# ---------------------------------------------------------------------------- item 3


@pytest.mark.parametrize("value", [
    "audit.open",
    {"action": "audit.open"},
    {"action": ["audit.open"]},
    {"action": {"verb": {"audit": "open"}, "data": {"audit_id": 1}}},
    {"action": {"verb": ["audit.open"], "data": {"audit_id": 1}}},
    {"action": {"verb": "audit.open", "data": "audit_id=1"}},
    {"action": {"verb": 7, "data": {"audit_id": 1}}},
    [1, 2, 3],
])
async def test_invoke_with_a_misshapen_value_is_answered_with_a_card(service: Any, value: Any) -> None:
    activity = card_action("audit.open", {"audit_id": 1}, service_url=service.connector.url)
    activity["value"] = value
    resp = await service.post(activity)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["type"] == CARD_TYPE and "Nothing was changed" in json.dumps(body["value"])


async def test_a_message_whose_verb_is_not_text_is_treated_as_text(service: Any) -> None:
    activity = submit({"verb": {"x": 1}, "audit_id": 1}, service_url=service.connector.url)
    resp = await service.post(activity)
    assert resp.status in (200, 201)


# ---------------------------------------------------------------------------- item 4


def _without(activity: dict[str, Any], *path: str) -> dict[str, Any]:
    node = activity
    for key in path[:-1]:
        node = node[key]
    node.pop(path[-1], None)
    return activity


def _set(activity: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    node = activity
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return activity


ADDRESSING = {
    "no conversation": lambda a: _without(a, "conversation"),
    "conversation null": lambda a: _set(a, None, "conversation"),
    "conversation a string": lambda a: _set(a, "a:1", "conversation"),
    "conversation id null": lambda a: _set(a, None, "conversation", "id"),
    "conversation id empty": lambda a: _set(a, "", "conversation", "id"),
    "conversation id a number": lambda a: _set(a, 12, "conversation", "id"),
    "conversation id too long": lambda a: _set(a, "a:" + "x" * 400, "conversation", "id"),
    "no serviceUrl": lambda a: _without(a, "serviceUrl"),
    "serviceUrl null": lambda a: _set(a, None, "serviceUrl"),
    "serviceUrl not http": lambda a: _set(a, "ftp://127.0.0.1/", "serviceUrl"),
    "serviceUrl javascript": lambda a: _set(a, "javascript:alert(1)", "serviceUrl"),
    "serviceUrl a path": lambda a: _set(a, "/v3/conversations", "serviceUrl"),
    "serviceUrl template": lambda a: _set(a, "http://127.0.0.1:9/{id}/", "serviceUrl"),
    "serviceUrl a list": lambda a: _set(a, ["http://127.0.0.1:9/"], "serviceUrl"),
    "from a string": lambda a: _set(a, "29:x", "from"),
    "from id a dict": lambda a: _set(a, {"id": 1}, "from", "id"),
    "from id with NUL": lambda a: _set(a, "29:ab\x00c", "from", "id"),
    "from id too long": lambda a: _set(a, "29:" + "x" * 300, "from", "id"),
    "recipient a list": lambda a: _set(a, [], "recipient"),
    "channelData a string": lambda a: _set(a, "x", "channelData"),
    "type a number": lambda a: _set(a, 3, "type"),
    "type missing": lambda a: _without(a, "type"),
    "membersAdded a string": lambda a: _set(a, "29:x", "membersAdded"),
    "entities a dict": lambda a: _set(a, {"type": "mention"}, "entities"),
    "attachments a string": lambda a: _set(a, "x", "attachments"),
}


@pytest.mark.parametrize("kind", ["message", "invoke"])
@pytest.mark.parametrize("break_it", list(ADDRESSING), ids=list(ADDRESSING))
async def test_activities_that_cannot_be_answered_get_400_and_no_call_out(
        service: Any, kind: str, break_it: str) -> None:
    fc = service.connector
    good = (message("help", service_url=fc.url) if kind == "message"
            else card_action(OpenAudit.verb, {"audit_id": 1}, service_url=fc.url))
    resp = await service.post(ADDRESSING[break_it](good))
    assert resp.status == 400, await resp.text()
    assert fc.requests == []
    async with service.ctx.sessions() as s:
        assert list(await s.scalars(select(Conversation))) == []
    await healthy(service)


async def test_a_service_url_with_a_path_and_query_is_still_answered(service: Any) -> None:
    fc = service.connector
    await add_staff(service.ctx, "S1", AUDITOR, ["team_manager"])
    resp = await service.post(message("help", user=AUDITOR, service_url=fc.url.rstrip("/")))
    assert resp.status in (200, 201)
    assert len(fc.texts(personal_conversation_id(AUDITOR))) == 1


# ---------------------------------------------------------------------------- items 5 and 6


async def test_a_draft_with_unstorable_characters_is_cleaned_and_opens_again(service: Any) -> None:
    ctx = service.ctx
    audit_id = await seed(ctx)
    dirty = {"worries": "ok \ud800 then \x00NUL and \x07bell", "strengths": "fine \udfff",
             "feedback": "tab\tand\nnew line kept"}
    activity = card_action(SaveDraft.verb, {"audit_id": audit_id, **dirty}, user=AUDITOR,
                           service_url=service.connector.url)
    # The JSON a client sends: lone surrogates as \u escapes, as json.dumps writes them.
    resp = await post_raw(service, json.dumps(activity))
    assert resp.status == 200, await resp.text()
    saved = (await audit_row(ctx, audit_id)).draft
    assert saved["worries"] == "ok \ufffd then NUL and bell"
    assert saved["strengths"] == "fine \ufffd"
    assert saved["feedback"] == "tab\tand\nnew line kept"
    card = await click(service, OpenAudit.verb, OpenAudit(audit_id).pack())
    assert "ok \ufffd then NUL and bell" in json.dumps(card, ensure_ascii=False)


@pytest.mark.parametrize("audit_id", [2**31, 2**31 - 1 + 10, 2**63, -(2**31) - 1, "2147483648",
                                      "١٢", "²", 1e300, "1e3"])
async def test_out_of_range_audit_ids_are_refused_without_a_database_error(
        service: Any, audit_id: Any, caplog: pytest.LogCaptureFixture) -> None:
    await seed(service.ctx)
    for verb in (OpenAudit.verb, SaveDraft.verb, SubmitAudit.verb):
        resp = await service.post(card_action(verb, {"audit_id": audit_id}, user=AUDITOR,
                                              service_url=service.connector.url))
        assert resp.status == 200
        body = await resp.json()
        assert "did not work" in json.dumps(body["value"]), body
    assert "handler failed" not in caplog.text


async def test_a_nul_in_the_senders_name_or_text_does_not_reach_the_database(service: Any) -> None:
    fc = service.connector
    person = User.named("Nul Person")
    await add_staff(service.ctx, "N1", person, ["team_manager"])
    activity = message("he\x00lp", user=person, service_url=fc.url)
    activity["from"]["name"] = "Nul\x00 Person \ud83d"
    activity["channelData"]["team"] = {"id": "19:team@thread", "name": "Team\x00 \ud800"}
    resp = await service.post(activity)
    assert resp.status in (200, 201)
    texts = fc.texts(personal_conversation_id(person))
    assert len(texts) == 1 and "**help**" in texts[0]


# ---------------------------------------------------------------------------- item 7


async def test_a_form_submitted_as_a_message_gets_its_errors_back(service: Any) -> None:
    ctx = service.ctx
    audit_id = await seed(ctx)
    fc = service.connector
    values = good_form(ctx.framework.tools["case_audit"], domain__review="")
    resp = await service.post(submit({"verb": SubmitAudit.verb, "audit_id": audit_id, **values},
                                     user=AUDITOR, service_url=fc.url))
    assert resp.status in (200, 201)
    conv = personal_conversation_id(AUDITOR)
    [card] = fc.cards(conv)
    assert "grade this domain" in json.dumps(card)
    # the entries are kept on the card that came back
    assert values[fr.OVERALL] in json.dumps(card)
    assert (await audit_row(ctx, audit_id)).status != "submitted"


async def test_a_refusal_of_a_form_submitted_as_a_message_comes_back_as_text(service: Any) -> None:
    audit_id = await seed(service.ctx)
    fc = service.connector
    stranger = User.named("Olly Other")
    resp = await service.post(submit({"verb": OpenAudit.verb, "audit_id": audit_id},
                                     user=stranger, service_url=fc.url))
    assert resp.status in (200, 201)
    [text] = fc.texts(personal_conversation_id(stranger))
    assert "Nothing was changed" in text


# ---------------------------------------------------------------------------- item 8


async def _delegation_setup(service: Any) -> int:
    ctx = service.ctx
    await seed(ctx)
    fc = service.connector
    async with ctx.sessions() as s:
        delegate = await s.get(Staff, "DEL1")
        assert delegate is not None
    fc.add_users(User.named("Dee Delegate"))
    return 0


@pytest.mark.parametrize("status", [429, 502, 503])
async def test_a_reply_the_connector_refuses_is_queued_not_turned_into_an_apology(
        service: Any, status: int) -> None:
    ctx = service.ctx
    fc = service.connector
    await _delegation_setup(service)
    fc.fail_next(status, times=1, match="reply_to_activity",
                 retry_after=0)
    resp = await service.post(message("delegate C-1001 to dee.delegate@council.example",
                                      user=LEAD, service_url=fc.url))
    assert resp.status in (200, 201)
    conv = personal_conversation_id(LEAD)
    async with ctx.sessions() as s:
        audit = (await s.scalars(select(Audit))).one()
        assert audit.delegate_id == "DEL1"
        logged = list(await s.scalars(select(AuditLogEntry.action)))
    assert "audit.delegated" in logged or any("delegat" in a for a in logged)
    confirmation = await fc.wait_for(lambda c: any("Dee Delegate" in t for t in c.texts(conv)),
                                     timeout=15)
    assert confirmation
    texts = fc.texts(conv)
    assert not any("something went wrong" in t for t in texts), texts
    assert sum("Dee Delegate" in t for t in texts) == 1
    for _ in range(100):  # the sender marks the row just after the connector took it
        async with ctx.sessions() as s:
            rows = list(await s.scalars(select(OutboxMessage).where(
                OutboxMessage.conversation_id == conv)))
        if rows and rows[0].status == "sent":
            break
        await asyncio.sleep(0.05)
    assert len(rows) == 1 and rows[0].status == "sent"
