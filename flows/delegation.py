"""Delegation (SPEC R5): a QA lead names who may do a case's open audit besides its auditor.

``delegate CASE_REF to EMAIL`` in a 1:1 chat. The delegate gets the form and the auditor is
told, in the same transaction as the change, so nobody is told of a delegation that did not
happen (or left untold of one that did).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.router import QA_TEAM, Request, Router
from bot.turn import Reply
from cards import messages
from cards.audit_form import open_form_card
from cards.common import fmt_date
from flows.base import unit_of_work
from qa.errors import Code, Conflict, NotAllowed, Refused
from store import audits as stored
from store.models import Audit, Case, Staff
from store.outbox import Message

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()
jobs = ()


@dataclass(frozen=True)
class Delegation:
    """A delegate named for a case's open audit; ``changed`` False when already so."""

    audit: Audit
    case: Case
    delegate: Staff
    auditor: Staff | None
    changed: bool


async def delegate(services: Services, case_ref: str, delegate_email: str, actor: str | None,
                   *, at: datetime | None = None) -> Delegation:
    """Name the delegate; refused unless the actor is in the QA team and the delegate is
    someone who may audit the case (not its auditor, not on its team)."""
    at = at or services.clock()
    async with unit_of_work(services, at=at, actor=str(actor)) as work:
        lead = await work.session.get(Staff, actor) if actor else None
        if lead is None or not services.framework.qa_roles.intersection(lead.roles or []):
            raise NotAllowed(Code.DELEGATE_QA_ONLY)
        case, audit = await stored.open_audit_of_case(work.session, case_ref)
        person = await stored.active_staff_by_email(work.session, delegate_email)
        if person.staff_id == audit.auditor_id:
            raise Conflict(Code.DELEGATE_IS_AUDITOR, name=person.name)
        if person.staff_id == case.social_worker_id or person.team_id == case.team_id:
            raise NotAllowed(Code.DELEGATE_OWN_TEAM, name=person.name)
        auditor = await work.session.get(Staff, audit.auditor_id)
        assert actor is not None
        changed = await stored.set_delegate(work.session, audit, person.staff_id, actor=actor,
                                            at=at)
        if changed:
            area = services.framework.areas.get(audit.area)
            area_label = area.label if area else audit.area
            await work.tell(Message(messages.delegate_invite(
                person.name, case.case_ref, auditor.name if auditor else None,
                fmt_date(audit.deadline)), staff_id=person.staff_id))
            await work.tell(Message(open_form_card(case.case_ref, area_label, audit.deadline,
                                                   audit.id), staff_id=person.staff_id))
            if auditor is not None:
                await work.tell(Message(messages.delegate_told_auditor(person.name,
                                                                       case.case_ref),
                                        staff_id=auditor.staff_id))
        return Delegation(audit, case, person, auditor, changed)


@router.command("delegate", summary="let someone else do the open audit of a case",
                usage=messages.DELEGATE_USAGE, roles=[QA_TEAM])
async def delegate_command(request: Request) -> Reply:
    """``delegate CASE_REF to EMAIL``: the named person may then open, save and submit."""
    parts = request.args.split()
    if len(parts) != 3 or parts[1].lower() != "to" or "@" not in parts[2]:
        raise Refused(Code.DELEGATE_USAGE)
    case_ref, email = parts[0], parts[2]
    result = await delegate(request.services, case_ref, email, request.staff_id)
    if not result.changed:
        return Reply.text(messages.delegate_already(result.delegate.name, case_ref))
    log.info("audit delegated", extra={"audit_id": result.audit.id})
    return Reply.text(messages.delegate_done(result.delegate.name, case_ref,
                                             fmt_date(result.audit.deadline)))
