"""Audit actions tracked to done (SPEC R8): the owner marks one done (with a note) or asks
for more time (a new date and a reason), their manager approves or refuses on a card, and
``my actions`` / ``team actions`` list what is owed.

Every button is authorised (the owner, their line of management, or the QA team; a decision
on more time: the owner's line or the QA team) and idempotent (a second click on a done
action says it is already done; a decision made twice counts once). Every change is in the
audit log. A button answers with the person's to-do list as it now stands, so the card
they clicked on stays useful.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING

from bot.router import Request, Router
from bot.turn import Reply
from cards import messages
from cards.followups import ActionItem, DecisionItem, TodoView, todo_card
from cards.payloads import ActionDone, AskMoreTime, DecideMoreTime
from flows.base import today, unit_of_work
from flows.nudges import load_world, todo_for, todo_reply
from qa.chase import ACTION_OPEN_STATES, state_of
from qa.errors import Code, NotAllowed, Refused
from qa.people import LineOfManagement, Person, is_manager
from store import actions as stored
from store.actions import ActionRow
from store.directory import people
from store.models import Staff
from store.outbox import Message

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()
jobs = ()

NOTE_MAX = 1000


async def _line(session: AsyncSession) -> LineOfManagement:
    return LineOfManagement(await people(session))


def may_close(services: Services, line: LineOfManagement, staff: Staff, owner_id: str) -> bool:
    """The owner, anyone above them in the line of management, or the QA team."""
    if staff.staff_id == owner_id or services.framework.qa_roles.intersection(staff.roles or []):
        return True
    return staff.staff_id in {p.staff_id for p in line.chain(owner_id)}


def may_decide(services: Services, line: LineOfManagement, staff: Staff, owner_id: str) -> bool:
    """More time is the owner's line of management's call (or the QA team's), not theirs."""
    return staff.staff_id != owner_id and may_close(services, line, staff, owner_id)


def _text(inputs: dict[str, object], key: str) -> str:
    value = inputs.get(key)
    return value.strip() if isinstance(value, str) else ""


async def _load(request: Request, action_id: int, session: AsyncSession
                ) -> tuple[Staff, ActionRow, LineOfManagement]:
    if request.staff is None:
        raise NotAllowed(Code.NOT_STAFF)
    return request.staff, await stored.action_row(session, action_id), await _line(session)


@router.card(ActionDone)
async def mark_done(request: Request, ask: ActionDone) -> Reply:
    services = request.services
    at = services.clock()
    note = _text(request.inputs, f"note.{ask.action_id}")[:NOTE_MAX]
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        staff, action, line = await _load(request, ask.action_id, work.session)
        if not may_close(services, line, staff, action.owner_id):
            raise NotAllowed(Code.ACTION_NOT_YOURS)
        closed = await stored.close(work.session, action.id, status="done", by=staff.staff_id,
                                    note=note, at=at)
    if not closed:
        done_by = line.person(action.done_by) if action.done_by else None
        confirmation = messages.action_already(action.what, action.case_ref, action.status,
                                               done_by.name if done_by else None)
    else:
        log.info("action done", extra={"action_id": action.id})
        confirmation = messages.action_done(action.what, action.case_ref)
    return await todo_reply(services, staff, confirmation=confirmation)


@router.card(AskMoreTime)
async def ask_more_time(request: Request, ask: AskMoreTime) -> Reply:
    services = request.services
    at = services.clock()
    inputs = request.inputs
    reason = _text(inputs, f"reason.{ask.action_id}")[:NOTE_MAX]
    raw_due = _text(inputs, f"due.{ask.action_id}")
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        staff, action, line = await _load(request, ask.action_id, work.session)
        if not may_close(services, line, staff, action.owner_id):
            raise NotAllowed(Code.ACTION_NOT_YOURS)
        if action.status not in ACTION_OPEN_STATES:
            return await todo_reply(services, staff, confirmation=messages.action_already(
                action.what, action.case_ref, action.status, None))
        new_due = _date(raw_due)
        latest = date(action.due_on.year + 1, action.due_on.month, 1)
        if new_due is None or new_due <= max(action.due_on, today(services, at)) \
                or new_due > latest:
            raise Refused(Code.EXTENSION_DATE, due=f"{action.due_on.day} "
                                                   f"{action.due_on:%b %Y}")
        if not reason:
            raise Refused(Code.EXTENSION_REASON)
        asked = await stored.ask_extension(work.session, action.id, by=staff.staff_id,
                                           due_on=new_due, reason=reason, at=at)
        if asked:
            for decider in _deciders(services, line, action.owner_id, staff.staff_id):
                view = TodoView(decider.name, today(services, at), decisions=(
                    _decision(action, line, new_due, reason),),
                    heading=messages.more_time_heading(
                        (line.person(action.owner_id) or decider).name))
                await work.tell(Message(todo_card(view), staff_id=decider.staff_id,
                                        dedupe_key=f"more_time:{action.id}:{at.isoformat()}:"
                                                   f"{decider.staff_id}"))
    confirmation = (messages.more_time_asked(action.what, action.case_ref, new_due)
                    if asked else messages.action_already(action.what, action.case_ref,
                                                          "extension_requested", None))
    return await todo_reply(services, staff, confirmation=confirmation)


def _date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        return None


def _deciders(services: Services, line: LineOfManagement, owner_id: str,
              asker: str) -> list[Person]:
    """Who is asked to decide: the owner's nearest manager (not the person asking)."""
    manager = line.manager_of(owner_id)
    if manager is not None and manager.staff_id != asker:
        return [manager]
    above = [p for p in line.chain(owner_id) if p.staff_id != asker]
    return above[:1]


def _decision(action: ActionRow, line: LineOfManagement, new_due: date,
              reason: str) -> DecisionItem:
    owner = line.person(action.owner_id)
    return DecisionItem(action.id, action.case_ref, action.what,
                        owner.name if owner else action.owner_id, action.due_on, new_due, reason)


@router.card(DecideMoreTime)
async def decide_more_time(request: Request, ask: DecideMoreTime) -> Reply:
    services = request.services
    at = services.clock()
    async with unit_of_work(services, at=at, actor=request.actor) as work:
        staff, action, line = await _load(request, ask.action_id, work.session)
        if not may_decide(services, line, staff, action.owner_id):
            raise NotAllowed(Code.EXTENSION_NOT_YOURS)
        approve = ask.decision == "approve"
        decided = (action.status == "extension_requested"
                   and await stored.decide_extension(work.session, action, by=staff.staff_id,
                                                     approve=approve, note="", at=at))
        if decided:
            await work.tell(Message(
                messages.more_time_decided(staff.name, action.what, action.case_ref, approve,
                                           action.asked_due_on),
                staff_id=action.owner_id,
                dedupe_key=f"more_time:{action.id}:decided:"
                           f"{action.asked_at.isoformat() if action.asked_at else ''}"))
    confirmation = (messages.more_time_decision(action.what, action.case_ref, approve)
                    if decided else messages.more_time_no_request(action.what, action.case_ref))
    return await todo_reply(services, staff, confirmation=confirmation)


# ---------------------------------------------------------------------------- commands


@router.command("my actions", summary="the actions you own, with buttons to close them or "
                "ask for more time")
async def my_actions(request: Request) -> Reply:
    if request.staff is None:
        raise NotAllowed(Code.NOT_STAFF)
    reply = await todo_reply(request.services, request.staff)
    return Reply(messages=[reply.card] if reply.card else [])


@router.command("team actions", summary="open actions in the teams you manage (managers)")
async def team_actions(request: Request) -> Reply:
    if request.staff is None:
        raise NotAllowed(Code.NOT_STAFF)
    services = request.services
    day = today(services, services.clock())
    async with services.sessions() as session:
        world = await load_world(session, services.framework, day)
    below = {p.staff_id for p in world.line.below(request.staff.staff_id)}
    if not below and not is_manager(request.roles):
        return Reply.text(messages.TEAM_ACTIONS_NOBODY)
    items = []
    for c in world.actions:
        a = c.row
        if a.owner_id not in below:
            continue
        owner = world.line.person(a.owner_id)
        items.append(ActionItem(a.id, a.case_ref, a.what, owner.name if owner else a.owner_id,
                                a.due_on, state_of(a.status, a.due_on, day),
                                max(0, services.calendar.working_days_between(a.due_on, day)),
                                a.asked_due_on))
    items.sort(key=lambda i: (i.state != "overdue", i.due_on, i.action_id))
    mine = todo_for(world, request.staff.staff_id, services.framework, services.calendar).view
    view = TodoView(mine.name, day, escalated=tuple(items), decisions=mine.decisions,
                    others_part_bs=mine.others_part_bs,
                    heading=messages.team_actions_heading(len(items)))
    return Reply(messages=[todo_card(view)])
