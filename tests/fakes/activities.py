"""Factories for inbound Teams activities, as the JSON dicts Teams POSTs to the bot.

Tests feed these dicts to the real SDK (``Activity().deserialize(d)`` or an HTTP POST to
``/api/messages``), so they use Teams' camelCase wire format rather than SDK objects: that
way a schema quirk (e.g. ``conversation.tenantId`` being dropped by botbuilder-schema)
shows up in tests exactly as it does in production.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

DEFAULT_TENANT_ID = "72f988bf-0000-4000-8000-00000000c0de"
BOT_ID = "28:bot"
BOT_NAME = "QA Bot"
# Port 9 (discard) refuses connections: a test that forgets ``service_url=fc.url`` fails
# fast on loopback instead of reaching a real Teams endpoint.
DEFAULT_SERVICE_URL = "http://127.0.0.1:9/"

ConversationType = Literal["personal", "groupChat", "channel"]

_NAMESPACE = uuid.UUID("6f1c2b3a-9d4e-4b6f-8a1d-0c5e7f9a2b41")
_activity_ids = itertools.count(1)


def _stable_uuid(*parts: str) -> str:
    """Deterministic ids keep snapshots and failure messages identical between runs."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class User:
    """A Teams user as the bot sees them: ``id`` is the Bot Framework id, not the AAD id."""

    id: str
    aad_object_id: str
    name: str
    email: str
    given_name: str | None = None
    surname: str | None = None
    user_principal_name: str | None = None

    @classmethod
    def named(cls, name: str, *, email: str | None = None, domain: str = "council.example") -> User:
        """Build a user whose ids are derived from the name, so tests need not invent ids."""
        given, _, surname = name.partition(" ")
        mail = email or f"{name.lower().replace(' ', '.')}@{domain}"
        aad = _stable_uuid("user", mail.lower())
        return cls(
            id=f"29:1{aad.replace('-', '')}",
            aad_object_id=aad,
            name=name,
            email=mail,
            given_name=given or None,
            surname=surname or None,
        )

    @property
    def upn(self) -> str:
        """Teams' userPrincipalName; usually the email in a council tenant."""
        return self.user_principal_name or self.email

    def account(self) -> dict[str, Any]:
        """The ``from``/member account shape used inside activities."""
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad_object_id}


def make_users(
    count: int, *, prefix: str = "Worker", domain: str = "council.example"
) -> list[User]:
    """``count`` distinct users (``Worker 001`` ...) for rosters that must span pages."""
    return [User.named(f"{prefix} {i:03d}", domain=domain) for i in range(1, count + 1)]


DEFAULT_USER = User.named("Alex Auditor")


@dataclass(frozen=True)
class Team:
    """A team and its channels; the General channel's id equals the team id in Teams."""

    id: str
    name: str = "Children's Services QA"
    aad_group_id: str = field(default="")
    channels: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        if not self.aad_group_id:  # every real team has one; TeamsInfo returns it
            object.__setattr__(self, "aad_group_id", _stable_uuid("group", self.id))

    @classmethod
    def named(cls, name: str, *, extra_channels: tuple[str, ...] = ()) -> Team:
        """A team with a General channel plus ``extra_channels``, ids derived from the name."""
        team_id = f"19:{_stable_uuid('team', name).replace('-', '')}@thread.tacv2"
        channels: list[tuple[str, str | None]] = [(team_id, None)]
        channels += [
            (f"19:{_stable_uuid('channel', name, c).replace('-', '')}@thread.tacv2", c)
            for c in extra_channels
        ]
        return cls(
            id=team_id,
            name=name,
            aad_group_id=_stable_uuid("group", name),
            channels=tuple(channels),
        )


def teams_member(
    user: User, *, tenant_id: str = DEFAULT_TENANT_ID, user_role: str = "user"
) -> dict[str, Any]:
    """A roster entry as GET /members and /pagedmembers return it (TeamsChannelAccount)."""
    return {
        "id": user.id,
        "name": user.name,
        "aadObjectId": user.aad_object_id,
        "email": user.email,
        "userPrincipalName": user.upn,
        "givenName": user.given_name,
        "surname": user.surname,
        "tenantId": tenant_id,
        "userRole": user_role,
    }


def personal_conversation_id_for(member_id: str, *, bot_id: str = BOT_ID) -> str:
    """The 1:1 chat id for a member id and bot: stable, ``a:`` prefixed, like Teams'."""
    return "a:1" + _stable_uuid("personal", bot_id, member_id).replace("-", "")


def personal_conversation_id(user: User, *, bot_id: str = BOT_ID) -> str:
    """The id FakeConnector also returns when the bot creates a 1:1 with this user."""
    return personal_conversation_id_for(user.id, bot_id=bot_id)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _base(
    activity_type: str,
    *,
    user: User,
    conversation_id: str | None,
    service_url: str,
    tenant_id: str,
    conversation_type: ConversationType,
    team: Team | None,
    channel_id: str | None,
    bot_id: str,
    bot_name: str,
) -> dict[str, Any]:
    """Fields every Teams activity carries, with the tenant in both places Teams puts it."""
    if conversation_id is None:
        if conversation_type == "personal":
            conversation_id = personal_conversation_id(user, bot_id=bot_id)
        elif conversation_type == "channel":
            conversation_id = channel_id or (team.id if team else "19:general@thread.tacv2")
        else:
            conversation_id = f"19:{_stable_uuid('group', user.id).replace('-', '')}@thread.v2"
    conversation: dict[str, Any] = {
        "conversationType": conversation_type,
        "tenantId": tenant_id,
        "id": conversation_id,
    }
    if conversation_type != "personal":
        conversation["isGroup"] = True
    channel_data: dict[str, Any] = {"tenant": {"id": tenant_id}}
    if conversation_type == "channel":
        the_team = team or Team(id="19:general@thread.tacv2")
        channel_data["team"] = {
            "id": the_team.id,
            "name": the_team.name,
            "aadGroupId": the_team.aad_group_id,
        }
        channel_data["channel"] = {"id": channel_id or the_team.id}
    return {
        "type": activity_type,
        "id": f"{1_700_000_000_000 + next(_activity_ids)}",
        "timestamp": _now(),
        "localTimestamp": _now(),
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": user.account(),
        "conversation": conversation,
        "recipient": {"id": bot_id, "name": bot_name},
        "entities": [{"type": "clientInfo", "locale": "en-GB", "country": "GB", "platform": "Web"}],
        "channelData": channel_data,
        "locale": "en-GB",
    }


def message(
    text: str,
    *,
    user: User = DEFAULT_USER,
    conversation_id: str | None = None,
    service_url: str = DEFAULT_SERVICE_URL,
    tenant_id: str = DEFAULT_TENANT_ID,
    conversation_type: ConversationType = "personal",
    team: Team | None = None,
    channel_id: str | None = None,
    mention: bool | None = None,
    bot_id: str = BOT_ID,
    bot_name: str = BOT_NAME,
) -> dict[str, Any]:
    """A typed message. Outside personal chats Teams only delivers @mentions, so one is added."""
    activity = _base(
        "message",
        user=user,
        conversation_id=conversation_id,
        service_url=service_url,
        tenant_id=tenant_id,
        conversation_type=conversation_type,
        team=team,
        channel_id=channel_id,
        bot_id=bot_id,
        bot_name=bot_name,
    )
    if mention is None:
        mention = conversation_type != "personal"
    if mention:
        at = f"<at>{bot_name}</at>"
        text = f"{at} {text}"
        activity["entities"].append(
            {"type": "mention", "mentioned": {"id": bot_id, "name": bot_name}, "text": at}
        )
    activity["textFormat"] = "plain"
    activity["text"] = text
    return activity


def submit(
    value: dict[str, Any],
    *,
    reply_to_id: str | None = None,
    user: User = DEFAULT_USER,
    conversation_id: str | None = None,
    service_url: str = DEFAULT_SERVICE_URL,
    tenant_id: str = DEFAULT_TENANT_ID,
    conversation_type: ConversationType = "personal",
    team: Team | None = None,
    channel_id: str | None = None,
    bot_id: str = BOT_ID,
) -> dict[str, Any]:
    """An Action.Submit click: Teams sends a message with no text and the data in ``value``."""
    activity = _base(
        "message",
        user=user,
        conversation_id=conversation_id,
        service_url=service_url,
        tenant_id=tenant_id,
        conversation_type=conversation_type,
        team=team,
        channel_id=channel_id,
        bot_id=bot_id,
        bot_name=BOT_NAME,
    )
    activity["value"] = value
    activity["channelData"]["source"] = {"name": "message"}
    if reply_to_id:
        activity["replyToId"] = reply_to_id
        activity["channelData"]["legacy"] = {"replyToId": reply_to_id}
    return activity


def card_action(
    verb: str,
    data: dict[str, Any] | None = None,
    *,
    reply_to_id: str | None = None,
    action_id: str | None = None,
    user: User = DEFAULT_USER,
    conversation_id: str | None = None,
    service_url: str = DEFAULT_SERVICE_URL,
    tenant_id: str = DEFAULT_TENANT_ID,
    conversation_type: ConversationType = "personal",
    team: Team | None = None,
    channel_id: str | None = None,
    bot_id: str = BOT_ID,
) -> dict[str, Any]:
    """An Action.Execute click: invoke ``adaptiveCard/action`` (AdaptiveCardInvokeValue shape).

    Teams merges the card's input values into ``data``; pass them in ``data`` here too.
    """
    activity = _base(
        "invoke",
        user=user,
        conversation_id=conversation_id,
        service_url=service_url,
        tenant_id=tenant_id,
        conversation_type=conversation_type,
        team=team,
        channel_id=channel_id,
        bot_id=bot_id,
        bot_name=BOT_NAME,
    )
    action: dict[str, Any] = {"type": "Action.Execute", "verb": verb, "data": dict(data or {})}
    if action_id:
        action["id"] = action_id
    activity["name"] = "adaptiveCard/action"
    activity["value"] = {"action": action, "trigger": "manual"}
    if reply_to_id:
        activity["replyToId"] = reply_to_id
    return activity


def installation_update(
    action: Literal["add", "remove", "add-upgrade", "remove-upgrade"] = "add",
    *,
    user: User = DEFAULT_USER,
    conversation_id: str | None = None,
    service_url: str = DEFAULT_SERVICE_URL,
    tenant_id: str = DEFAULT_TENANT_ID,
    conversation_type: ConversationType = "personal",
    team: Team | None = None,
    channel_id: str | None = None,
    bot_id: str = BOT_ID,
) -> dict[str, Any]:
    """The installationUpdate Teams sends when the app is added to or removed from a scope."""
    activity = _base(
        "installationUpdate",
        user=user,
        conversation_id=conversation_id,
        service_url=service_url,
        tenant_id=tenant_id,
        conversation_type=conversation_type,
        team=team,
        channel_id=channel_id,
        bot_id=bot_id,
        bot_name=BOT_NAME,
    )
    activity["action"] = action
    return activity


def conversation_update(
    *,
    members_added: list[dict[str, Any]] | None = None,
    members_removed: list[dict[str, Any]] | None = None,
    event_type: str | None = None,
    user: User = DEFAULT_USER,
    conversation_id: str | None = None,
    service_url: str = DEFAULT_SERVICE_URL,
    tenant_id: str = DEFAULT_TENANT_ID,
    conversation_type: ConversationType = "personal",
    team: Team | None = None,
    channel_id: str | None = None,
    bot_id: str = BOT_ID,
) -> dict[str, Any]:
    """A conversationUpdate (members added/removed); ``event_type`` goes in channelData."""
    activity = _base(
        "conversationUpdate",
        user=user,
        conversation_id=conversation_id,
        service_url=service_url,
        tenant_id=tenant_id,
        conversation_type=conversation_type,
        team=team,
        channel_id=channel_id,
        bot_id=bot_id,
        bot_name=BOT_NAME,
    )
    if members_added is not None:
        activity["membersAdded"] = members_added
    if members_removed is not None:
        activity["membersRemoved"] = members_removed
    if event_type:
        activity["channelData"]["eventType"] = event_type
    return activity


def personal_install(
    *,
    user: User = DEFAULT_USER,
    conversation_id: str | None = None,
    service_url: str = DEFAULT_SERVICE_URL,
    tenant_id: str = DEFAULT_TENANT_ID,
    bot_id: str = BOT_ID,
    include: Literal["both", "conversationUpdate", "installationUpdate"] = "both",
) -> list[dict[str, Any]]:
    """What Teams sends when a user adds the app: conversationUpdate, then installationUpdate."""
    common: dict[str, Any] = {
        "user": user,
        "conversation_id": conversation_id,
        "service_url": service_url,
        "tenant_id": tenant_id,
        "bot_id": bot_id,
    }
    out: list[dict[str, Any]] = []
    if include in ("both", "conversationUpdate"):
        out.append(conversation_update(members_added=[{"id": bot_id}], **common))
    if include in ("both", "installationUpdate"):
        out.append(installation_update("add", **common))
    return out


def team_install(
    team_id: str | Team,
    channel_id: str | None = None,
    *,
    user: User = DEFAULT_USER,
    service_url: str = DEFAULT_SERVICE_URL,
    tenant_id: str = DEFAULT_TENANT_ID,
    bot_id: str = BOT_ID,
    include: Literal["both", "conversationUpdate", "installationUpdate"] = "both",
) -> list[dict[str, Any]]:
    """What Teams sends when the app is added to a team: teamMemberAdded for the bot, then
    installationUpdate, both in the channel the installer picked (General by default)."""
    team = team_id if isinstance(team_id, Team) else Team(id=team_id)
    channel = channel_id or team.id
    common: dict[str, Any] = {
        "user": user,
        "service_url": service_url,
        "tenant_id": tenant_id,
        "bot_id": bot_id,
        "conversation_type": "channel",
        "team": team,
        "channel_id": channel,
        "conversation_id": channel,
    }
    out: list[dict[str, Any]] = []
    if include in ("both", "conversationUpdate"):
        update = conversation_update(
            members_added=[{"id": bot_id}], event_type="teamMemberAdded", **common
        )
        update["channelData"]["settings"] = {"selectedChannel": {"id": channel}}
        out.append(update)
    if include in ("both", "installationUpdate"):
        install = installation_update("add", **common)
        install["channelData"]["settings"] = {"selectedChannel": {"id": channel}}
        out.append(install)
    return out
