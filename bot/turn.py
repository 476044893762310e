"""SDK-neutral shapes of what arrives from Teams and what the bot answers.

Everything outside ``bot/teams.py`` speaks these types, so the archived botbuilder SDK
can be replaced without touching flows, cards, the store or the scheduler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Incoming:
    """One activity from Teams, reduced to what the flows need."""

    type: str
    text: str = ""
    name: str | None = None
    value: dict[str, Any] | None = None
    user_id: str = ""
    user_aad_id: str | None = None
    user_name: str | None = None
    conversation_id: str = ""
    conversation_type: str = "personal"
    tenant_id: str | None = None
    service_url: str = ""
    team_id: str | None = None
    team_name: str | None = None
    bot_id: str = ""
    members_added: tuple[str, ...] = ()
    action: str | None = None
    event_type: str | None = None
    reference: dict[str, Any] = field(default_factory=dict)
    correlation_id: str = ""
    activity_id: str | None = None

    @property
    def is_card_action(self) -> bool:
        return self.type == "invoke" and self.name == "adaptiveCard/action"

    @property
    def _action(self) -> dict[str, Any]:
        action = self.value.get("action") if self.value else None
        return action if isinstance(action, dict) else {}

    @property
    def verb(self) -> str | None:
        """The Action.Execute verb, or the ``verb`` key of an Action.Submit payload.

        Only ever text: a verb (or an action) of any other shape is no verb at all.
        """
        if self.is_card_action:
            verb = self._action.get("verb")
        elif self.type == "message" and self.value:
            verb = self.value.get("verb")
        else:
            return None
        return verb if isinstance(verb, str) else None

    @property
    def action_data(self) -> dict[str, Any]:
        """Inputs and packed data of a card action, whichever way it arrived."""
        if self.is_card_action:
            data = self._action.get("data")
            return dict(data) if isinstance(data, dict) else {}
        return dict(self.value or {})


@dataclass
class Reply:
    """What a handler wants sent back in the same turn.

    ``messages`` are texts (str) or Adaptive Card dicts sent as new messages;
    ``card`` is the card that replaces the one clicked (Action.Execute invoke response).
    """

    messages: list[str | dict[str, Any]] = field(default_factory=list)
    card: dict[str, Any] | None = None

    @classmethod
    def text(cls, text: str) -> Reply:
        return cls(messages=[text])


@dataclass(frozen=True)
class Member:
    """A person on a team roster or in a chat, as Teams reports them."""

    id: str
    aad_object_id: str | None
    name: str | None
    email: str | None
    user_principal_name: str | None


class DeliveryError(Exception):
    """The Bot Connector refused a send; ``status`` and ``retry_after`` drive retries."""

    def __init__(self, status: int | None, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status or 'no status'}: {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


#: What the gateway calls for each incoming activity (``bot/handler.py`` makes it).
TurnHandler = Callable[[Incoming], Awaitable[Reply | None]]

#: What the gateway calls with the in-turn replies the Bot Connector did not take (429,
#: 5xx, a dropped connection): they are queued for the outbox, in order, never dropped.
UndeliveredReplies = Callable[[Incoming, "list[str | dict[str, Any]]", DeliveryError],
                              Awaitable[None]]
