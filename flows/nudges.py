"""The daily chase (SPEC R8, Bedford 5.1-5.2, Lambeth tracking): everything owed, chased
politely and relentlessly, in ONE message a person a day.

What is chased (qa/chase.py has the rules): audit actions (a reminder before the due date,
the owner nudged when overdue, then a rung of the framework's escalation ladder each
``step_days``: team manager, service manager, assistant director), Part B responses past
their time (the same ladder above the person who owes it), remedial plans (reminded and
chased, to the people asked for them), and on the first working day of each week, the cases
each service manager tracks to Good.

A person with anything new today gets one card listing all of their items (cards/followups
``todo_card``), never one message per item, and never more than one a day: the message's
dedupe key is the person and the day. What each item's chase reached is stored only once its
messages are queued, so a replayed day tells nobody twice and a missed day is caught up. The
job runs on working days only, and decides everything as of its ``at``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.router import Request, Router
from bot.turn import Reply
from cards.followups import (
    ActionItem,
    DecisionItem,
    PartBItem,
    PlanItem,
    TodoView,
    TrackedItem,
    todo_card,
)
from cards.payloads import ShowMyActions
from flows.base import today, unit_of_work
from qa.calendar import WorkingCalendar
from qa.chase import chase_today, climbing_ladder, state_of, told_at_step
from qa.errors import Code, NotAllowed
from qa.framework import Framework
from qa.people import LineOfManagement, Person
from qa.periods import add_months
from scheduler.jobs import Job
from store import actions as stored_actions
from store import followups as stored_followups
from store.directory import people
from store.models import AuditAction, PartB, Remedial, Staff
from store.outbox import Message

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()

PART_B_RELATIONS = {"social_worker": "social worker", "team_manager": "team manager",
                    "manager": "line manager"}


# ---------------------------------------------------------------------------- the world


@dataclass
class Chased:
    """One owed item as of a day: who is on its ladder, the step it has reached (stored, or
    reached today), and who is told today."""

    kind: str  # action | part_b | remedial
    row: Any
    ladder: list[Person]
    step: int
    tell: set[str] = field(default_factory=set)
    update: dict[str, Any] = field(default_factory=dict)

    def reached(self) -> list[Person]:
        """Everyone the chase has told so far (the rungs up to its step)."""
        if self.step < 0:
            return []
        return self.ladder[: min(self.step, len(self.ladder) - 1) + 1]


@dataclass
class World:
    """Everything owed, with the line of management, as of one day."""

    day: date
    line: LineOfManagement
    actions: list[Chased]
    part_bs: list[Chased]
    plans: list[Chased]
    tracked: list[stored_followups.Tracked]
    tracker: dict[int, str]  # remedial id -> the service manager who tracks the case


def _ladder(line: LineOfManagement, framework: Framework, owner_id: str) -> list[Person]:
    return climbing_ladder(line.ladder(owner_id, framework.escalation.ladder))


def _tracker(line: LineOfManagement, case_team_id: int, social_worker_id: str | None
             ) -> str | None:
    """The service manager who tracks a case: the nearest above its managers."""
    for manager in line.case_managers(case_team_id, social_worker_id):
        for person in [manager, *line.chain(manager.staff_id)]:
            if person.has("service_manager"):
                return person.staff_id
    return None


async def load_world(session: AsyncSession, framework: Framework, day: date) -> World:
    line = LineOfManagement(await people(session))
    actions = [Chased("action", a, _ladder(line, framework, a.owner_id), a.step)
               for a in await stored_actions.open_actions(session)]
    part_bs = [Chased("part_b", p, _ladder(line, framework, p.staff_id), p.step)
               for p in await stored_followups.owed_part_bs(session)]
    tracked = await stored_followups.tracked_cases(session)
    plans = [Chased("remedial", t,
                    [p for s in t.recipients if (p := line.person(s)) is not None], t.step)
             for t in tracked if not t.planned]
    tracker = {t.id: sid for t in tracked
               if (sid := _tracker(line, t.case_team_id, t.social_worker_id)) is not None}
    return World(day, line, actions, part_bs, plans, tracked, tracker)


def _chase(item: Chased, calendar: WorkingCalendar, day: date, framework: Framework, *,
           due_on: date, reminded: bool, remind_before: int) -> None:
    """Work out today's reminder and steps for one item (in memory: stored later)."""
    esc = framework.escalation
    chase = chase_today(calendar, due_on=due_on, today=day, remind_before=remind_before,
                        reminded=reminded, step=item.step, step_days=esc.step_days)
    owner = item.ladder[0] if item.ladder else None
    if chase.remind and owner is not None:
        item.tell.add(owner.staff_id)
        item.update["reminded_on"] = day
    if chase.latest is not None:
        item.step = chase.latest
        told = told_at_step(item.ladder, item.step)
        for person in (owner, told):
            if person is not None:
                item.tell.add(person.staff_id)
        item.update |= {"step": item.step, "stepped_on": day}


def chase_all(world: World, calendar: WorkingCalendar, framework: Framework) -> None:
    """Today's reminders and steps for everything owed."""
    remind = framework.escalation.action_reminder_working_days
    for a in world.actions:
        if a.row.status == "extension_requested":
            continue  # in the manager's hands (they were told at once); chased again after
        _chase(a, calendar, world.day, framework, due_on=a.row.due_on,
               reminded=a.row.reminded_on is not None, remind_before=remind)
    for p in world.part_bs:
        _chase(p, calendar, world.day, framework, due_on=p.row.due_on, reminded=True,
               remind_before=0)
    for plan in world.plans:
        # Everyone asked for the plan is reminded and chased together (no ladder above).
        for person in plan.ladder:
            sub = Chased(plan.kind, plan.row, [person], plan.step)
            _chase(sub, calendar, world.day, framework, due_on=plan.row.due_on,
                   reminded=plan.row.reminded_on is not None, remind_before=remind)
            plan.tell |= sub.tell
            plan.update |= sub.update
        plan.step = plan.update.get("step", plan.step)


def is_tracking_day(calendar: WorkingCalendar, day: date) -> bool:
    """The first working day of the week: when the tracking-to-Good lists go out."""
    monday = day - timedelta(days=day.weekday())
    return calendar.next_working_day(monday) == day


# ---------------------------------------------------------------------------- one person's list


@dataclass(frozen=True)
class Todo:
    """One person's list, and which chased items it shows (kind, id)."""

    view: TodoView
    shows: frozenset[tuple[str, int]]


def todo_for(world: World, staff_id: str, framework: Framework, calendar: WorkingCalendar,
             *, confirmation: str | None = None) -> Todo:
    """Everything waiting on one person, as the world stands (including today's steps)."""
    line, day = world.line, world.day
    name = (line.person(staff_id) or Person(staff_id, staff_id)).name
    shows: set[tuple[str, int]] = set()

    def item(c: Chased) -> ActionItem:
        a = c.row
        state = state_of(a.status, a.due_on, day)
        owner = line.person(a.owner_id)
        overdue = max(0, calendar.working_days_between(a.due_on, day))
        return ActionItem(a.id, a.case_ref, a.what, owner.name if owner else a.owner_id,
                          a.due_on, state, overdue, a.asked_due_on)

    own = [c for c in world.actions if c.row.owner_id == staff_id]
    escalated = [c for c in world.actions if c.row.owner_id != staff_id
                 and staff_id in {p.staff_id for p in c.reached()}]
    shows |= {("action", c.row.id) for c in [*own, *escalated]}
    decisions = []
    for c in world.actions:
        a = c.row
        manager = line.manager_of(a.owner_id)
        if (a.status == "extension_requested" and manager is not None
                and manager.staff_id == staff_id and a.asked_due_on is not None):
            owner = line.person(a.owner_id)
            decisions.append(DecisionItem(a.id, a.case_ref, a.what,
                                          owner.name if owner else a.owner_id, a.due_on,
                                          a.asked_due_on, a.asked_reason or ""))
    def part_b(c: Chased, owner: str | None = None) -> PartBItem:
        shows.add(("part_b", c.row.id))
        return PartBItem(c.row.audit_id, c.row.case_ref,
                         PART_B_RELATIONS.get(c.row.relation, c.row.relation), c.row.due_on,
                         day > c.row.due_on, owner,
                         max(0, calendar.working_days_between(c.row.due_on, day)))

    part_bs = [part_b(c) for c in world.part_bs if c.row.staff_id == staff_id]
    others_part_bs = [part_b(c, (line.person(c.row.staff_id) or Person("", c.row.staff_id)).name)
                      for c in world.part_bs if c.row.staff_id != staff_id
                      and staff_id in {p.staff_id for p in c.reached()}]
    plans = [PlanItem(c.row.id, c.row.case_ref, framework.grade_label(c.row.grade), c.row.due_on,
                      day > c.row.due_on)
             for c in world.plans if staff_id in {p.staff_id for p in c.ladder}]
    shows |= {("remedial", p.remedial_id) for p in plans}
    tracked = []
    for t in world.tracked:
        if world.tracker.get(t.id) != staff_id:
            continue
        months = framework.reaudit_months.get(t.grade)
        since = t.created_at.astimezone(framework.zone).date()
        tracked.append(TrackedItem(t.case_ref, framework.grade_label(t.grade), since, t.planned,
                                   add_months(since, months) if months else None))
    view = TodoView(name, day, tuple(item(c) for c in own), tuple(item(c) for c in escalated),
                    tuple(decisions), tuple(part_bs), tuple(others_part_bs), tuple(plans),
                    tuple(tracked), confirmation)
    return Todo(view, frozenset(shows))


async def todo_reply(services: Services, staff: Staff, *, confirmation: str | None = None
                     ) -> Reply:
    """The person's to-do list as it stands now (the card a button replaces itself with)."""
    day = today(services, services.clock())
    async with services.sessions() as session:
        world = await load_world(session, services.framework, day)
    todo = todo_for(world, staff.staff_id, services.framework, services.calendar,
                    confirmation=confirmation)
    return Reply(card=todo_card(todo.view))


@router.card(ShowMyActions)
async def show_my_actions(request: Request, ask: ShowMyActions) -> Reply:
    if request.staff is None:
        raise NotAllowed(Code.NOT_STAFF)
    return await todo_reply(request.services, request.staff)


# ---------------------------------------------------------------------------- the job


_MODELS = {"action": AuditAction, "part_b": PartB, "remedial": Remedial}


async def daily_nudges(services: Services, at: datetime) -> str:
    """Today's reminders, nudges, escalation steps and tracking lists: one card a person."""
    fw, cal = services.framework, services.calendar
    day = today(services, at)
    if not cal.is_working_day(day):
        return f"{day.isoformat()} is not a working day: no nudges"
    async with unit_of_work(services, at=at, actor="job:daily_nudges") as work:
        world = await load_world(work.session, fw, day)
        chase_all(world, cal, fw)
        items = [*world.actions, *world.part_bs, *world.plans]
        told: dict[str, list[Chased]] = defaultdict(list)
        for c in items:
            for staff_id in c.tell:
                told[staff_id].append(c)
        trackers = set(world.tracker.values()) if is_tracking_day(cal, day) else set()
        shown: dict[str, frozenset[tuple[str, int]]] = {}
        already: set[str] = set()
        for staff_id in sorted(set(told) | trackers):
            todo = todo_for(world, staff_id, fw, cal)
            if todo.view.empty:
                continue
            if await work.tell(Message(todo_card(todo.view), staff_id=staff_id,
                                       dedupe_key=f"nudge:{staff_id}:{day.isoformat()}")):
                shown[staff_id] = todo.shows
            else:
                already.add(staff_id)  # told today already: these items wait for tomorrow
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for c in items:
            # Recorded only when everyone it tells has it on today's card: otherwise it is
            # chased again tomorrow, never marked as told when it was not.
            if c.update and c.tell and all((c.kind, c.row.id) in shown.get(s, ())
                                           for s in c.tell):
                by_kind[c.kind].append({"id": c.row.id, **c.update, "told": sorted(c.tell)})
            elif c.update and not (c.tell & already):
                log.error("a chased item is missing from a card it should be on",
                          extra={"kind": c.kind, "id": c.row.id})
        for kind, rows in by_kind.items():
            await stored_actions.save_chase(work.session, _MODELS[kind], rows, actor=work.actor,
                                            at=at, entity="audit_action" if kind == "action"
                                            else kind)
    steps = sum(1 for rows in by_kind.values() for r in rows if "step" in r)
    reminders = sum(1 for rows in by_kind.values() for r in rows if "step" not in r)
    summary = (f"{day.isoformat()}: {len(shown)} to-do message(s); {reminders} reminder(s), "
               f"{steps} escalation step(s) recorded")
    if already:
        summary += f"; {len(already)} person(s) already told today (their new items wait)"
    return summary


jobs = (Job("daily_nudges", "action reminders, nudges, the escalation ladder, Part B and "
            "remedial chasing, weekly tracking lists (one message a person a day)",
            daily_nudges, lambda s: s.daily_time),)
