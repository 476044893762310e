"""Install, first contact and help: what the bot does for each person's roles."""

from __future__ import annotations

import logging

from bot.router import Request, Router
from bot.turn import Incoming, Reply
from cards import messages
from flows.roster import after_link, link_roster
from qa.framework import Framework
from qa.people import is_manager
from store.models import Staff

log = logging.getLogger(__name__)
router = Router()
jobs = ()


def _is_bot_added(incoming: Incoming) -> bool:
    if incoming.type == "installationUpdate":
        return (incoming.action or "add").startswith("add")
    return incoming.type == "conversationUpdate" and incoming.bot_id in incoming.members_added


def duties_for(roles: frozenset[str], framework: Framework) -> list[str]:
    """The messages a person with these roles gets from the bot as it is today.

    Findings and actions go to the case's social worker and its managers (flows/findings.py
    and the owners the audit form offers); escalations, the overdue-audit note and
    safeguarding alerts to managers; tracking lists to service managers (flows/nudges.py);
    remedial plans to the framework's remedial roles (flows/remedial.py).
    """
    duties: list[str] = []
    quota = framework.quota_for_roles(roles)
    if quota:
        duties.append(messages.AUDITOR_DUTY.format(n=quota))
    manager = is_manager(roles)
    if manager or "social_worker" in roles:
        duties += [messages.FINDINGS_DUTY, messages.ACTIONS_DUTY]
    if manager:
        duties += [messages.MANAGER_DUTY, messages.ESCALATION_DUTY, messages.SAFEGUARDING_DUTY]
    if "service_manager" in roles:
        duties.append(messages.TRACKING_DUTY)
    if roles & set(framework.escalation.remedial_roles):
        duties.append(messages.REMEDIAL_DUTY)
    if roles & set(framework.moderation.moderators):
        duties.append(messages.MODERATION_DUTY)
    if roles & framework.qa_roles:
        duties += [messages.QA_DUTY, messages.CALIBRATION_DUTY]
    return duties


def help_text(request: Request, staff: Staff | None = None) -> str:
    """Commands and messages for this person's roles (and only those)."""
    services = request.services
    staff = staff or request.staff
    roles = frozenset(staff.roles or []) if staff else frozenset()
    fw = services.framework
    return messages.help_text(
        known=staff is not None,
        role_labels=[fw.roles.get(r, r) for r in sorted(roles)],
        duties=duties_for(roles, fw),
        commands=[(c.usage, c.summary) for c in services.router.commands_for(roles,
                                                                             fw.qa_roles)])


@router.command("help", summary="what I do for you and the commands you can use",
                anywhere=True)
async def help_command(request: Request) -> Reply:
    return Reply.text(help_text(request))


@router.event(_is_bot_added)
async def on_installed(request: Request) -> Reply | None:
    services, incoming = request.services, request.incoming
    if incoming.conversation_type == "personal":
        # The turn handler has already linked the person by their Teams profile if it could.
        if not await services.directory.mark_welcomed(incoming.conversation_id):
            return None
        return Reply(messages=[messages.GREETING + "\n\n" + help_text(request)])
    if incoming.team_id or incoming.conversation_type == "channel":
        # Teams sends two events per install; only the first welcomes and syncs.
        if not await services.directory.mark_welcomed(incoming.conversation_id):
            return None
        try:
            linked = await link_roster(services, incoming.conversation_id)
        except Exception:
            log.exception("roster sync after team install failed")
        else:
            # Each linked person's 1:1 chat, opened now rather than on allocation day, then
            # the QA team's report; in the background, as a big team takes longer than
            # Teams waits for an answer.
            if linked is not None:
                services.spawn(after_link(services, *linked), name="open-personal-chats")
        return Reply(messages=[messages.CHANNEL_WELCOME])
    return None


@router.event(lambda i: i.type == "message" and i.conversation_type == "personal" and not i.text
              and not i.value)
async def on_empty(request: Request) -> Reply | None:
    return None
