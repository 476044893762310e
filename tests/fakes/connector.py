"""A fake Bot Connector (Teams' outbound REST API) on 127.0.0.1 for tests and load runs.

The real SDK (botbuilder 4.17.1 ``ConnectorClient`` / ``TeamsConnectorClient``) talks to it
over HTTP, so tests exercise the same serialisation, URL quoting, error parsing and msrest
retry policy as production, with no network.

Why a thread: ``TeamsInfo.get_team_details`` and ``get_team_channels`` call the *synchronous*
``TeamsConnectorClient`` on the event loop. A server sharing the test's loop could never answer
them (deadlock), so the fake runs its own aiohttp loop in a daemon thread. Everything it
records is guarded by a lock; inspection helpers return copies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import itertools
import json
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .activities import BOT_ID, Team, User, personal_conversation_id_for, teams_member

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"

# Teams' documented per-bot, per-conversation limits for sends (7/1s, 8/2s, 60/30s, 1800/1h).
TEAMS_CONVERSATION_LIMITS: tuple[tuple[int, float], ...] = (
    (7, 1.0),
    (8, 2.0),
    (60, 30.0),
    (1800, 3600.0),
)

# Error codes in the Bot Connector's ``{"error": {"code", "message"}}`` body, by status.
ERROR_CODES: dict[int, str] = {
    400: "BadArgument",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    412: "PreconditionFailed",
    413: "MessageSizeTooBig",
    429: "ThrottledRequest",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

# Activity fields that differ between two deliveries of the same logical message.
VOLATILE_KEYS: frozenset[str] = frozenset({"id", "timestamp", "localTimestamp", "replyToId"})

_BODY: web.RequestKey[Any] = web.RequestKey("fake_connector_body", object)
_THREAD_OPS = frozenset(
    {"send_to_conversation", "reply_to_activity", "update_activity", "delete_activity"}
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake answered, including ones it failed on purpose."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    status: int
    at: float
    operation: str | None
    conversation_id: str | None
    activity_id: str | None
    fault: str | None = None
    response: Any = None


@dataclass(frozen=True)
class Delivery:
    """An activity the fake accepted (send, reply, update, or the one inside a create)."""

    operation: str
    conversation_id: str
    activity_id: str
    reply_to_id: str | None
    activity: dict[str, Any]
    at: float


@dataclass
class _FailRule:
    status: int
    remaining: int
    retry_after: float | None
    match: str | None
    code: str | None
    message: str | None
    drop: str | None = None  # "before" or "after" accepting: close without answering

    def matches(self, operation: str | None, method: str, path: str) -> bool:
        if self.match is None:
            return True
        return self.match == operation or re.search(self.match, f"{method} {path}") is not None


@dataclass
class _RandomFaults:
    rates: dict[int, float]
    rng: random.Random
    retry_after: float | None
    match: str | None


@dataclass
class _Limits:
    per_conversation: tuple[tuple[int, float], ...]
    tenant_per_second: float | None
    windows: dict[str, deque[float]] = field(default_factory=dict)
    tenant_windows: dict[str, deque[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Fault:
    kind: str
    status: int
    retry_after: float | None
    code: str | None = None
    message: str | None = None


MemberLike = User | Mapping[str, Any]
Predicate = Callable[["FakeConnector"], bool]


def max_in_window(times: Iterable[float], window: float) -> int:
    """The most events inside any sliding window of ``window`` seconds (for checking the
    rate at which calls reached the fake)."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _format_retry_after(seconds: float) -> str:
    """HTTP allows only whole seconds; urllib3 raises on "0.5" when it retries GET/PUT/DELETE."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return repr(float(seconds))


class FakeConnector:
    """Fake Bot Connector: records what the bot sent, answers rosters, injects faults."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        default_page_size: int = 200,
        page_size_limits: tuple[int, int] = (1, 500),
        known_users_only: bool = False,
        bot_id: str = BOT_ID,
    ) -> None:
        """``page_size_limits`` clamps ``pageSize`` (Teams documents 50..500; 1 keeps tests small).

        ``known_users_only``: creating a 1:1 with a user in no roster answers 403, as Teams
        does when the app is not installed for that user.
        """
        self.latency = latency
        self.default_page_size = default_page_size
        self.page_size_limits = page_size_limits
        self.known_users_only = known_users_only
        self.bot_id = bot_id

        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._deliveries: list[Delivery] = []
        self._updates: list[Delivery] = []
        self._created: list[dict[str, Any]] = []
        self._deleted: list[tuple[str, str]] = []
        self._fail_rules: list[_FailRule] = []
        self._random: _RandomFaults | None = None
        self._limits: _Limits | None = None
        self._violations = 0
        self._ids = itertools.count(1)
        self._token_salt = f"{random.getrandbits(32):08x}"

        self._rosters: dict[str, list[dict[str, Any]]] = {}
        self._directory: dict[str, dict[str, Any]] = {}
        self._teams: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, list[dict[str, Any]]] = {}
        self._channel_team: dict[str, str] = {}
        self._conversation_tenant: dict[str, str] = {}

        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Service URL to put in activities' ``serviceUrl`` (ends with "/")."""
        if self._port is None:
            raise RuntimeError("FakeConnector is not started")
        return f"http://127.0.0.1:{self._port}/"

    def start(self) -> FakeConnector:
        """Start the server thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._serve, name="fake-connector", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("FakeConnector did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError("FakeConnector failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop the server and join its thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> FakeConnector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeConnector:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=1.0)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self._runner = runner
            self._port = int(runner.addresses[0][1])
        except BaseException as exc:  # surfaced to start() in the caller's thread
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        conv = "/v3/conversations/{cid}"
        app.router.add_post("/v3/conversations", self._create, name="create_conversation")
        app.router.add_post(conv + "/activities", self._send, name="send_to_conversation")
        app.router.add_post(conv + "/activities/{aid}", self._reply, name="reply_to_activity")
        app.router.add_put(conv + "/activities/{aid}", self._update, name="update_activity")
        app.router.add_delete(conv + "/activities/{aid}", self._delete, name="delete_activity")
        app.router.add_get(conv + "/members", self._members, name="get_conversation_members")
        app.router.add_get(conv + "/members/{mid}", self._member, name="get_conversation_member")
        app.router.add_get(
            conv + "/pagedmembers", self._paged_members, name="get_conversation_paged_members"
        )
        app.router.add_get("/v3/teams/{tid}", self._team_details, name="get_team_details")
        app.router.add_get(
            "/v3/teams/{tid}/conversations", self._team_channels, name="get_teams_channels"
        )
        return app

    # ------------------------------------------------------------------ configuration

    def set_roster(
        self,
        conversation_or_team_id: str,
        members: Iterable[MemberLike],
        *,
        tenant_id: str | None = None,
    ) -> None:
        """Members answered for a conversation or team id (and the team's channels)."""
        entries = [self._member_dict(m, tenant_id) for m in members]
        with self._lock:
            self._rosters[conversation_or_team_id] = entries
            for entry in entries:
                self._directory[entry["id"]] = entry

    def add_users(self, *users: MemberLike, tenant_id: str | None = None) -> None:
        """Users known to the tenant (for GET /members/{id} and 1:1 creation) without a roster."""
        with self._lock:
            for user in users:
                entry = self._member_dict(user, tenant_id)
                self._directory[entry["id"]] = entry

    def add_team(
        self,
        team: Team | str,
        *,
        name: str | None = None,
        aad_group_id: str | None = None,
        channels: Sequence[tuple[str, str | None]] | None = None,
        members: Iterable[MemberLike] = (),
        tenant_id: str | None = None,
    ) -> None:
        """Register a team: details, channels (General's id is the team id) and roster."""
        if isinstance(team, str):
            team = Team(id=team, name=name or "Team", aad_group_id=aad_group_id or "")
        chans = list(channels if channels is not None else team.channels or [(team.id, None)])
        channel_list = [
            {"id": cid} if cname is None else {"id": cid, "name": cname} for cid, cname in chans
        ]
        member_list = list(members)
        with self._lock:
            self._teams[team.id] = {
                "id": team.id,
                "name": name or team.name,
                "aadGroupId": aad_group_id or team.aad_group_id,
                "channelCount": len(channel_list),
                "memberCount": len(member_list),
                "type": "standard",
            }
            self._channels[team.id] = channel_list
            for channel in channel_list:
                self._channel_team[channel["id"]] = team.id
        self.set_roster(team.id, member_list, tenant_id=tenant_id)

    @staticmethod
    def _member_dict(member: MemberLike, tenant_id: str | None) -> dict[str, Any]:
        if isinstance(member, User):
            return teams_member(member, **({"tenant_id": tenant_id} if tenant_id else {}))
        return dict(member)

    # ------------------------------------------------------------------ faults and limits

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        match: str | None = None,
        *,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status``, then behave normally.

        ``match`` is an operation name (``send_to_conversation``, ``reply_to_activity``,
        ``create_conversation``, ``update_activity``...) or a regex searched in
        ``"METHOD /decoded/path"``. Rules queue in order; the first live matching rule wins.
        """
        with self._lock:
            self._fail_rules.append(_FailRule(status, times, retry_after, match, code, message))

    def drop_next(
        self, times: int = 1, match: str | None = None, *, after_accept: bool = False
    ) -> None:
        """Close the next matching connections without an answer.

        With ``after_accept`` the activity is accepted first, so a sender that retries will
        deliver it twice: the ambiguous failure that ``duplicates()`` exists to catch. The SDK
        raises msrest ``ClientRequestError`` (no status) for these.
        """
        with self._lock:
            self._fail_rules.append(
                _FailRule(0, times, None, match, None, None, "after" if after_accept else "before")
            )

    def fail_randomly(
        self,
        rates: Mapping[int, float],
        seed: int,
        *,
        retry_after: float | None = 1.0,
        match: str | None = None,
    ) -> None:
        """Fail each matching request with probability ``rates[status]`` (seeded, for load tests).

        ``retry_after`` is sent with 429 and 503 answers only.
        """
        if sum(rates.values()) > 1.0:
            raise ValueError("failure rates must sum to at most 1.0")
        with self._lock:
            self._random = _RandomFaults(dict(rates), random.Random(seed), retry_after, match)

    def enforce_limits(
        self,
        per_conversation: Sequence[tuple[int, float]] = TEAMS_CONVERSATION_LIMITS,
        tenant_per_second: float | None = None,
    ) -> None:
        """Answer 429 + Retry-After when sends exceed sliding windows, as Teams throttles.

        ``per_conversation`` windows apply to send/reply/update/delete in one conversation;
        ``tenant_per_second`` to every request of the tenant. Only accepted requests fill the
        windows; every rejection counts in ``limit_violations``.
        """
        with self._lock:
            self._limits = _Limits(tuple(per_conversation), tenant_per_second)

    def clear_faults(self) -> None:
        """Drop pending fail_next rules, random failures and limits."""
        with self._lock:
            self._fail_rules.clear()
            self._random = None
            self._limits = None

    def reset(self) -> None:
        """Forget everything recorded (rosters, faults and limits are kept)."""
        with self._lock:
            self._requests.clear()
            self._deliveries.clear()
            self._updates.clear()
            self._created.clear()
            self._deleted.clear()
            self._violations = 0
            if self._limits is not None:
                self._limits.windows.clear()
                self._limits.tenant_windows.clear()

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered, in arrival order (failed ones included)."""
        with self._lock:
            return list(self._requests)

    @property
    def deliveries(self) -> list[Delivery]:
        """Accepted sends/replies (and activities posted inside a create), with ids."""
        with self._lock:
            return list(self._deliveries)

    def sent(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """Activities accepted by send/reply (or inside a create), in order."""
        return [copy.deepcopy(d.activity) for d in self._filtered(self.deliveries, conversation_id)]

    @property
    def created(self) -> list[dict[str, Any]]:
        """Bodies of successful POST /v3/conversations calls."""
        with self._lock:
            return copy.deepcopy(self._created)

    @property
    def updated(self) -> list[dict[str, Any]]:
        """Bodies of accepted PUT (update activity) calls, in order."""
        with self._lock:
            return [copy.deepcopy(d.activity) for d in self._updates]

    @property
    def update_deliveries(self) -> list[Delivery]:
        """Accepted updates with their conversation and activity ids."""
        with self._lock:
            return list(self._updates)

    @property
    def deleted(self) -> list[tuple[str, str]]:
        """(conversation id, activity id) of accepted deletes."""
        with self._lock:
            return list(self._deleted)

    @property
    def limit_violations(self) -> int:
        """How many requests ``enforce_limits`` answered with 429."""
        with self._lock:
            return self._violations

    def statuses(self) -> Counter[int]:
        """Count of answered statuses, e.g. ``{201: 40, 429: 3}``."""
        return Counter(r.status for r in self.requests)

    def texts(self, conversation_id: str | None = None) -> list[str]:
        """Text of accepted activities that have any."""
        return [a["text"] for a in self.sent(conversation_id) if a.get("text")]

    def cards(
        self, conversation_id: str | None = None, *, include_updates: bool = False
    ) -> list[dict[str, Any]]:
        """Adaptive Card contents from accepted activities (optionally updates too), in order."""
        with self._lock:
            items = list(self._deliveries) + (list(self._updates) if include_updates else [])
        items.sort(key=lambda d: d.at)
        return [
            copy.deepcopy(att.get("content"))
            for d in self._filtered(items, conversation_id)
            for att in d.activity.get("attachments") or []
            if att.get("contentType") == ADAPTIVE_CARD
        ]

    def duplicates(self, ignore_keys: Iterable[str] = VOLATILE_KEYS) -> list[dict[str, Any]]:
        """Each extra acceptance of identical content in the same conversation.

        Empty means no double delivery; one entry per redundant delivery otherwise.
        """
        ignore = frozenset(ignore_keys)
        seen: set[tuple[str, str]] = set()
        dupes: list[dict[str, Any]] = []
        for d in self.deliveries:
            body = {k: v for k, v in d.activity.items() if k not in ignore}
            key = (d.conversation_id, json.dumps(body, sort_keys=True, default=str))
            if key in seen:
                dupes.append(copy.deepcopy(d.activity))
            seen.add(key)
        return dupes

    async def wait_for(
        self,
        predicate_or_count: int | Predicate,
        timeout: float = 5.0,  # noqa: ASYNC109 - seconds, like the other test helpers
    ) -> list[dict[str, Any]]:
        """Wait until N activities were accepted (or ``predicate(fake)`` holds); return sent().

        For proactive paths (scheduler, outbox) that send after the test's call returns.
        """
        if isinstance(predicate_or_count, int):
            count = predicate_or_count

            def done(fc: FakeConnector) -> bool:
                return len(fc.deliveries) >= count

        else:
            done = predicate_or_count
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        waiter = (loop, event)
        with self._lock:
            self._waiters.append(waiter)
        deadline = loop.time() + timeout
        try:
            while not done(self):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(
                        f"wait_for({predicate_or_count!r}) timed out after {timeout}s; "
                        f"accepted so far: {self.texts() or len(self.deliveries)}"
                    )
                event.clear()
                try:
                    await asyncio.wait_for(event.wait(), remaining)
                except TimeoutError:
                    continue
        finally:
            with self._lock:
                self._waiters.remove(waiter)
        return self.sent()

    @staticmethod
    def _filtered(items: Iterable[Delivery], conversation_id: str | None) -> list[Delivery]:
        return [d for d in items if conversation_id is None or d.conversation_id == conversation_id]

    # ------------------------------------------------------------------ server internals

    def _new_activity_id(self) -> str:
        return str(1_800_000_000_000 + next(self._ids))

    def _notify(self) -> None:
        for loop, event in list(self._waiters):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the waiting loop has closed
                pass

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        at = time.monotonic()
        route = request.match_info.route
        operation = route.name if route is not None else None
        cid = request.match_info.get("cid")
        aid = request.match_info.get("aid")
        path = unquote(request.path)
        body: Any = None
        raw = await request.read() if request.can_read_body else b""
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        if self.latency > 0:
            await asyncio.sleep(self.latency)

        fault = self._decide_fault(operation, request.method, path, cid, body)
        if fault is not None and fault.kind.startswith("drop_"):
            return await self._drop(request, handler, fault, body, at, path)
        if fault is not None:
            response: web.StreamResponse = self._error(
                fault.status, fault.code, fault.message, fault.retry_after
            )
        else:
            request[_BODY] = body
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # unknown route or method: answer like the service
                response = self._error(exc.status, None, exc.reason, None)
            except Exception as exc:  # a bug in the fake must show up in .requests, not hang
                response = self._error(500, "FakeConnectorError", repr(exc), None)
        answered: Any = None
        if isinstance(response, web.Response) and response.body is not None:
            try:
                answered = json.loads(response.body)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                answered = None
        record = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            headers=dict(request.headers),
            status=response.status,
            at=at,
            operation=operation,
            conversation_id=cid,
            activity_id=aid,
            fault=fault.kind if fault else None,
            response=answered,
        )
        with self._lock:
            self._requests.append(record)
            self._notify()
        return response

    async def _drop(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        fault: _Fault,
        body: Any,
        at: float,
        path: str,
    ) -> web.StreamResponse:
        """Record, optionally accept, then cut the connection so the client gets no answer."""
        if fault.kind == "drop_after":
            request[_BODY] = body
            await handler(request)
        record = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            headers=dict(request.headers),
            status=0,
            at=at,
            operation=request.match_info.route.name,
            conversation_id=request.match_info.get("cid"),
            activity_id=request.match_info.get("aid"),
            fault=fault.kind,
        )
        with self._lock:
            self._requests.append(record)
            self._notify()
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp treats this as a lost client, quietly

    def _tenant_of(self, cid: str | None, body: Any) -> str:
        if isinstance(body, dict):
            conv = body.get("conversation")
            channel_data = body.get("channelData")
            tenant_data = channel_data.get("tenant") if isinstance(channel_data, dict) else None
            tenant = (
                (conv.get("tenantID") or conv.get("tenantId") if isinstance(conv, dict) else None)
                or body.get("tenantID")
                or (tenant_data.get("id") if isinstance(tenant_data, dict) else None)
            )
            if tenant:
                if cid:
                    self._conversation_tenant[cid] = tenant
                return str(tenant)
        return self._conversation_tenant.get(cid or "", "*")

    def _decide_fault(
        self, operation: str | None, method: str, path: str, cid: str | None, body: Any
    ) -> _Fault | None:
        """Pick at most one fault, in order: fail_next, fail_randomly, enforce_limits."""
        with self._lock:
            for rule in self._fail_rules:
                if rule.remaining > 0 and rule.matches(operation, method, path):
                    rule.remaining -= 1
                    self._fail_rules = [r for r in self._fail_rules if r.remaining > 0]
                    if rule.drop:
                        return _Fault(f"drop_{rule.drop}", 0, None)
                    return _Fault(
                        "fail_next", rule.status, rule.retry_after, rule.code, rule.message
                    )
            rnd = self._random
            if rnd is not None and (
                rnd.match is None
                or rnd.match == operation
                or re.search(rnd.match, f"{method} {path}") is not None
            ):
                draw = rnd.rng.random()
                acc = 0.0
                for status, rate in sorted(rnd.rates.items()):
                    acc += rate
                    if draw < acc:
                        retry = rnd.retry_after if status in (429, 503) else None
                        return _Fault("random", status, retry)
            if self._limits is not None:
                return self._check_limits(operation, cid, body)
        return None

    def _check_limits(self, operation: str | None, cid: str | None, body: Any) -> _Fault | None:
        limits = self._limits
        assert limits is not None
        now = time.monotonic()
        tenant = self._tenant_of(cid, body)
        waits: list[float] = []
        conv_window: deque[float] | None = None
        if cid is not None and operation in _THREAD_OPS and limits.per_conversation:
            longest = max(w for _, w in limits.per_conversation)
            conv_window = limits.windows.setdefault(cid, deque())
            while conv_window and conv_window[0] <= now - longest:
                conv_window.popleft()
            for limit, window in limits.per_conversation:
                inside = [t for t in conv_window if t > now - window]
                if len(inside) >= limit:
                    waits.append(inside[-limit] + window - now)
        tenant_window: deque[float] | None = None
        if limits.tenant_per_second:
            tenant_window = limits.tenant_windows.setdefault(tenant, deque())
            while tenant_window and tenant_window[0] <= now - 1.0:
                tenant_window.popleft()
            if len(tenant_window) >= limits.tenant_per_second:
                waits.append(tenant_window[0] + 1.0 - now)
        if waits:
            self._violations += 1
            return _Fault(
                "limit",
                429,
                max(1, math.ceil(max(waits))),
                "ThrottledRequest",
                "Too many requests; retry after the interval in Retry-After.",
            )
        if conv_window is not None:
            conv_window.append(now)
        if tenant_window is not None:
            tenant_window.append(now)
        return None

    @staticmethod
    def _error(
        status: int, code: str | None, message: str | None, retry_after: float | None
    ) -> web.Response:
        headers = (
            {"Retry-After": _format_retry_after(retry_after)} if retry_after is not None else None
        )
        payload = {
            "error": {
                "code": code or ERROR_CODES.get(status, "ServiceError"),
                "message": message or f"Fake connector answered {status}.",
            }
        }
        return web.json_response(payload, status=status, headers=headers)

    def _accept(self, operation: str, cid: str, body: Any, reply_to: str | None) -> str:
        activity = body if isinstance(body, dict) else {}
        activity_id = self._new_activity_id()
        with self._lock:
            self._deliveries.append(
                Delivery(operation, cid, activity_id, reply_to, activity, time.monotonic())
            )
        return activity_id

    # ------------------------------------------------------------------ handlers

    async def _create(self, request: web.Request) -> web.Response:
        body = request[_BODY]
        if not isinstance(body, dict):
            return self._error(400, None, "Conversation parameters are required.", None)
        channel = ((body.get("channelData") or {}).get("channel") or {}).get("id")
        members = body.get("members") or []
        activity = body.get("activity")
        if channel:
            # A new thread in a channel: Teams posts the activity and names the thread after it.
            if not isinstance(activity, dict):
                return self._error(
                    400, None, "An activity is required to start a channel thread.", None
                )
            activity_id = self._new_activity_id()
            cid = f"{channel};messageid={activity_id}"
            with self._lock:
                self._deliveries.append(
                    Delivery(
                        "create_conversation", cid, activity_id, None, activity, time.monotonic()
                    )
                )
                self._created.append(body)
            return web.json_response({"id": cid, "activityId": activity_id}, status=201)
        if body.get("isGroup") or len(members) != 1:
            return self._error(
                400, None, "Bots can only create 1:1 chats and channel threads.", None
            )
        member = members[0] or {}
        known = self._find_member(member.get("id"), member.get("aadObjectId"))
        if known is None and self.known_users_only:
            return self._error(403, "Forbidden", "The bot is not installed for this user.", None)
        member_id = (known or {}).get("id") or member.get("id") or member.get("aadObjectId")
        if not member_id:
            return self._error(400, None, "A member id is required.", None)
        bot_id = (body.get("bot") or {}).get("id") or self.bot_id
        cid = personal_conversation_id_for(str(member_id), bot_id=bot_id)
        payload: dict[str, Any] = {"id": cid}
        with self._lock:
            self._tenant_of(cid, body)  # remember the tenant for enforce_limits
            self._created.append(body)
            if cid not in self._rosters:
                self._rosters[cid] = [known or {k: v for k, v in member.items() if v is not None}]
            if isinstance(activity, dict):
                activity_id = self._new_activity_id()
                self._deliveries.append(
                    Delivery(
                        "create_conversation", cid, activity_id, None, activity, time.monotonic()
                    )
                )
                payload["activityId"] = activity_id
        return web.json_response(payload, status=201)

    async def _send(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        activity_id = self._accept("send_to_conversation", cid, request[_BODY], None)
        return web.json_response({"id": activity_id}, status=201)

    async def _reply(self, request: web.Request) -> web.Response:
        cid, reply_to = request.match_info["cid"], request.match_info["aid"]
        activity_id = self._accept("reply_to_activity", cid, request[_BODY], reply_to)
        return web.json_response({"id": activity_id}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        cid, aid = request.match_info["cid"], request.match_info["aid"]
        body = request[_BODY] if isinstance(request[_BODY], dict) else {}
        with self._lock:
            self._updates.append(
                Delivery("update_activity", cid, aid, None, body, time.monotonic())
            )
        return web.json_response({"id": aid}, status=200)

    async def _delete(self, request: web.Request) -> web.Response:
        with self._lock:
            self._deleted.append((request.match_info["cid"], request.match_info["aid"]))
        return web.Response(status=200)

    def _find_member(
        self, member_id: str | None, aad_object_id: str | None = None
    ) -> dict[str, Any] | None:
        """Teams accepts either the 29: id or the AAD object id wherever a member id goes."""
        with self._lock:
            for entry in self._directory.values():
                if member_id and member_id in (entry.get("id"), entry.get("aadObjectId")):
                    return entry
                if aad_object_id and aad_object_id == entry.get("aadObjectId"):
                    return entry
        return None

    def _roster(self, cid: str) -> list[dict[str, Any]] | None:
        base = cid.split(";messageid=")[0]
        with self._lock:
            for key in (cid, base, self._channel_team.get(base)):
                if key is not None and key in self._rosters:
                    return list(self._rosters[key])
        return None

    async def _members(self, request: web.Request) -> web.Response:
        roster = self._roster(request.match_info["cid"])
        if roster is None:
            return self._error(404, "ConversationNotFound", "Conversation not found.", None)
        return web.json_response(roster)

    async def _member(self, request: web.Request) -> web.Response:
        cid, mid = request.match_info["cid"], request.match_info["mid"]
        roster = self._roster(cid)
        if roster is None:
            with self._lock:
                roster = list(self._directory.values())
        candidates = roster
        for entry in candidates:
            # Teams takes the 29: id, the AAD object id or the user's UPN (email) here.
            addresses = {str(entry.get(k) or "").lower() for k in ("userPrincipalName", "email")}
            if mid in (entry.get("id"), entry.get("aadObjectId")) or mid.lower() in addresses - {""}:
                return web.json_response(entry)
        return self._error(404, "MemberNotFoundInConversation", "The member was not found.", None)

    def _encode_token(self, cid: str, offset: int) -> str:
        raw = json.dumps({"c": cid, "o": offset, "s": self._token_salt}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _decode_token(self, cid: str, token: str) -> int | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
        except (binascii.Error, ValueError):
            return None
        if not isinstance(data, dict) or data.get("c") != cid or data.get("s") != self._token_salt:
            return None
        offset = data.get("o")
        return offset if isinstance(offset, int) and offset >= 0 else None

    async def _paged_members(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        roster = self._roster(cid)
        if roster is None:
            return self._error(404, "ConversationNotFound", "Conversation not found.", None)
        try:
            size = int(request.query.get("pageSize", self.default_page_size))
        except ValueError:
            return self._error(400, None, "pageSize must be an integer.", None)
        low, high = self.page_size_limits
        size = min(max(size, low), high)
        offset = 0
        token = request.query.get("continuationToken")
        if token:
            decoded = self._decode_token(cid, token)
            if decoded is None:
                return self._error(400, None, "Invalid continuation token.", None)
            offset = decoded
        page = roster[offset : offset + size]
        payload: dict[str, Any] = {"members": page}
        if offset + size < len(roster):
            payload["continuationToken"] = self._encode_token(cid, offset + size)
        return web.json_response(payload)

    async def _team_details(self, request: web.Request) -> web.Response:
        details = self._teams.get(request.match_info["tid"])
        if details is None:
            return self._error(404, "NotFound", "Team not found.", None)
        return web.json_response(details)

    async def _team_channels(self, request: web.Request) -> web.Response:
        channels = self._channels.get(request.match_info["tid"])
        if channels is None:
            return self._error(404, "NotFound", "Team not found.", None)
        return web.json_response({"conversations": channels})
