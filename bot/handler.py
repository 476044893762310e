"""From an incoming activity to a routed handler, and the ONE place errors become replies.

Typed messages and card clicks alike: a :class:`~qa.errors.DomainError` (a refusal with a
code, raised by the router, a flow or the store) is answered with the sentence for its code
from ``cards/messages.py``; anything else is logged with its traceback and the turn's
correlation id, and the person gets a short apology with that id to quote, never the
exception's text.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
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
    from store.models import Staff

log = logging.getLogger(__name__)

def make_turn_handler(services: Services) -> TurnHandler:
    """The turn handler for the service: routes through ``services.router``."""
    router = services.router
    known: dict[str, str] = {}
    tried: dict[str, float] = {}
    looking: dict[str, asyncio.Task[Staff | None]] = {}

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
                if staff is None:
                    staff = await _link_once(services, incoming, tried, looking)
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


#: A person the bot could not link is looked up again after this long, not on every message.
RELINK_AFTER_SECONDS = 60.0


async def _link_once(services: Services, incoming: Incoming, tried: dict[str, float],
                     looking: dict[str, asyncio.Task[Staff | None]]) -> Staff | None:
    """One lookup per person at a time: Teams sends two install events together, and both
    must see the person linked (else one could welcome them as a stranger)."""
    task = looking.get(incoming.user_id)
    if task is None:
        task = asyncio.ensure_future(_link_on_sight(services, incoming, tried))
        looking[incoming.user_id] = task
        task.add_done_callback(lambda _t, uid=incoming.user_id: looking.pop(uid, None))
    return await asyncio.shield(task)


async def _link_on_sight(services: Services, incoming: Incoming,
                         tried: dict[str, float]) -> Staff | None:
    """Someone the bot does not know wrote or clicked: link them now by their Teams profile
    (email or UPN), so they are reached from this turn on and what was held for them goes.

    One profile lookup per person a minute at most: a stranger messaging repeatedly costs
    the connector nothing more.
    """
    if services.teams is None or not incoming.reference or incoming.user_id == incoming.bot_id:
        return None
    if incoming.conversation_type != "personal" and incoming.type not in ("message", "invoke"):
        return None  # a team install: the roster sync links everyone, the installer too
    now = time.monotonic()
    if now - tried.get(incoming.user_id, -RELINK_AFTER_SECONDS) < RELINK_AFTER_SECONDS:
        return None
    tried[incoming.user_id] = now
    if len(tried) > 10_000:  # bounded: forget the oldest half
        for user_id, _ in sorted(tried.items(), key=lambda kv: kv[1])[:5_000]:
            del tried[user_id]
    member = await services.teams.member(incoming.reference, incoming.user_id)
    if member is None:
        return None
    addresses = " ".join(a for a in (member.email, member.user_principal_name) if a)
    report = await services.directory.link_members(
        [(member.id, member.aad_object_id, addresses)], actor="teams:first-contact")
    if not report.linked:
        return None
    tried.pop(incoming.user_id, None)
    log.info("linked on first contact", extra={"staff_id": report.linked[0],
                                               "released": report.released})
    if report.released:
        services.outbox_queued()
    return await services.directory.staff_for_user(incoming.user_id, incoming.user_aad_id)


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
