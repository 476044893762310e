"""Install, first contact and help: what the bot does for each person's roles."""

from __future__ import annotations

import logging

from bot.router import Request, Router
from bot.turn import Incoming, Reply
from qa.framework import Framework
from store.models import Staff

log = logging.getLogger(__name__)
router = Router()

# What the bot sends a person today, by what they do. Derived from the framework (who
# audits, who is in the QA team), so help never promises a message that is not sent.
AUDITOR_DUTY = ("your monthly audit allocation ({n} a month) with the audit form, and a "
                "reminder before the deadline")
MANAGER_DUTY = "a note when someone you manage has not submitted an audit by its deadline"
SAFEGUARDING_DUTY = ("at once, any serious safeguarding concern an auditor raises about a "
                     "case in a team you manage")
QA_DUTY = ("allocation summaries and Teams roster reports; **status** shows completion "
           "per team")
NO_DUTY = ("Audits of your cases are recorded by the auditors; in this version I do not "
           "send you messages about them.")
MANAGER_ROLES = frozenset({"team_manager", "service_manager", "head_of_service",
                           "assistant_director", "director"})

CHANNEL_WELCOME = (
    "Hello, I am the case audit QA bot. Each month I allocate case audits to auditors, send "
    "them the audit form, chase actions and escalate poor practice to managers.\n\n"
    "**In this channel I only ever post totals** (digests for leadership): case references, "
    "findings and names of children never appear here. Everything about a case goes 1:1, "
    "and only to the people it concerns: auditors get their allocations, social workers "
    "and team managers the findings of audits of their cases, action owners reminders, "
    "managers escalations, and the QA team summaries and moderation requests.\n\n"
    "Message me 1:1 and type **help** to see what I will send you."
)


def _is_bot_added(incoming: Incoming) -> bool:
    if incoming.type == "installationUpdate":
        return (incoming.action or "add").startswith("add")
    return incoming.type == "conversationUpdate" and incoming.bot_id in incoming.members_added


def duties_for(roles: frozenset[str], framework: Framework) -> list[str]:
    """The messages a person with these roles gets from the bot as it is today."""
    duties: list[str] = []
    quota = framework.quota_for_roles(roles)
    if quota:
        duties.append(AUDITOR_DUTY.format(n=quota))
    if roles & MANAGER_ROLES:
        duties += [MANAGER_DUTY, SAFEGUARDING_DUTY]
    if roles & framework.qa_roles:
        duties.append(QA_DUTY)
    return duties


def help_text(request: Request) -> str:
    """Commands and messages for this person's roles (and only those)."""
    ctx = request.ctx
    roles = request.roles
    lines: list[str] = []
    if request.staff is None:
        lines.append(
            "I do not recognise you as a member of staff yet. Ask your QA team to check that "
            "your email in the staff list matches your Teams account.")
    else:
        labels = [ctx.framework.roles.get(r, r) for r in sorted(roles)]
        lines.append(f"You are set up as: {', '.join(labels) or 'no role'}.")
        duties = duties_for(roles, ctx.framework)
        lines.append("I will send you: " + "; ".join(duties) + "." if duties else NO_DUTY)
    if ctx.router is not None:
        lines.append("Commands you can use:")
        for command in ctx.router.commands_for(roles, ctx.framework.qa_roles):
            lines.append(f"- **{command.usage}**: {command.summary}")
    return "\n\n".join(lines)


@router.command("help", summary="what I do for you and the commands you can use",
                anywhere=True)
async def help_command(request: Request) -> Reply:
    return Reply.text(help_text(request))


async def _link_from_profile(request: Request) -> Staff | None:
    """On first 1:1 contact, link the person to their staff record by email or UPN."""
    ctx, incoming = request.ctx, request.incoming
    if request.staff is not None or ctx.gateway is None or not incoming.reference:
        return request.staff
    member = await ctx.gateway.member(incoming.reference, incoming.user_id)
    if member is None:
        return None
    addresses = " ".join(a for a in (member.email, member.user_principal_name) if a)
    report = await ctx.directory.link_members(
        [(member.id, member.aad_object_id, addresses)], actor="teams:first-contact")
    if report.linked:
        await ctx.directory.save_conversation(
            conversation_id=incoming.conversation_id, kind="personal",
            service_url=incoming.service_url, tenant_id=incoming.tenant_id,
            reference=incoming.reference, teams_user_id=incoming.user_id,
            aad_object_id=incoming.user_aad_id)
    return await ctx.directory.staff_for_user(incoming.user_id, incoming.user_aad_id)


@router.event(_is_bot_added)
async def on_installed(request: Request) -> Reply | None:
    ctx, incoming = request.ctx, request.incoming
    if incoming.conversation_type == "personal":
        staff = await _link_from_profile(request)
        if not await ctx.directory.mark_welcomed(incoming.conversation_id):
            return None
        first = Request(ctx, incoming, staff)
        greeting = ("Hello, I am the case audit QA bot. I run your council's monthly case "
                    "audits in Teams.")
        return Reply(messages=[greeting + "\n\n" + help_text(first)])
    if incoming.team_id or incoming.conversation_type == "channel":
        # Teams sends two events per install; only the first welcomes and syncs.
        if not await ctx.directory.mark_welcomed(incoming.conversation_id):
            return None
        from bot.flows.teams_sync import sync_conversation

        try:
            await sync_conversation(ctx, incoming.conversation_id)
        except Exception:
            log.exception("roster sync after team install failed")
        return Reply(messages=[CHANNEL_WELCOME])
    return None


@router.event(lambda i: i.type == "message" and i.conversation_type == "personal" and not i.text
              and not i.value)
async def on_empty(request: Request) -> Reply | None:
    return None
