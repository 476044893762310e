"""The QA team's ``status`` command: audit completion per team for the current month (R11)."""

from __future__ import annotations

import logging
from datetime import date

from bot.router import QA_TEAM, Request, Router
from bot.turn import Reply
from cards.allocation import CompletionView, completion_card
from store.completion import completion_by_team

log = logging.getLogger(__name__)
router = Router()


@router.command("status", summary="audit completion per team this month (QA team)",
                roles=[QA_TEAM])
async def status_command(request: Request) -> Reply:
    ctx = request.ctx
    today = ctx.clock().astimezone(ctx.framework.zone).date()
    month = date(today.year, today.month, 1)
    async with ctx.sessions() as session:
        rows = await completion_by_team(session, f"{month:%Y-%m}", today)
    log.info("status shown", extra={"staff_id": request.actor, "teams": len(rows)})
    return Reply(messages=[completion_card(CompletionView(month, today, tuple(rows)))])
