"""Immediate safeguarding escalation (SPEC R6, Hillingdon 4.1.2): a serious concern ticked on
an audit goes at once, 1:1, to the case's managers and the rung above them, with an
Acknowledge button; unacknowledged after the framework's working hours it climbs one rung
of the line of management, and on up to the top (then the QA team).

Delivery is checked, not assumed: the auditor is told the alert is *queued* for whom, and
each alert carries its fallback (``Message.fallback``): if it cannot be delivered (the person
is not reachable in Teams even after a roster lookup, Teams refuses it, or retries run out),
the auditor, the QA leads and the next manager up are told at once. Never in a channel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from bot.router import Request, Router
from bot.turn import Reply
from cards import messages
from cards.followups import AlertView, alert_card
from cards.payloads import AcknowledgeAlert
from flows.base import Submitted, Work, unit_of_work
from qa.chase import add_working_hours
from qa.errors import Code, NotAllowed
from qa.people import LineOfManagement, Person
from scheduler.jobs import Job
from store import followups as stored
from store.audits import people_around_case
from store.directory import line_above, people, staff_with_roles
from store.models import Audit, Case, SafeguardingAlert, Staff
from store.outbox import Message

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()


def _local(services: Services, moment: datetime) -> datetime:
    return moment.astimezone(services.framework.zone)


async def _qa_leads(services: Services, work: Work) -> list[Staff]:
    return await staff_with_roles(work.session, services.framework.qa_roles)


def _view(services: Services, alert: SafeguardingAlert, case_ref: str, raised_by: str,
          details: str, note: str | None = None) -> AlertView:
    """The alert as it goes out (not yet acknowledged)."""
    return AlertView(alert.id, case_ref, raised_by, _local(services, alert.raised_at), details,
                     services.framework.escalation.safeguarding_ack_hours, note)


async def _queue_alert(services: Services, work: Work, alert: SafeguardingAlert, audit: Audit,
                       recipients: Sequence[Person], line: LineOfManagement, auditor_id: str,
                       body: dict[str, object], qa_leads: Sequence[Staff]) -> None:
    """The alert to each recipient, each with its fallback if it cannot be delivered."""
    for person in recipients:
        above = line.manager_of(person.staff_id)
        key = f"undelivered:safeguarding:{audit.id}:{person.staff_id}"
        note = messages.alert_undelivered(audit.case_ref, person.name)
        fallback = [Message(note, staff_id=auditor_id, dedupe_key=f"{key}:{auditor_id}")]
        fallback += [Message(note, staff_id=lead.staff_id, dedupe_key=f"{key}:{lead.staff_id}")
                     for lead in qa_leads if lead.staff_id != auditor_id]
        if above is not None and above.staff_id not in {p.staff_id for p in recipients}:
            fallback.append(Message(body, staff_id=above.staff_id,
                                    dedupe_key=f"{key}:{above.staff_id}"))
        await work.tell(Message(body, staff_id=person.staff_id,
                                dedupe_key=f"safeguarding:{audit.id}:{person.staff_id}",
                                fallback=tuple(fallback)))


async def on_audit_submitted(services: Services, work: Work, done: Submitted) -> list[str]:
    """Raise the alert in the submit's own transaction; return what the auditor is told."""
    if not done.submission.safeguarding:
        return []
    case, audit = done.case, done.audit
    if audit.reworks and await stored.alert_of_audit(work.session, audit.id) is not None:
        return []  # resubmitted after rework: the alert raised the first time stands
    line = LineOfManagement(await people_around_case(work.session, case))
    managers = line.case_managers(case.team_id, case.social_worker_id)
    recipients = sorted([*managers, *line.next_rung(managers)], key=lambda p: p.staff_id)
    qa_leads = await _qa_leads(services, work)
    if not recipients:  # nobody manages the case on record: the QA team is told instead
        recipients = [Person(s.staff_id, s.name) for s in qa_leads]
    alert = await stored.raise_alert(work.session, audit.id, case.case_ref, by=done.actor,
                                     at=work.at)
    ids = [p.staff_id for p in recipients]
    await stored.tell(work.session, alert.id, ids, 0, at=work.at)
    auditor = await work.session.get(Staff, done.actor)
    body = alert_card(_view(services, alert, case.case_ref, auditor.name if auditor else "",
                            done.submission.safeguarding_details))
    await _queue_alert(services, work, alert, audit, recipients, line, done.actor, body,
                       qa_leads)
    work.log("safeguarding.alerted", "audit", str(audit.id), after={"recipients": ids})
    log.info("safeguarding alert queued", extra={"audit_id": audit.id, "recipients": len(ids)})
    return [messages.alert_queued([p.name for p in recipients],
                                  services.framework.escalation.safeguarding_ack_hours)]


# ---------------------------------------------------------------------------- acknowledge


@router.card(AcknowledgeAlert)
async def acknowledge(request: Request, ask: AcknowledgeAlert) -> Reply:
    """Anyone told, anyone above them, or the QA team may acknowledge; the first click
    counts, later ones see who acknowledged."""
    if request.staff is None:
        raise NotAllowed(Code.NOT_STAFF)
    services = request.services
    at = services.clock()
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        alert, told = await stored.alert(work.session, ask.alert_id)
        allowed = (request.staff_id in told
                   or services.framework.qa_roles.intersection(request.roles))
        if not allowed:
            line = LineOfManagement(await line_above(work.session, told))
            allowed = any(request.staff_id in {m.staff_id for m in line.chain(t)} for t in told)
        if not allowed:
            raise NotAllowed(Code.ALERT_NOT_YOURS)
        audit = await work.session.get(Audit, alert.audit_id)
        assert audit is not None
        first = await stored.acknowledge(work.session, alert, by=request.actor, at=at)
        if first:
            await work.tell(Message(
                messages.alert_acknowledged(request.staff.name, alert.case_ref,
                                            _local(services, at)),
                staff_id=alert.raised_by, dedupe_key=f"safeguarding:{audit.id}:acknowledged"))
            alert.acknowledged_by, alert.acknowledged_at = request.actor, at
        by = await work.session.get(Staff, alert.acknowledged_by or "")
        raised = await work.session.get(Staff, alert.raised_by)
        details = (audit.answers or {}).get("safeguarding_details", "")
    view = AlertView(alert.id, alert.case_ref, raised.name if raised else alert.raised_by,
                     _local(services, alert.raised_at), str(details),
                     services.framework.escalation.safeguarding_ack_hours,
                     acknowledged_by=by.name if by else alert.acknowledged_by,
                     acknowledged_at=_local(services, alert.acknowledged_at or at))
    log.info("safeguarding alert acknowledged" if first else "safeguarding ack replayed",
             extra={"alert_id": alert.id})
    return Reply(card=alert_card(view))


# ---------------------------------------------------------------------------- escalation


async def escalate_unacknowledged(services: Services, at: datetime) -> str:
    """Every alert unacknowledged past its working hours goes up one rung (or, above the
    top of the line, to the QA team). Idempotent: a rung climbs once (conditional update),
    and a replayed time finds the alert already at its rung."""
    fw = services.framework
    hours = fw.escalation.safeguarding_ack_hours
    climbed = 0
    async with unit_of_work(services, at=at, actor="job:safeguarding_escalation") as work:
        alerts = await stored.unacknowledged(work.session)
        if not alerts:
            return "no unacknowledged safeguarding alerts"
        everyone = LineOfManagement(await people(work.session))
        qa_leads = await _qa_leads(services, work)
        for alert in alerts:
            due = add_working_hours(services.calendar, alert.rung_at, hours, fw.zone,
                                    fw.calendar.day_starts, fw.calendar.day_ends)
            if at < due:
                continue
            _, told = await stored.alert(work.session, alert.id)
            told_people = [p for t in told if (p := everyone.person(t)) is not None]
            nxt = everyone.next_rung(told_people)
            if not nxt:
                nxt = [Person(s.staff_id, s.name) for s in qa_leads if s.staff_id not in told]
            if not nxt or not await stored.climb(work.session, alert.id, alert.rung + 1, at=at):
                continue
            audit = await work.session.get(Audit, alert.audit_id)
            case = await work.session.get(Case, alert.case_ref)
            assert audit is not None and case is not None
            new = await stored.tell(work.session, alert.id, [p.staff_id for p in nxt],
                                    alert.rung + 1, at=at)
            recipients = [p for p in nxt if p.staff_id in new]
            raised = await work.session.get(Staff, alert.raised_by)
            note = messages.alert_escalated_note(
                [n for t in told if (n := _name(everyone, t))], hours)
            alert.rung, alert.rung_at = alert.rung + 1, at
            body = alert_card(_view(services, alert, case.case_ref,
                                    raised.name if raised else alert.raised_by,
                                    str((audit.answers or {}).get("safeguarding_details", "")),
                                    note))
            await _queue_alert(services, work, alert, audit, recipients, everyone,
                               alert.raised_by, body, qa_leads)
            await work.tell(Message(
                messages.alert_escalated_to_auditor(case.case_ref, [p.name for p in recipients],
                                                    hours),
                staff_id=alert.raised_by,
                dedupe_key=f"safeguarding:{audit.id}:escalated:{alert.rung}"))
            work.log("safeguarding.escalated", "audit", str(audit.id),
                     after={"rung": alert.rung, "recipients": [p.staff_id for p in recipients]})
            climbed += 1
    return f"{len(alerts)} unacknowledged alert(s), {climbed} escalated one rung"


def _name(line: LineOfManagement, staff_id: str) -> str | None:
    person = line.person(staff_id)
    return person.name if person else None


jobs = (Job("safeguarding_escalation",
            "unacknowledged safeguarding alerts go up the line of management",
            escalate_unacknowledged, every_minutes=15),)
