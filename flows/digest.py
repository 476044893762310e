"""The leadership digest (SPEC R12): registered channels, the scheduled post, the 1:1 detail.

* ``digests here`` in a channel (QA team only) registers it; ``digests off`` stops it.
* The ``digest`` job posts the month's digest on the framework's ``digest_day`` (moved to
  the next working day when it is not one), covering the month before, and after March,
  June, September and December the quarter's too (``quarterly_digest``). Each channel gets
  each period once (dedupe key); a job that missed its day catches up later that month.
* ``qabot digest PERIOD`` prints the same digest as plain text, ``--post`` queues it to the
  registered channels: one computation (``reports/digest.py``), one protected view
  (``qa/digest.py``), rendered as card or text (``cards/digest.py``).
* The card's **Details** button sends case-level detail 1:1, only to leaders (the
  framework's remedial roles and management roles above service manager, see
  ``qa.people.leader_roles``) and the QA team. Nothing case-level is ever posted in a channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from bot.router import QA_TEAM, Request, Router
from bot.turn import Reply
from cards import messages
from cards.digest import details_card, digest_card, digest_text
from cards.payloads import DigestDetails
from flows.base import today, unit_of_work
from qa.digest import CaseItem, Digest, DigestView, Drilldown, channel_view
from qa.errors import Code, Refused
from qa.people import leader_roles
from qa.periods import Period, add_months, local_date, local_midnight_utc
from reports.digest import compute_digest
from scheduler.jobs import Job
from store import digests as stored
from store.models import Staff
from store.outbox import Message

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()


# ---------------------------------------------------------------------------- one computation


async def digest_for(services: Services, period: Period, *,
                     as_of: datetime | None = None) -> Digest:
    """The exact figures, as of the period's end or ``as_of`` (default: now) if earlier."""
    return await compute_digest(services.sessions, services.framework, period,
                                as_of=as_of or services.clock())


async def digest_view(services: Services, period: Period, *,
                      as_of: datetime | None = None) -> DigestView:
    """What a channel may show of the digest (small numbers protected)."""
    return channel_view(await digest_for(services, period, as_of=as_of), services.framework)


async def digest_report(services: Services, period: Period, *, as_json: bool = False) -> str:
    """The printed digest (the channel's figures, as plain text) or the exact figures as JSON."""
    digest = await digest_for(services, period)
    if as_json:
        return digest.to_json()
    return digest_text(channel_view(digest, services.framework))


@dataclass(frozen=True)
class Posted:
    period: str
    channels: int
    queued: int
    complete: bool


async def post_digest(services: Services, period: Period, *, at: datetime,
                      actor: str) -> Posted:
    """Queue the digest card to every registered channel, once per channel and period.

    A period still running is posted "as of" its day, under its own key, so the complete
    digest still goes out after the period ends.
    """
    view = await digest_view(services, period, as_of=at)
    card = digest_card(view)
    suffix = "" if view.complete else f":asof:{local_date(at, services.framework.zone)}"
    async with unit_of_work(services, at=at, actor=actor) as work:
        channels = await stored.active_channels(work.session)
        queued = 0
        for conv in channels:
            if await work.tell(Message(card, conversation_id=conv,
                                       dedupe_key=f"digest:{view.period}{suffix}:{conv}")):
                queued += 1
        if queued:
            work.log("digest.posted", "digest", f"{view.period}{suffix}",
                     after={"channels": queued, "complete": view.complete})
    log.info("digest queued", extra={"period": view.period, "channels": len(channels),
                                     "queued": queued})
    return Posted(view.period, len(channels), queued, view.complete)


# ---------------------------------------------------------------------------- schedule


def digest_day(services: Services, month: date) -> date:
    """The day of ``month`` the digest goes out: ``digest_day``, or the next working day."""
    day = date(month.year, month.month, services.framework.schedule.digest_day)
    cal = services.calendar
    return day if cal.is_working_day(day) else cal.next_working_day(day)


def due_periods(services: Services, at: datetime) -> tuple[date, list[Period]]:
    """The month's digest day and the periods due by ``at`` (none before that day)."""
    fw = services.framework
    local = at.astimezone(fw.zone)
    month = date(local.year, local.month, 1)
    day = digest_day(services, month)
    if datetime.combine(day, fw.schedule.digest_time, tzinfo=fw.zone) > local:
        return day, []
    previous = add_months(month, -1)
    periods = [Period.month_of(previous)]
    if fw.schedule.quarterly_digest and month.month in (1, 4, 7, 10):
        periods.append(Period.quarter_of(previous))
    return day, periods


async def digest_job(services: Services, at: datetime) -> str:
    """Post the month's (and quarter's) digest from its day on; each channel gets it once."""
    day, periods = due_periods(services, at)
    if not periods:
        return f"the digest goes out on {day.isoformat()}: nothing to do yet"
    parts = []
    for period in periods:
        posted = await post_digest(services, period, at=at, actor="job:digest")
        parts.append(f"{posted.period}: {posted.queued} of {posted.channels} channel(s) queued")
    return "; ".join(parts)


jobs = (Job("digest", "leadership digest to registered channels (monthly, quarterly)",
            digest_job, lambda s: s.digest_time),)


# ---------------------------------------------------------------------------- channel commands


def _channel_id(conversation_id: str) -> str:
    """The channel itself: a message in a thread arrives as ``<channel>;messageid=<id>``."""
    return conversation_id.split(";messageid=", 1)[0]


@router.command("digests here", summary="post the leadership digest in this channel (QA team)",
                roles=[QA_TEAM], anywhere=True)
async def digests_here(request: Request) -> Reply:
    incoming = request.incoming
    if incoming.conversation_type != "channel":
        return Reply.text(messages.DIGEST_CHANNEL_ONLY)
    services = request.services
    channel = _channel_id(incoming.conversation_id)
    reference = dict(incoming.reference)
    reference["conversation"] = {**dict(reference.get("conversation") or {}), "id": channel}
    reference.pop("activityId", None)
    at = services.clock()
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        created = await stored.register_channel(
            work.session, conversation_id=channel, service_url=incoming.service_url,
            tenant_id=incoming.tenant_id, reference=reference, team_id=incoming.team_id,
            team_name=incoming.team_name, actor=request.actor, at=at)
    log.info("digest channel registered", extra={"new": created})
    s = services.framework.schedule
    return Reply.text(messages.digest_registered(
        created, day=s.digest_day, time=f"{s.digest_time:%H:%M}", quarterly=s.quarterly_digest))


@router.command("digests off", summary="stop posting the digest in this channel (QA team)",
                roles=[QA_TEAM], anywhere=True)
async def digests_off(request: Request) -> Reply:
    incoming = request.incoming
    if incoming.conversation_type != "channel":
        return Reply.text(messages.DIGEST_CHANNEL_ONLY)
    services = request.services
    at = services.clock()
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        changed = await stored.unregister_channel(
            work.session, _channel_id(incoming.conversation_id), actor=request.actor, at=at)
    return Reply.text(messages.digest_unregistered(changed))


# ---------------------------------------------------------------------------- details, 1:1


def may_see_details(services: Services, staff: Staff | None) -> bool:
    """Leaders and the QA team; see ``qa.people.leader_roles``."""
    if staff is None or not staff.active:
        return False
    fw = services.framework
    allowed = leader_roles(fw.escalation.remedial_roles) | fw.qa_roles
    return bool(allowed.intersection(staff.roles or []))


async def drilldown(services: Services, period: Period, *, as_of: datetime) -> Drilldown:
    """The case-level rows behind a digest (for a 1:1 chat with someone entitled to them)."""
    fw = services.framework
    zone = fw.zone
    start, end = local_midnight_utc(period.start, zone), local_midnight_utc(period.end, zone)
    end = min(end, max(as_of, start))
    end_day = period.end if end >= local_midnight_utc(period.end, zone) else local_date(end, zone)
    digest = await digest_for(services, period, as_of=as_of)
    async with services.sessions() as session:
        rows = await stored.case_detail(session, start=start, end=end, end_day=end_day,
                                        good_or_better=fw.good_or_better)
        owed = await stored.reaudits_overdue(session, end=end, grades=dict(fw.reaudit_months))
    reaudits = []
    for ref, team, grade, submitted in owed:
        due = add_months(local_date(submitted, zone), fw.reaudit_months[grade])
        if due < end_day:
            reaudits.append(CaseItem(ref, team, grade, due.isoformat()))
    return Drilldown(
        period=period.key, label=period.label,
        below_good=tuple(CaseItem(r, t, g) for r, t, g in rows["below_good"]),
        overdue_actions=tuple(CaseItem(r, t, o, d.isoformat())
                              for r, t, o, d in rows["overdue_actions"]),
        reaudits_overdue=tuple(reaudits),
        safeguarding=tuple(CaseItem(r, t, "") for r, t in rows["safeguarding"]),
        celebrate=tuple(CaseItem(r, t, "") for r, t in rows["celebrate"]),
        teams=digest.teams,
    )


@router.card(DigestDetails)
async def digest_details(request: Request, payload: DigestDetails) -> Reply:
    """The card stays as it is in the channel; the detail goes 1:1, or a refusal does."""
    services = request.services
    try:
        period = Period.parse(payload.period)
    except ValueError:
        raise Refused(Code.BAD_PAYLOAD,
                      problem=messages.payload_problem("period", False)) from None
    at = services.clock()
    card = digest_card(await digest_view(services, period, as_of=at))
    staff = request.staff
    if not may_see_details(services, staff):
        log.info("digest details refused", extra={"staff_id": request.actor})
        if staff is None:
            return Reply(card=card, messages=[messages.DIGEST_DETAILS_REFUSED])
        async with unit_of_work(services, at=at, actor=request.actor) as work:
            await work.tell(Message(messages.DIGEST_DETAILS_REFUSED, staff_id=staff.staff_id,
                                    dedupe_key=f"digest.details.refused:{period.key}:"
                                               f"{staff.staff_id}:{today(services, at)}"))
        return Reply(card=card)
    assert staff is not None
    drill = await drilldown(services, period, as_of=at)
    labels = {g.key: g.label for g in services.framework.grades}
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        sent = await work.tell(Message(details_card(drill, labels), staff_id=staff.staff_id,
                                       dedupe_key=f"digest.details:{period.key}:"
                                                  f"{staff.staff_id}:{today(services, at)}"))
        if sent:
            work.log("digest.details_sent", "digest", period.key,
                     after={"staff_id": staff.staff_id, "cases": len(drill.below_good)})
    return Reply(card=card)
