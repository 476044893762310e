"""The thin layer over botbuilder-python: the only module that imports the SDK.

botbuilder-python is archived upstream, so everything the rest of the code needs from
Teams goes through :class:`TeamsGateway` in SDK-neutral types (``bot.turn``):
incoming activities become :class:`Incoming`, handler answers are :class:`Reply`, and
proactive sends, 1:1 conversation creation and roster paging are plain coroutines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import requests
from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.core.serializer_helper import serializer_helper
from botbuilder.core.teams import TeamsInfo
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    Attachment,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
    InvokeResponse,
)
from botframework.connector.auth import (
    AuthenticationConstants,
    ChannelValidation,
    ClaimsIdentity,
    ConnectorFactory,
    JwtTokenExtractor,
)
from botframework.connector.auth.jwt_token_extractor import _OpenIdConfig
from jwt.algorithms import RSAAlgorithm

from bot.turn import DeliveryError, Incoming, Member, Reply, TurnHandler, UndeliveredReplies
from cards.common import notice_card
from cards.messages import turn_broke
from qabot.logs import correlation_id as current_correlation_id
from qabot.settings import Settings

log = logging.getLogger(__name__)

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


class _SdkConfig:
    """The attribute names botbuilder's configuration classes read."""

    def __init__(self, settings: Settings) -> None:
        self.APP_ID = settings.app_id
        self.APP_PASSWORD = settings.app_password
        # Local mode has no credentials, so no tenant: botbuilder accepts an empty app id
        # only as MultiTenant (SingleTenant, the default for real registrations, needs one).
        self.APP_TYPE = settings.app_type if settings.app_id else "MultiTenant"
        self.APP_TENANTID = settings.app_tenant_id


class SigningKeysUnavailable(Exception):
    """Microsoft's token-signing keys cannot be had just now: answer 503, not 401 or 500."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("the Bot Framework signing keys cannot be fetched")
        self.retry_after = retry_after


class _SigningKeys:
    """The signing keys behind one OpenID metadata URL, cached, fetched off the event loop.

    Stands in for botframework's ``_OpenIdMetadata``, which fetched with blocking
    ``requests`` calls on the event loop, without a timeout, and again on every request
    while the metadata was unreachable (and raised IndexError for an unknown key id).
    Here: keys kept a day (as the SDK does), refetched at most hourly for an unknown key
    id; after a failed fetch no new attempt for :attr:`RETRY_SECONDS` (requests meanwhile
    get :class:`SigningKeysUnavailable`, or the keys already held); one fetch at a time.
    """

    KEEP_SECONDS = 24 * 3600.0
    UNKNOWN_KEY_REFRESH_SECONDS = 3600.0
    RETRY_SECONDS = 30.0
    FETCH_TIMEOUT = (3.05, 5.0)

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys: list[dict[str, Any]] = []
        self.fetched_at: float | None = None
        self.failed_at: float | None = None
        self.fetches = 0
        self._lock = asyncio.Lock()

    async def get(self, key_id: str | None) -> Any:
        now = time.monotonic()
        if self.fetched_at is None or now - self.fetched_at > self.KEEP_SECONDS:
            await self._refresh(now)
        key = self._find(key_id)
        if key is None and self.keys and self.fetched_at is not None and (
                now - self.fetched_at > self.UNKNOWN_KEY_REFRESH_SECONDS):
            await self._refresh(now)
            key = self._find(key_id)
        if key is None:
            if not self.keys:
                raise SigningKeysUnavailable(self._retry_in(time.monotonic()))
            raise PermissionError("the token was signed with a key Microsoft does not list")
        return key

    def _retry_in(self, now: float) -> float:
        if self.failed_at is None:
            return self.RETRY_SECONDS
        return max(1.0, self.RETRY_SECONDS - (now - self.failed_at))

    async def _refresh(self, asked_at: float) -> None:
        async with self._lock:
            now = time.monotonic()
            if self.fetched_at is not None and self.fetched_at >= asked_at:
                return  # another request refreshed while this one waited
            if self.failed_at is not None and now - self.failed_at < self.RETRY_SECONDS:
                return  # failed a moment ago: use what we have (or nothing) until then
            self.fetches += 1
            try:
                keys = await asyncio.to_thread(self._fetch)
            except Exception as exc:
                self.failed_at = time.monotonic()
                log.warning("Bot Framework signing keys could not be fetched (%s); next try "
                            "in %.0f s", type(exc).__name__, self.RETRY_SECONDS)
                return
            self.keys, self.fetched_at, self.failed_at = keys, time.monotonic(), None

    def _fetch(self) -> list[dict[str, Any]]:
        response = requests.get(self.url, timeout=self.FETCH_TIMEOUT)
        response.raise_for_status()
        jwks = requests.get(response.json()["jwks_uri"], timeout=self.FETCH_TIMEOUT)
        jwks.raise_for_status()
        keys = jwks.json()["keys"]
        if not isinstance(keys, list):
            raise ValueError("keys is not a list")
        return [k for k in keys if isinstance(k, dict)]

    def _find(self, key_id: str | None) -> Any:
        for key in self.keys:
            if key.get("kid") == key_id:
                try:
                    public_key = RSAAlgorithm.from_jwk(json.dumps(key))
                except Exception:
                    return None
                return _OpenIdConfig(public_key, key.get("endorsements", []))
        return None


#: One key cache per metadata URL for the process, as botframework's own class-level cache.
_SIGNING_KEYS: dict[str, _SigningKeys] = {}


def _signing_keys(url: str) -> _SigningKeys:
    keys = _SIGNING_KEYS.get(url)
    if keys is None:
        keys = _SIGNING_KEYS[url] = _SigningKeys(url)
    return keys


JwtTokenExtractor.get_open_id_metadata = staticmethod(_signing_keys)  # type: ignore[method-assign]

#: Tokens a little past their expiry are still accepted (the SDK's clock tolerance).
_CLOCK_SKEW_SECONDS = 300


def _check_token_shape(auth_header: str) -> None:
    """Refuse, without fetching any key, a bearer token that cannot be valid.

    A token that does not parse, has no expiry or has expired is refused here; only a
    well-formed, current token is worth checking against Microsoft's keys.
    """
    scheme, _, token = auth_header.partition(" ")
    if not token:
        return  # no token at all: the SDK refuses it (or allows it in local mode)
    if scheme != "Bearer":
        raise PermissionError("not a bearer token")
    claims = jwt.decode(token.strip(), options={"verify_signature": False})
    jwt.get_unverified_header(token.strip())
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise PermissionError("the token has no expiry")
    if exp + _CLOCK_SKEW_SECONDS < time.time():
        raise PermissionError("the token has expired")


class _ReusingConnectorFactory(ConnectorFactory):
    """Reuse one connector client per service URL and switch off msrest's own retries.

    botbuilder builds a new client (and TCP connection) for every turn and send, and
    msrest silently retries 5xx three times; the outbox owns retries, so a hidden retry
    would break rate limiting and could deliver a message twice.
    """

    def __init__(self, inner: ConnectorFactory, cache: dict[tuple[str, str], Any]) -> None:
        self._inner = inner
        self._cache = cache

    async def create(self, service_url: str, audience: str | None = None) -> Any:
        key = (service_url, audience or "")
        client = self._cache.get(key)
        if client is None:
            client = await self._inner.create(service_url, audience)
            client.config.retry_policy.retries = 0
            self._cache[key] = client
        return client


def _app_key(claims_identity: ClaimsIdentity) -> str:
    claims = claims_identity.claims or {}
    return str(claims.get("aud") or claims.get("appid") or "")


class _Authentication(ConfigurationBotFrameworkAuthentication):
    def __init__(self, settings: Settings) -> None:
        if settings.openid_metadata_url:
            # The SDK's own knob (BotOpenIdMetadata in the other Bot Framework SDKs);
            # process-wide, as the SDK keeps it.
            ChannelValidation.open_id_metadata_endpoint = settings.openid_metadata_url
        super().__init__(_SdkConfig(settings))
        self._clients: dict[str, dict[tuple[str, str], Any]] = {}
        self._token_clients: dict[str, Any] = {}

    async def authenticate_request(self, activity: Activity, auth_header: str) -> Any:
        # Incoming turns get their connector factory from here, not from
        # create_connector_factory: without this every turn built a new ConnectorClient
        # (about a quarter of a turn's CPU, profiled in bench/RESULTS.md).
        _check_token_shape(auth_header)
        result = await super().authenticate_request(activity, auth_header)
        if result.connector_factory is not None:
            result.connector_factory = _ReusingConnectorFactory(
                result.connector_factory,
                self._clients.setdefault(_app_key(result.claims_identity), {}))
        return result

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        inner = super().create_connector_factory(claims_identity)
        return _ReusingConnectorFactory(inner, self._clients.setdefault(_app_key(claims_identity), {}))

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> Any:
        app_key = _app_key(claims_identity)
        client = self._token_clients.get(app_key)
        if client is None:
            client = await super().create_user_token_client(claims_identity)
            self._token_clients[app_key] = client
        return client


def _tenant_of(activity: Activity) -> str | None:
    # botbuilder-schema maps conversation.tenantId to "tenantID" and drops it, so
    # the tenant is read from channelData, where Teams always puts it.
    channel_data = activity.channel_data or {}
    if isinstance(channel_data, dict):
        tenant = channel_data.get("tenant") or {}
        if isinstance(tenant, dict) and tenant.get("id"):
            return str(tenant["id"])
    conversation = activity.conversation
    return getattr(conversation, "tenant_id", None) if conversation else None


def _team_of(activity: Activity) -> tuple[str | None, str | None]:
    channel_data = activity.channel_data or {}
    if isinstance(channel_data, dict):
        team = channel_data.get("team") or {}
        if isinstance(team, dict) and team.get("id"):
            return str(team["id"]), team.get("name")
    return None, None


def reference_of(activity: Activity) -> dict[str, Any]:
    """A serialised conversation reference for proactive sends, detached from any message."""
    ref = TurnContext.get_conversation_reference(activity)
    ref.activity_id = None
    return ref.serialize()


def to_incoming(activity: Activity, correlation_id: str = "") -> Incoming:
    """Reduce a botbuilder Activity to the fields the flows use."""
    frm = activity.from_property or ChannelAccount()
    conversation = activity.conversation
    team_id, team_name = _team_of(activity)
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    value = activity.value if isinstance(activity.value, dict) else None
    text = activity.text or ""
    if activity.type == ActivityTypes.message and activity.recipient is not None:
        text = TurnContext.remove_recipient_mention(activity) or text
    return Incoming(
        type=activity.type or "",
        text=(text or "").strip(),
        name=activity.name,
        value=value,
        user_id=frm.id or "",
        user_aad_id=frm.aad_object_id,
        user_name=frm.name,
        conversation_id=conversation.id if conversation else "",
        conversation_type=(conversation.conversation_type if conversation else None) or "personal",
        tenant_id=_tenant_of(activity),
        service_url=activity.service_url or "",
        team_id=team_id,
        team_name=team_name,
        bot_id=activity.recipient.id if activity.recipient else "",
        members_added=tuple(m.id for m in (activity.members_added or []) if m and m.id),
        action=activity.action,
        event_type=channel_data.get("eventType"),
        reference=reference_of(activity) if conversation else {},
        correlation_id=correlation_id,
        activity_id=activity.id,
    )


def _as_activity(message: str | dict[str, Any]) -> Activity:
    if isinstance(message, str):
        return Activity(type=ActivityTypes.message, text=message)
    if message.get("type") == "AdaptiveCard":
        return Activity(
            type=ActivityTypes.message,
            attachments=[Attachment(content_type=CARD_CONTENT_TYPE, content=message)],
        )
    return Activity().deserialize(message)


def _invoke_body(body: Any) -> Any:
    """The invoke response body as JSON-ready data.

    botbuilder runs the whole body through msrest's serializer, which walks an Adaptive
    Card (a plain dict already) value by value: about a sixth of a card click's CPU
    (profiled in bench/RESULTS.md). A card response is written directly instead.
    """
    if isinstance(body, AdaptiveCardInvokeResponse):
        data = {"statusCode": body.status_code, "type": body.type, "value": body.value}
        return {k: v for k, v in data.items() if v is not None}
    return serializer_helper(body) if body is not None else None


def _delivery_error(exc: Exception) -> DeliveryError:
    """Translate whatever the connector raised into a status and a Retry-After."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None) or {}
    retry_after: float | None = None
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    if raw:
        try:
            retry_after = float(raw)
        except ValueError:
            retry_after = None
    reason = type(exc).__name__
    error = getattr(getattr(exc, "error", None), "error", None)
    if getattr(error, "code", None):
        reason = f"{reason} {error.code}"
    if status is None:
        # msrest wraps refused or dropped connections in ClientRequestError.
        inner = getattr(exc, "inner_exception", None) or exc
        reason = f"connection failed ({type(inner).__name__})"
    return DeliveryError(status, reason, retry_after)


class TeamsGateway:
    """Receives activities through CloudAdapter and sends through the Bot Connector.

    Built before the services it serves (they hold it for proactive sends), so the turn
    handler is handed to :meth:`process` with each request rather than at construction.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._authentication = _Authentication(settings)
        self.adapter = CloudAdapter(self._authentication)
        self.adapter.on_turn_error = self._on_turn_error

    @property
    def app_id(self) -> str:
        return self._settings.app_id

    def warm_up(self) -> None:
        """Exercise the SDK's models once (msrest builds its (de)serialisers lazily), with a
        card click shaped like Teams' and the answer the bot writes; no I/O."""
        sample = {
            "type": "invoke", "name": "adaptiveCard/action", "id": "warm-up",
            "timestamp": "2000-01-03T09:00:00.000Z", "localTimestamp": "2000-01-03T09:00:00.000+00:00",
            "channelId": "msteams", "serviceUrl": "http://127.0.0.1:9/",
            "from": {"id": "29:warm-up", "aadObjectId": "00000000-0000-0000-0000-000000000000"},
            "recipient": {"id": "28:warm-up"},
            "conversation": {"id": "a:warm-up", "conversationType": "personal"},
            "channelData": {"tenant": {"id": "warm-up"}},
            "value": {"action": {"type": "Action.Execute", "verb": "warm.up", "data": {}}},
        }
        incoming = to_incoming(Activity().deserialize(sample))
        card = {"type": "AdaptiveCard", "version": "1.5", "body": []}
        json.dumps(_invoke_body(AdaptiveCardInvokeResponse(
            status_code=200, type=CARD_CONTENT_TYPE, value=card)))
        _as_activity(card).serialize()
        _as_activity(incoming.verb or "").serialize()

    async def warm_connectors(self, service_urls: list[str]) -> None:
        """Build (and cache) the connector clients turns and sends will use for these
        service URLs, as the reusing factory keeps them; makes no request."""
        auth = self.adapter.bot_framework_authentication
        claims = ClaimsIdentity({"aud": self.app_id} if self.app_id else {}, True)
        factory = auth.create_connector_factory(claims)
        for url in service_urls:
            # Proactive sends ask for no audience; incoming turns for the channel's scope.
            for audience in (None, AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE):
                await factory.create(url, audience)
        if service_urls:  # every turn also asks for the (cached) user-token client
            await auth.create_user_token_client(claims)

    async def process(self, body: Any, auth_header: str, handler: TurnHandler, *,
                      undelivered: UndeliveredReplies | None = None) -> web.Response:
        """Run one parsed request body through the adapter (auth, turn, invoke response).

        What CloudAdapter.process does, except for how an invoke response is written (below).
        ``body`` has passed ``bot.edge.read_activity``; ``undelivered`` gets the in-turn
        replies the Bot Connector did not take, to queue them.
        """
        try:
            activity = Activity().deserialize(body)
            incoming = to_incoming(activity, current_correlation_id.get())
        except Exception as exc:  # msrest's DeserializationError and kin: the client's fault
            log.info("refused an activity the SDK cannot read (%s)", type(exc).__name__)
            raise web.HTTPBadRequest() from None
        if not activity.type:
            raise web.HTTPBadRequest()
        try:
            authenticated = await self._authentication.authenticate_request(activity,
                                                                            auth_header)
        except SigningKeysUnavailable as err:
            raise web.HTTPServiceUnavailable(
                headers={"Retry-After": str(int(err.retry_after))}) from None
        except Exception as exc:
            # A missing, malformed, expired or forged token (the SDK raises plain
            # Exceptions for some of these) is an authentication failure, not a crash.
            log.info("refused a request that did not authenticate (%s)", type(exc).__name__)
            raise web.HTTPUnauthorized() from None
        invoke_response = await self.adapter.process_activity(
            authenticated, activity,
            lambda turn_context: self._turn(turn_context, handler, incoming, undelivered))
        if invoke_response is None:
            return web.Response(status=201)
        try:
            text = json.dumps(_invoke_body(invoke_response.body))
        except (TypeError, ValueError):  # not plain JSON after all: the SDK's way
            text = json.dumps(serializer_helper(invoke_response.body))
        return web.Response(text=text, status=invoke_response.status,
                            content_type="application/json")

    async def _turn(self, turn_context: TurnContext, handler: TurnHandler, incoming: Incoming,
                    undelivered: UndeliveredReplies | None) -> None:
        reply = await handler(incoming)
        if incoming.is_card_action:
            await self._answer_invoke(turn_context, reply)
        elif incoming.type == ActivityTypes.invoke:
            await turn_context.send_activity(
                Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=200))
            )
        if not reply:
            return
        outgoing = list(reply.messages)
        if reply.card is not None and incoming.type != ActivityTypes.invoke:
            # A form sent with Action.Submit arrives as a message: there is no clicked card
            # to replace, so the card (the form with its errors, a summary) comes back as a
            # new message before any text.
            outgoing.insert(0, reply.card)
        for n, message in enumerate(outgoing):
            try:
                await turn_context.send_activity(_as_activity(message))
            except Exception as exc:
                # The action has happened; only its answer did not get through. Never an
                # apology for it: the rest of the answer goes through the outbox, in order.
                error = _delivery_error(exc)
                log.warning("in-turn reply not taken (%s); %d message(s) handed to the outbox",
                            error, len(outgoing) - n,
                            extra={"activity_type": incoming.type})
                if undelivered is None:
                    raise
                await undelivered(incoming, outgoing[n:], error)
                return

    async def _answer_invoke(self, turn_context: TurnContext, reply: Reply | None) -> None:
        # Answered here, not through ActivityHandler.on_adaptive_card_invoke: in
        # botbuilder 4.17.1 that path serialises the body twice and fails.
        if reply is not None and reply.card is not None:
            body = AdaptiveCardInvokeResponse(
                status_code=200, type=CARD_CONTENT_TYPE, value=reply.card
            )
            response = InvokeResponse(status=200, body=body)
        else:
            response = InvokeResponse(status=200)
        await turn_context.send_activity(
            Activity(type=ActivityTypes.invoke_response, value=response)
        )

    async def _on_turn_error(self, turn_context: TurnContext, error: Exception) -> None:
        """Last resort for a failure outside the turn handler: log it, apologise once.

        Never raises: an apology that cannot be sent either is logged, and an invoke still
        gets its response (a notice card), so the request never ends in a 5xx.
        """
        correlation_id = current_correlation_id.get()
        kind = turn_context.activity.type
        log.error("turn failed", exc_info=error,
                  extra={"correlation_id": correlation_id, "activity_type": kind})
        try:
            if kind == ActivityTypes.invoke:
                if turn_context.turn_state.get(self.adapter._INVOKE_RESPONSE_KEY) is None:
                    await self._answer_invoke(
                        turn_context, Reply(card=notice_card(turn_broke(correlation_id))))
            elif kind == ActivityTypes.message:
                await turn_context.send_activity(turn_broke(correlation_id))
        except Exception as exc:
            log.warning("the apology was not delivered either (%s)", _delivery_error(exc),
                        extra={"correlation_id": correlation_id})

    # ---- proactive -------------------------------------------------------------

    async def _continue(self, reference: dict[str, Any],
                        logic: Callable[[TurnContext], Awaitable[None]]) -> None:
        """Run ``logic`` in a proactive turn; its failures surface as DeliveryError.

        The adapter would hand an exception raised inside the turn to on_turn_error and
        swallow it, so the callback catches it and it is re-raised here instead.
        """
        ref = ConversationReference().deserialize(reference)
        ref.activity_id = None
        failure: list[Exception] = []

        async def callback(turn_context: TurnContext) -> None:
            turn_context.activity.id = None
            # TeamsInfo reads channel_data and fails on the None a continuation carries.
            turn_context.activity.channel_data = turn_context.activity.channel_data or {}
            try:
                await logic(turn_context)
            except Exception as exc:
                failure.append(exc)

        try:
            await self.adapter.continue_conversation(ref, callback, self.app_id or "")
        except Exception as exc:
            failure.append(exc)
        if failure:
            raise _delivery_error(failure[0]) from failure[0]

    async def send(self, reference: dict[str, Any], message: str | dict[str, Any]) -> str:
        """Post a new message into a known conversation; returns the activity id."""
        sent: list[str] = []

        async def logic(turn_context: TurnContext) -> None:
            response = await turn_context.send_activity(_as_activity(message))
            sent.append(response.id if response and response.id else "")

        await self._continue(reference, logic)
        return sent[0] if sent else ""

    async def create_personal(
        self,
        *,
        service_url: str,
        tenant_id: str | None,
        bot_id: str,
        user_id: str,
        aad_object_id: str | None = None,
    ) -> dict[str, Any]:
        """Open (or get back) the 1:1 chat with a user; returns its conversation reference."""
        params = ConversationParameters(
            is_group=False,
            bot=ChannelAccount(id=bot_id),
            members=[ChannelAccount(id=user_id, aad_object_id=aad_object_id)],
            tenant_id=tenant_id,
            channel_data={"tenant": {"id": tenant_id}} if tenant_id else None,
        )
        created: list[dict[str, Any]] = []

        async def callback(turn_context: TurnContext) -> None:
            turn_context.activity.id = None
            created.append(reference_of(turn_context.activity))

        try:
            await self.adapter.create_conversation(
                self.app_id or "", callback, params, "msteams", service_url, None
            )
        except Exception as exc:
            raise _delivery_error(exc) from exc
        if not created:
            raise DeliveryError(None, "the conversation was not created")
        reference = created[0]
        reference["user"] = {"id": user_id, "aadObjectId": aad_object_id}
        reference["bot"] = {"id": bot_id}
        return reference

    async def roster(self, reference: dict[str, Any], team_id: str | None) -> list[Member]:
        """Every member of a team (or of the referenced chat), across all pages."""
        members: list[Member] = []

        async def logic(turn_context: TurnContext) -> None:
            token: str | None = None
            while True:
                if team_id:
                    page = await TeamsInfo.get_paged_team_members(turn_context, team_id, token, 200)
                else:
                    page = await TeamsInfo.get_paged_members(turn_context, token, 200)
                members.extend(_member(m) for m in page.members or [])
                token = page.continuation_token
                if not token:
                    break

        await self._continue(reference, logic)
        return members

    async def member(self, reference: dict[str, Any], user_id: str) -> Member | None:
        """One member's profile (email, UPN) from the conversation they are in."""
        found: list[Member] = []

        async def logic(turn_context: TurnContext) -> None:
            found.append(_member(await TeamsInfo.get_member(turn_context, user_id)))

        try:
            await self._continue(reference, logic)
        except DeliveryError as err:
            log.warning("member lookup failed: %s", err)
            return None
        return found[0] if found else None


def _member(m: Any) -> Member:
    return Member(
        id=m.id,
        aad_object_id=getattr(m, "aad_object_id", None),
        name=m.name,
        email=getattr(m, "email", None),
        user_principal_name=getattr(m, "user_principal_name", None),
    )
