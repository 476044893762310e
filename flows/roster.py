"""Who is on the staff roster and how to reach them: linking staff to Teams users from team
rosters (after a team install, or ``qabot teams sync``), and the CSV imports' entry points.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.chats import ChatsOpened, open_personal_chats
from bot.router import Router
from cards import messages
from flows.base import unit_of_work
from store.directory import LinkReport, staff_with_roles, team_usage
from store.imports import ImportReport, Progress, import_cases, import_staff
from store.outbox import Message

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()
jobs = ()


def describe(report: LinkReport) -> str:
    return messages.roster_report(len(report.linked), len(report.already),
                                  report.unknown_members, report.unmatched_staff)


async def link_roster(services: Services, conversation_id: str) -> tuple[LinkReport, str] | None:
    """Page through the roster of the team (or chat) and link staff by email or UPN.

    Messages held for the people linked are released by the link itself; the sender is
    woken so they go at once. Returns the report and the team's name.
    """
    conv = await services.directory.conversation(conversation_id)
    if conv is None or services.teams is None:
        return None
    members = await services.teams.roster(conv.reference, conv.team_id)
    triples = [
        (m.id, m.aad_object_id, " ".join(a for a in (m.email, m.user_principal_name) if a))
        for m in members
    ]
    report = await services.directory.link_members(triples, actor="teams:roster-sync")
    if report.released:
        services.outbox_queued()
    log.info("roster sync", extra={"members": len(members), "linked": len(report.linked),
                                   "unmatched": len(report.unmatched_staff),
                                   "released": report.released})
    return report, conv.team_name or "the team"


async def after_link(services: Services, report: LinkReport, team: str) -> ChatsOpened:
    """Open the linked people's 1:1 chats, then tell the QA team who could not be linked
    (in that order, so the QA team's own report finds their chat open)."""
    chats = await open_chats(services)
    await _tell_qa_leads(services, report, team)
    return chats


async def sync_conversation(services: Services, conversation_id: str) -> LinkReport | None:
    """Link the roster, open the 1:1 chats and report to the QA team, all before returning."""
    linked = await link_roster(services, conversation_id)
    if linked is None:
        return None
    await after_link(services, *linked)
    return linked[0]


async def open_chats(services: Services) -> ChatsOpened:
    """Open a 1:1 chat now for each linked person who has none, so allocation day only
    sends (one call per person, not two)."""
    if services.teams is None:
        return ChatsOpened()
    return await open_personal_chats(services.directory, services.teams,
                                     tenant_rate=services.settings.tenant_rate,
                                     actor="teams:roster-sync")


async def sync_all(services: Services) -> list[tuple[str, LinkReport]]:
    """Sync every team the bot is installed in."""
    out: list[tuple[str, LinkReport]] = []
    for conv in await services.directory.team_conversations():
        report = await sync_conversation(services, conv.id)
        if report is not None:
            out.append((conv.team_name or conv.id, report))
    return out


async def unlinked_report(services: Services) -> list[str]:
    """``qabot staff unlinked``: who cannot be reached in Teams, why, and what to do."""
    facts = await services.directory.reachability()
    roles = services.framework.roles
    return messages.unlinked_report(
        [(s.staff_id, s.name, s.email, [roles.get(r, r) for r in s.roles], s.team, s.held)
         for s in facts.unlinked],
        teams=facts.teams, linked_domains=facts.linked_domains)


async def _tell_qa_leads(services: Services, report: LinkReport, team: str) -> None:
    if not report.unmatched_staff and not report.linked:
        return
    text = messages.roster_check(team, describe(report))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    async with unit_of_work(services, at=services.clock(), actor="teams:roster-sync") as work:
        for lead in await staff_with_roles(work.session, services.framework.qa_roles):
            # The same report is not sent twice (Teams sends two events per install).
            await work.tell(Message(text, staff_id=lead.staff_id,
                                    dedupe_key=f"roster:{lead.staff_id}:{digest}"))


async def import_file(services: Services, kind: str, path: Path, *, actor: str,
                      at: datetime | None = None,
                      progress: Progress | None = None) -> ImportReport:
    """``qabot import staff|cases FILE``: the upsert, as of the one clock."""
    run = import_staff if kind == "staff" else import_cases
    report = await run(services.sessions, services.framework, path, actor=actor,
                       at=at or services.clock(), progress=progress)
    async with services.sessions() as session:
        usage = await team_usage(session)
    report.warnings.extend(team_warnings(kind, report.teams_added, usage))
    return report


def team_warnings(kind: str, added: list[str], usage: dict[str, tuple[int, int]]) -> list[str]:
    """A new team that nothing else uses is most often a typo: say so, with the nearest
    name, and import anyway. Staff teams are checked against cases' teams and the other
    way round, once the other file has been imported at all."""
    staff_teams = [t for t, (staff, _) in usage.items() if staff]
    case_teams = [t for t, (_, cases) in usage.items() if cases]
    out: list[str] = []
    for team in added:
        staff, cases = usage.get(team, (0, 0))
        if kind == "staff" and not cases and case_teams:
            out.append(messages.team_without_cases(team, _nearest(team, case_teams)))
        elif kind == "cases" and not staff and staff_teams:
            out.append(messages.team_without_staff(team, _nearest(team, staff_teams)))
    return out


def _nearest(name: str, names: list[str]) -> str | None:
    """The closest other team name, case and spacing ignored (difflib, as people misspell)."""
    folded = {n.casefold(): n for n in names if n != name}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.75)
    return folded[close[0]] if close else None
