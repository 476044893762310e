"""Linking staff to Teams users from team rosters (after a team install, or on demand)."""

from __future__ import annotations

import hashlib
import logging

from qabot.context import AppContext
from store.directory import LinkReport
from store.outbox import queue_in

log = logging.getLogger(__name__)


async def sync_conversation(ctx: AppContext, conversation_id: str) -> LinkReport | None:
    conv = await ctx.directory.conversation(conversation_id)
    if conv is None or ctx.gateway is None:
        return None
    members = await ctx.gateway.roster(conv.reference, conv.team_id)
    triples = [
        (m.id, m.aad_object_id, " ".join(a for a in (m.email, m.user_principal_name) if a))
        for m in members
    ]
    report = await ctx.directory.link_members(triples, actor="teams:roster-sync")
    log.info("roster sync", extra={"members": len(members), "linked": len(report.linked),
                                   "unmatched": len(report.unmatched_staff)})
    await _tell_qa_leads(ctx, report, conv.team_name or "the team")
    return report


async def sync_all(ctx: AppContext) -> list[tuple[str, LinkReport]]:
    """Sync every team the bot is installed in."""
    out: list[tuple[str, LinkReport]] = []
    for conv in await ctx.directory.team_conversations():
        report = await sync_conversation(ctx, conv.id)
        if report is not None:
            out.append((conv.team_name or conv.id, report))
    return out


def describe(report: LinkReport) -> str:
    text = (f"Linked {len(report.linked)} staff to Teams (already linked: {len(report.already)}). "
            f"{report.unknown_members} Teams member(s) match no staff record.")
    if report.unmatched_staff:
        text += (f" {len(report.unmatched_staff)} staff could not be linked (no Teams account "
                 f"with their email): {', '.join(report.unmatched_staff)}.")
    return text


async def _tell_qa_leads(ctx: AppContext, report: LinkReport, team: str) -> None:
    if not report.unmatched_staff and not report.linked:
        return
    leads = await ctx.directory.staff_with_roles(ctx.framework.qa_roles)
    text = f"Teams roster check for {team}: {describe(report)}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    async with ctx.sessions.begin() as session:
        for lead in leads:
            # The same report is not sent twice (Teams sends two events per install).
            await queue_in(session, staff_id=lead.staff_id, message=text,
                           dedupe_key=f"roster:{lead.staff_id}:{digest}")
    ctx.outbox_queued()
