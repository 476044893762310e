"""From an incoming activity to a routed handler, with the one error handler."""

from __future__ import annotations

import logging

from bot.router import Request, Router
from bot.teams import TurnHandler
from bot.turn import Incoming, Reply
from cards.common import notice_card
from qabot.context import AppContext
from qabot.logs import correlation_id
from store.errors import StoreError

log = logging.getLogger(__name__)


class UserError(Exception):
    """A problem the person can fix; the message is shown to them as it is."""


def make_turn_handler(ctx: AppContext, router: Router) -> TurnHandler:
    known: dict[str, str] = {}

    async def handle(incoming: Incoming) -> Reply | None:
        token = correlation_id.set(incoming.correlation_id)
        try:
            allowed = ctx.settings.allowed_tenants
            if allowed and incoming.tenant_id not in allowed:
                log.warning("ignored activity from a tenant that is not allowed",
                            extra={"tenant_id": incoming.tenant_id or "none",
                                   "activity_type": incoming.type})
                return None
            await _remember_conversation(ctx, incoming, known)
            staff = None
            if incoming.user_id:
                staff = await ctx.directory.staff_for_user(incoming.user_id, incoming.user_aad_id)
            return await router.dispatch(Request(ctx, incoming, staff))
        except (UserError, StoreError) as err:
            return _answer(incoming, str(err))
        except Exception:
            log.exception("handler failed", extra={"activity_type": incoming.type,
                                                   "verb": incoming.verb or ""})
            return _answer(
                incoming,
                "Sorry, something went wrong on our side and nothing was changed. If it keeps "
                f"happening, quote reference {incoming.correlation_id} to the QA team.")
        finally:
            correlation_id.reset(token)

    return handle


def _answer(incoming: Incoming, text: str) -> Reply:
    """A card button expects a card back (Teams shows an error otherwise); a message, text."""
    if incoming.is_card_action:
        return Reply(card=notice_card(text))
    return Reply.text(text)


async def _remember_conversation(ctx: AppContext, incoming: Incoming, known: dict[str, str]) -> None:
    """Keep each conversation's reference and service URL current (one write per change)."""
    if not incoming.conversation_id or not incoming.service_url:
        return
    if known.get(incoming.conversation_id) == incoming.service_url:
        return
    kind = incoming.conversation_type or "personal"
    await ctx.directory.save_conversation(
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
