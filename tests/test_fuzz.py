"""Hostile activities and card payloads through the real HTTP endpoint (issue 11).

Hypothesis generates requests an attacker (or a broken client) could send: real Teams
activities and card clicks with fields removed, retyped or filled with hostile values
(lone surrogates, NUL, control characters, huge numbers, deep structures, template
braces), and raw bodies that are not activities at all. Each goes as one HTTP request to
``POST /api/messages`` of the real service (init_app, CloudAdapter, the outbox sender)
listening on 127.0.0.1, with the fake Bot Connector as every answerable service URL.

Asserted for every request: no 5xx. Asserted after the run: the service is healthy and
still answers, no turn failed on our side (no apology was needed), and no draft or
submitted audit changed (the identities the fuzzer plays may not change them).

``QABOT_FUZZ_EXAMPLES`` sets the number of requests per database (2,000 by default;
``make fuzz`` runs 20,000). Every address a generated request can name is on loopback.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cards.payloads import OpenAudit, SaveDraft, SubmitAudit
from qa import form_rules as fr
from store.models import AllocationRun, Audit, AuditAction, DomainGrade, Staff
from tests.fakes import (
    BOT_ID,
    User,
    card_action,
    conversation_update,
    installation_update,
    message,
    submit,
)
from tests.test_audit_form import AUDITOR, OTHER, STRANGER, good_form, seed

EXAMPLES = int(os.environ.get("QABOT_FUZZ_EXAMPLES", "2000"))

SPECIALS = ["\ud800", "\udfff", "\ud83d", "\x00", "\x07", "\x1b[31m", "\u202e", "\ufeff",
            "{id}", "{conversationId}", "%s%n", "' OR 1=1 --", "<script>", "\\", "\"",
            "🙂", "é", "\r\n", "\t", "", " ", "a" * 3000, "0" * 30, "-1", "2147483648",
            "²", "١٢", "NaN", "null", "[]", "{}"]


# ---------------------------------------------------------------------------- the service


@dataclass
class Live:
    """The service on a loopback port, run by its own event loop in a thread."""

    port: int
    loop: asyncio.AbstractEventLoop
    services: Any
    connector: Any

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class Client:
    """One keep-alive HTTP connection to the service (reopened when the server closes it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.conn.close()
                    self.conn = None
                return response.status, data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class _TurnFailures(logging.Handler):
    """Counts the log records that mean our code failed (and a person got an apology)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def live(settings: Any, framework: Any, fake_connector: Any) -> Iterator[Live]:
    from aiohttp import web

    from qabot.app import SERVICES, init_app

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        app = init_app(settings, framework=framework)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder.update(runner=runner, port=runner.addresses[0][1], services=app[SERVICES])

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="fuzz-service", daemon=True)
    thread.start()
    assert ready.wait(30)
    live = Live(holder["port"], loop, holder["services"], fake_connector)
    try:
        yield live
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


async def _seed(services: Any) -> dict[str, int]:
    """A submitted audit and a saved draft, both AUD1's (the auditor's)."""
    submitted_id = await seed(services)
    async with services.sessions.begin() as s:
        audit = await s.get(Audit, submitted_id)
        assert audit is not None
        run = AllocationRun(key="fuzz:reaudit", kind="monthly", month=audit.month, seed=1,
                            created_by="test", deadline=audit.deadline, summary={})
        s.add(run)
        await s.flush()
        draft = Audit(run_id=run.id, case_ref=audit.case_ref, auditor_id="AUD1",
                      team_id=audit.team_id, area=audit.area, tool=audit.tool,
                      month=audit.month, reason="reaudit", status="allocated",
                      deadline=audit.deadline + timedelta(days=7),
                      look_back_from=audit.look_back_from, look_back_to=audit.look_back_to,
                      draft={"worries": "kept as it was", "overall": "good"},
                      draft_saved_at=services.clock())
        s.add(draft)
        await s.flush()
        draft_id = draft.id
    return {"submitted": submitted_id, "draft": draft_id}


async def _submit(services: Any, audit_id: int) -> None:
    from flows.audit_form import submit as submit_audit

    values = good_form(services.framework.tools["case_audit"])
    submission, errors = fr.validate(values, tool=services.framework.tools["case_audit"],
                                     framework=services.framework,
                                     today=services.clock().date(), owner_ids=frozenset())
    assert submission is not None, errors
    await submit_audit(services, audit_id, "AUD1", submission)


async def _snapshot(services: Any) -> dict[str, Any]:
    """Everything a hostile request must not change about audits."""
    async with services.sessions() as s:
        audits = [
            (a.id, a.status, json.dumps(a.draft, sort_keys=True), a.draft_saved_at,
             a.submitted_at, a.submitted_by, a.overall_grade, a.outcomes,
             json.dumps(a.answers, sort_keys=True), a.delegate_id, a.version,
             a.safeguarding_concern)
            for a in await s.scalars(select(Audit).order_by(Audit.id))]
        grades = await s.scalar(select(func.count()).select_from(DomainGrade))
        actions = await s.scalar(select(func.count()).select_from(AuditAction))
        staff = [(p.staff_id, p.teams_user_id, p.aad_object_id, p.active)
                 for p in await s.scalars(select(Staff).order_by(Staff.staff_id))]
    return {"audits": audits, "grades": grades, "actions": actions, "staff": staff}


# ---------------------------------------------------------------------------- strategies


hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(SPECIALS),
    st.lists(st.one_of(st.text(max_size=8), st.sampled_from(SPECIALS)), max_size=4)
    .map("".join),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), hostile_text,
    st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**63, 10**400 // 10**390]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=12,
)

#: Every identity the fuzzer plays; none of them may change the draft (AUD1's).
IDENTITIES = [STRANGER, OTHER, User.named("Fuzz Person"),
              User(id="29:\u202e", name="\x00", aad_object_id="00000000-0000-0000-0000-0"
                   "00000000000", email="x@council.example")]


def _service_urls(fc_url: str) -> st.SearchStrategy[Any]:
    # Only loopback addresses or things that are not URLs at all: a generated host name
    # would make the service (or its DNS resolver) reach beyond the machine.
    return st.sampled_from([fc_url, fc_url.rstrip("/"), "http://127.0.0.1:9/",
                            "https://127.0.0.1:1/x", "http://localhost:9/", "", None, 7,
                            "ftp://127.0.0.1/", "javascript:alert(1)", "{id}",
                            "http://127.0.0.1:9/{id}/", "http://user:pw@127.0.0.1:9/",
                            "http://127.0.0.1:99999/", "/relative", ["http://127.0.0.1:9/"],
                            "http://[::1", "\ud800"])


PATHS = ["type", "text", "name", "id", "replyToId", "action", "locale", "timestamp",
         "value", "value.action", "value.action.verb", "value.action.data",
         "value.action.data.audit_id", "value.verb", "value.audit_id", "from", "from.id",
         "from.name", "from.aadObjectId", "conversation", "conversation.id",
         "conversation.conversationType", "conversation.tenantId", "recipient",
         "recipient.id", "channelData", "channelData.tenant", "channelData.tenant.id",
         "channelData.team", "channelData.team.name", "channelData.eventType",
         "channelData.source", "entities", "entities.0", "membersAdded", "membersRemoved",
         "attachments", "channelId", "textFormat", "localTimestamp"]


def _apply(activity: dict[str, Any], path: str, value: Any, delete: bool) -> None:
    node: Any = activity
    keys = path.split(".")
    for key in keys[:-1]:
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and isinstance(node.get(key), dict | list):
            node = node[key]
        elif isinstance(node, dict):
            node[key] = {}
            node = node[key]
        else:
            return
    last = keys[-1]
    if isinstance(node, list):
        if last.isdigit() and int(last) < len(node):
            node[int(last)] = value
        return
    if delete:
        node.pop(last, None)
    else:
        node[last] = value


def _one_in(n: int) -> st.SearchStrategy[bool]:
    return st.sampled_from([False] * (n - 1) + [True])


@st.composite
def activities(draw: st.DrawFn, fc_url: str, ids: dict[str, int], tool_inputs: list[str],
               verbs: list[str]) -> dict[str, Any]:
    user = draw(st.sampled_from(IDENTITIES))
    kind = draw(st.sampled_from(["message", "command", "invoke", "submit", "install",
                                 "update"]))
    audit_id = draw(st.one_of(st.sampled_from([ids["draft"], ids["submitted"],
                                               str(ids["draft"])]), scalars))
    data: dict[str, Any] = {"audit_id": audit_id}
    for input_id in draw(st.lists(st.sampled_from(tool_inputs), max_size=6, unique=True)):
        data[input_id] = draw(st.one_of(hostile_text, json_values))
    if kind == "message":
        activity = message(draw(hostile_text), user=user, service_url=fc_url)
    elif kind == "command":
        words = draw(st.sampled_from(["help", "status", "delegate C-1001 to x@council.example",
                                      "delegate", "HELP me", "export", "digest"]))
        activity = message(words + draw(st.sampled_from(["", " ", " \x00", " \ud800"])),
                           user=user, service_url=fc_url,
                           conversation_type=draw(st.sampled_from(["personal", "groupChat",
                                                                   "channel"])))
    elif kind == "invoke":
        activity = card_action(draw(st.one_of(st.sampled_from(verbs), hostile_text)), data,
                               user=user, service_url=fc_url)
    elif kind == "submit":
        activity = submit({"verb": draw(st.one_of(st.sampled_from(verbs), json_values)),
                           **data}, user=user, service_url=fc_url)
    elif kind == "install":
        activity = installation_update(draw(st.sampled_from(["add", "remove"])), user=user,
                                       service_url=fc_url)
    else:
        member = draw(st.one_of(st.sampled_from([BOT_ID, user.id, OTHER.id]), hostile_text))
        activity = conversation_update(members_added=[{"id": member}], user=user,
                                       service_url=fc_url)
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=2)):
        value = draw(json_values)
        _apply(activity, path, value, delete=draw(st.booleans()))
    if draw(_one_in(8)):
        activity["serviceUrl"] = draw(_service_urls(fc_url))
    return activity


@st.composite
def requests(draw: st.DrawFn, fc_url: str, ids: dict[str, int], tool_inputs: list[str],
             verbs: list[str]) -> tuple[bytes, dict[str, str]]:
    headers = {"Content-Type": draw(st.sampled_from(
        ["application/json"] * 17 + ["application/json; charset=utf-8", "text/plain",
                                     "application/json; charset=latin-1"]))}
    if draw(_one_in(10)):
        headers["Authorization"] = draw(st.sampled_from(
            ["Bearer", "Bearer ", "Bearer a.b.c", "Basic x", "Bearer eyJhbGciOiJub25lIn0.e30.",
             "bearer x y"]))
    # Hypothesis favours small integers and the first of a list: say how often, plainly.
    shape = draw(st.sampled_from(["activity"] * 17 + ["bytes", "raw", "json"]))
    if shape == "bytes":
        body = draw(st.binary(max_size=64))
    elif shape == "raw":
        body = draw(st.sampled_from([b"null", b"[]", b"42", b'"x"', b"[" * 100_000,
                                     b'{"type":"message","value":' + b"[" * 5000 + b"]" * 5000
                                     + b"}", b"\xff\xfe{}", b"{", b"{}", b'{"type":null}']))
    elif shape == "json":
        body = json.dumps(draw(json_values)).encode()
    else:
        activity = draw(activities(fc_url, ids, tool_inputs, verbs))
        text = json.dumps(activity)
        if draw(_one_in(30)):
            text = text[:draw(st.integers(0, len(text)))]  # cut short
        body = text.encode("utf-8", "surrogatepass")
    return body, headers


# ---------------------------------------------------------------------------- the test


def test_hostile_requests_get_no_5xx_and_change_no_audit(live: Live) -> None:
    fc_url = live.connector.url
    ids = live.run(_seed(live.services))
    live.run(_submit(live.services, ids["submitted"]))
    before = live.run(_snapshot(live.services))
    tool = live.services.framework.tools["case_audit"]
    tool_inputs = fr.input_ids(tool, live.services.framework.max_actions)
    verbs = [OpenAudit.verb, SaveDraft.verb, SubmitAudit.verb, *live.services.router.cards]
    client = Client(live.port)
    failures = _TurnFailures()
    watched = [logging.getLogger(name) for name in ("bot.handler", "bot.teams", "aiohttp.server",
                                                    "aiohttp.web", "qabot.app")]
    for logger in watched:
        logger.addHandler(failures)
    statuses: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(requests(fc_url, ids, tool_inputs, verbs))
    def one(request: tuple[bytes, dict[str, str]]) -> None:
        body, headers = request
        status, answer = client.request("POST", "/api/messages", body, headers)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (status, answer[:300], body[:300])

    try:
        one()
    finally:
        for logger in watched:
            logger.removeHandler(failures)
    assert sum(statuses.values()) >= EXAMPLES
    # Most requests must get past the edge, or the handlers behind it went untested.
    assert statuses.get(200, 0) + statuses.get(201, 0) >= 0.3 * EXAMPLES, statuses
    status, body = client.request("GET", "/healthz")
    assert status == 200, body
    after = live.run(_snapshot(live.services))
    assert after == before
    assert [r.getMessage() for r in failures.records] == []
    # and it still answers a person properly
    status, _ = client.request("POST", "/api/messages",
                               json.dumps(message("help", user=AUDITOR,
                                                  service_url=fc_url)).encode(),
                               {"Content-Type": "application/json"})
    assert status in (200, 201)


def test_the_auditors_own_hostile_entries_are_stored_clean_and_the_form_opens(
        live: Live) -> None:
    fc_url = live.connector.url
    ids = live.run(_seed(live.services))
    tool = live.services.framework.tools["case_audit"]
    text_inputs = [fr.STRENGTHS, fr.WORRIES, fr.BETTER, fr.FEEDBACK, fr.CELEBRATE,
                   fr.action_id(1, "what")]
    client = Client(live.port)
    assert tool.domains

    @settings(max_examples=max(100, EXAMPLES // 10), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.dictionaries(st.sampled_from(text_inputs), hostile_text, min_size=1))
    def one(entries: dict[str, str]) -> None:
        save = card_action(SaveDraft.verb, {"audit_id": ids["draft"], **entries},
                           user=AUDITOR, service_url=fc_url)
        status, answer = client.request(
            "POST", "/api/messages", json.dumps(save).encode(),
            {"Content-Type": "application/json"})
        assert status == 200, answer[:300]
        open_ = card_action(OpenAudit.verb, {"audit_id": ids["draft"]}, user=AUDITOR,
                            service_url=fc_url)
        status, answer = client.request(
            "POST", "/api/messages", json.dumps(open_).encode(),
            {"Content-Type": "application/json"})
        assert status == 200, answer[:300]
        card = json.loads(answer)
        assert card["type"] == "application/vnd.microsoft.card.adaptive"
        assert "did not work" not in answer.decode() and "went wrong" not in answer.decode()
        draft = live.run(_draft(live.services, ids["draft"]))
        for value in draft.values():
            value.encode("utf-8")  # no lone surrogate was stored
            assert "\x00" not in value

    one()


async def _draft(services: Any, audit_id: int) -> dict[str, str]:
    async with services.sessions() as s:
        audit = await s.get(Audit, audit_id)
        assert audit is not None
        return dict(audit.draft or {})
