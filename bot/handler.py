"""From an incoming activity to a routed handler, and the ONE place errors become replies.

Typed messages and card clicks alike: a :class:`~qa.errors.DomainError` (a refusal with a
code, raised by the router, a flow or the store) is answered with the sentence for its code
from ``cards/messages.py``; anything else is logged with its traceback and the turn's
correlation id, and the person gets a short apology with that id to quote, never the
exception's text.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from bot.router import Request
from bot.turn import DeliveryError, Incoming, Reply, TurnHandler, UndeliveredReplies
from cards import messages
from cards.common import notice_card
from qa.errors import DomainError
from qabot.logs import correlation_id
from store.outbox import Message, queue_in

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)

def make_turn_handler(services: Services) -> TurnHandler:
    """The turn handler for the service: routes through ``services.router``."""
    router = services.router
    known: dict[str, str] = {}

    async def handle(incoming: Incoming) -> Reply | None:
        token = correlation_id.set(incoming.correlation_id)
        try:
            allowed = services.settings.allowed_tenants
            if allowed and incoming.tenant_id not in allowed:
                log.warning("ignored activity from a tenant that is not allowed",
                            extra={"tenant_id": incoming.tenant_id or "none",
                                   "activity_type": incoming.type})
                return None
            await _remember_conversation(services, incoming, known)
            staff = None
            if incoming.user_id:
                staff = await services.directory.staff_for_user(incoming.user_id,
                                                                incoming.user_aad_id)
            return await router.dispatch(Request(services, incoming, staff))
        except DomainError as err:
            log.info("refused", extra={"code": err.code.value, "verb": incoming.verb or "",
                                       "activity_type": incoming.type})
            return answer(incoming, messages.error_text(err))
        except Exception:
            log.exception("handler failed", extra={"activity_type": incoming.type,
                                                   "verb": incoming.verb or ""})
            return answer(incoming, messages.turn_failed(incoming.correlation_id))
        finally:
            correlation_id.reset(token)

    return handle


def make_reply_queue(services: Services) -> UndeliveredReplies:
    """Queue the in-turn replies the Bot Connector did not take, for the outbox to deliver.

    The turn's action has already happened (and is committed), so its answer must reach the
    person: the outbox retries with backoff and honours Retry-After, like any proactive
    message. One transaction for the lot, with dedupe keys from the activity, so the order
    is kept and a redelivered activity queues its answer once.
    """

    async def queue(incoming: Incoming, outgoing: list[str | dict[str, Any]],
                    error: DeliveryError) -> None:
        turn = hashlib.sha256(f"{incoming.conversation_id}\n{incoming.activity_id or ''}\n"
                              f"{incoming.correlation_id}".encode()).hexdigest()[:32]
        try:
            async with services.sessions.begin() as session:
                for n, body in enumerate(outgoing):
                    await queue_in(session, Message(body, conversation_id=incoming.conversation_id,
                                                    dedupe_key=f"reply:{turn}:{n}"),
                                   at=services.clock())
        except Exception:
            log.exception("could not queue an undelivered reply",
                          extra={"activity_type": incoming.type, "status": error.status})
            return
        log.info("undelivered reply queued", extra={"messages": len(outgoing),
                                                    "status": error.status})
        services.outbox_queued()

    return queue


def answer(incoming: Incoming, text: str) -> Reply:
    """A card button expects a card back (Teams shows an error otherwise); a message, text."""
    if incoming.is_card_action:
        return Reply(card=notice_card(text))
    return Reply.text(text)


async def _remember_conversation(services: Services, incoming: Incoming,
                                 known: dict[str, str]) -> None:
    """Keep each conversation's reference and service URL current (one write per change)."""
    if not incoming.conversation_id or not incoming.service_url:
        return
    if known.get(incoming.conversation_id) == incoming.service_url:
        return
    kind = incoming.conversation_type or "personal"
    await services.directory.save_conversation(
        conversation_id=incoming.conversation_id,
        kind=kind,
        service_url=incoming.service_url,
        tenant_id=incoming.tenant_id,
        reference=incoming.reference,
        teams_user_id=incoming.user_id if kind == "personal" else None,
        aad_object_id=incoming.user_aad_id if kind == "personal" else None,
        team_id=incoming.team_id,
        team_name=incoming.team_name,
    )
    known[incoming.conversation_id] = incoming.service_url
