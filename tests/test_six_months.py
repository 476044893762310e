"""Six simulated months of chasing (issue 9 "Done when"), January to June 2027.

Every day the daily job runs as an operator would replay it, through the real command
(``qabot jobs run daily_nudges --at 2027-01-14T09:30``) in its own services (it only
queues); the running service's sender delivers to the fake Teams. On chosen days people
click as they would: submit audits, record Part B, ask for more time, approve it, mark
actions done, record remedial plans, acknowledge an alert. The test then checks who was
told what on which working day.

The story (case C-2001, social worker Sam Worker, team managers Tia and Ted, service manager
Sue, assistant director Ade, director Dana; auditor Alex; QA lead Quinn):

* Mon 4 Jan: an audit graded Requires Improvement with a safeguarding concern and two
  actions: A1 (Sam, due Mon 18 Jan) and A2 (Tia, due Wed 20 Jan). Ted is not reachable
  in Teams. Tia acknowledges the alert at 11:00. Dana records the remedial plan on 11 Jan.
* A1 is never done on time: the ladder climbs a rung a week from 19 Jan (Sam, Tia, Sue,
  Ade, Ade) until Sam marks it done on 17 Feb; then silence about it.
* A2: Tia asks for more time on 19 Jan (to 26 Feb), Sue approves: reminded again on 24 Feb,
  overdue from 1 Mar, a rung a week; the step due on Easter Monday (29 Mar) goes on Tuesday
  30 Mar; Sue marks it done on 31 Mar.
* Part B: Sam records his on time; Tia's is chased from 19 Jan until she records it 3 Feb.
* Mon 1 Feb: case C-2002 graded Inadequate (re-audit in 3 months in this framework): nobody
  records the plan until Ade does on 15 Feb; Sam and Tia record their Part B on 8 Feb; in
  May the allocator takes its re-audit first and a Good grade takes it off Sue's weekly
  tracking list (Sam and Tia record that audit's Part B on 6 May).
* Ted never records a Part B (he cannot be reached): his are chased up his ladder all along.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from cards.followups import part_b_ids
from cards.payloads import (
    AcknowledgeAlert,
    ActionDone,
    AskMoreTime,
    DecideMoreTime,
    OpenAudit,
    RecordPlan,
    SubmitPartB,
)
from qa.framework import Framework
from qa.framework_file import bundled_framework_path, load_framework
from qabot.cli import main as cli
from store.models import (
    AllocationRun,
    Audit,
    AuditAction,
    AuditLogEntry,
    Case,
    OutboxMessage,
    PartB,
    Remedial,
    SafeguardingAlert,
    Team,
)
from tests.after_audit import (
    USERS,
    action,
    anchor,
    button,
    chat,
    click,
    dumps,
    form,
    seed_council,
    submit,
    texts_of,
)

LONDON = ZoneInfo("Europe/London")
START, END = date(2027, 1, 4), date(2027, 6, 30)
HOLIDAYS = {date(2027, 3, 26), date(2027, 3, 29), date(2027, 5, 3), date(2027, 5, 31)}


@pytest.fixture(scope="module")
def framework_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Lambeth-like framework with Inadequate re-audited after 3 months, not 8, so a
    re-audit falls inside six months."""
    text = bundled_framework_path("lambeth_like").read_text(encoding="utf-8")
    text, n = re.subn(r"(\[reaudit_months\]\ninadequate = )8", r"\g<1>3", text)
    assert n == 1
    path = tmp_path_factory.mktemp("framework") / "council.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def framework(framework_file: Path) -> Framework:
    return load_framework(framework_file)


def at(day: date, hour: int = 11, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=LONDON)


class Simulation:
    def __init__(self, service: Any, monkeypatch: pytest.MonkeyPatch, framework_file: Path):
        self.service, self.ctx, self.fc = service, service.ctx, service.connector
        monkeypatch.setenv("DATABASE_URL", service.ctx.settings.database_url)
        monkeypatch.setenv("QABOT_FRAMEWORK", str(framework_file))
        monkeypatch.setenv("QABOT_SCHEDULER", "off")

    async def job(self, name: str, when: datetime) -> None:
        """``qabot jobs run NAME --at ISO``, in its own process's services (it queues only)."""
        code = await asyncio.to_thread(cli, ["jobs", "run", name, "--at", when.isoformat()])
        assert code == 0, f"{name} at {when}"
        await self.settle()

    async def settle(self) -> None:
        """Let the service's sender deliver what was queued (by this process or the CLI)."""
        self.ctx.outbox_queued()
        for _ in range(1500):  # up to 30 s on a busy machine
            st = await self.ctx.outbox.status()
            if st.pending == 0 and st.sending == 0:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the outbox did not drain")

    def on(self, day: date, hour: int = 11) -> None:
        self.service.clock.set(at(day, hour))

    async def click(self, verb: str, data: dict[str, Any], who: str) -> dict[str, Any]:
        card = await click(self.service, verb, data, who)
        await self.settle()
        return card

    async def action_id(self, owner: str, audit_id: int) -> int:
        async with self.ctx.sessions() as s:
            return int(await s.scalar(select(AuditAction.id).where(
                AuditAction.owner_id == owner, AuditAction.audit_id == audit_id)))


async def _second_case(ctx: Any) -> int:
    """Case C-2002 (Sam's too) with an audit allocated to Alex for February."""
    async with ctx.sessions.begin() as s:
        team = await s.scalar(select(Team).where(Team.name == "Assessment 1"))
        s.add(Case(case_ref="C-2002", team_id=team.id, social_worker_id="SW1",
                   area="early_help", opened_on=date(2025, 6, 2), status="open", tags=[]))
        run = AllocationRun(key="test:feb", kind="monthly", month="2027-02", seed=2,
                            created_by="test", deadline=date(2027, 2, 22), summary={},
                            created_at=at(date(2027, 2, 1), 9))
        s.add(run)
        await s.flush()
        audit = Audit(run_id=run.id, case_ref="C-2002", auditor_id="AUD1", team_id=team.id,
                      area="early_help", tool="case_audit", month="2027-02", reason="random",
                      status="allocated", deadline=date(2027, 2, 22),
                      look_back_from=date(2026, 8, 1), look_back_to=date(2027, 2, 1),
                      allocated_at=at(date(2027, 2, 1), 9))
        s.add(audit)
        await s.flush()
        return int(audit.id)


def _todo_day(card: dict[str, Any]) -> str | None:
    """The day in a job's to-do heading ("Your QA to-do list, 14 Jan 2027")."""
    first = card["body"][0].get("text", "")
    m = re.match(r"Your QA to-do list, (.+)$", first)
    return m.group(1) if m else None


async def test_six_months_of_chasing(service, monkeypatch, framework_file) -> None:
    sim = Simulation(service, monkeypatch, framework_file)
    ctx, fc = sim.ctx, sim.fc
    sim.on(START, 10)
    audit1 = await seed_council(ctx, fc, unlinked=frozenset({"TM2"}))
    await anchor(service)
    a1_due, a2_due = date(2027, 1, 18), date(2027, 1, 20)
    await submit(service, audit1, form(ctx, "requires_improvement", safeguarding="true",
                                       safeguarding_details="Bruising seen on the last visit.")
                 | action(1, a1_due, "SW1", "Update the chronology")
                 | action(2, a2_due, "TM1", "Hold a strategy discussion"))
    await sim.settle()
    a1, a2 = await sim.action_id("SW1", audit1), await sim.action_id("TM1", audit1)
    audit2 = await _second_case(ctx)
    ids1 = part_b_ids(audit1)

    # ---- every day, January to June: the scheduled jobs, and what people do
    events: dict[date, list[Any]] = defaultdict(list)

    async def acknowledge() -> None:
        [alert] = [c for c in fc.cards(chat("TM1")) if "Serious safeguarding" in dumps(c)]
        ack = button(alert, AcknowledgeAlert.verb)
        await sim.click(ack["verb"], ack["data"], "TM1")

    async def sam_part_b() -> None:
        await sim.click(SubmitPartB.verb, SubmitPartB(audit1).pack()
                        | {ids1["agrees"]: "yes", ids1["reflections"]: "Fair."}, "SW1")

    async def dana_plan() -> None:
        async with ctx.sessions() as s:
            rid = await s.scalar(select(Remedial.id).where(Remedial.audit_id == audit1))
        await sim.click(RecordPlan.verb, RecordPlan(rid).pack()
                        | {f"plan.{rid}": "Weekly case review."}, "DIR")

    async def tia_more_time() -> None:
        await sim.click(AskMoreTime.verb, AskMoreTime(a2).pack()
                        | {f"due.{a2}": "2027-02-26", f"reason.{a2}": "Police unavailable."},
                        "TM1")

    async def sue_approves() -> None:
        await sim.click(DecideMoreTime.verb, DecideMoreTime(a2, "approve").pack(), "SM1")

    async def tia_part_b() -> None:
        await sim.click(SubmitPartB.verb, SubmitPartB(audit1, "todo").pack()
                        | {ids1["agrees"]: "yes"}, "TM1")

    async def audit_c2002() -> None:
        await submit(service, audit2, form(ctx, "inadequate")
                     | action(1, date(2027, 2, 26), "SW1", "Write a contingency plan"))
        await sim.settle()

    async def ade_plan() -> None:
        async with ctx.sessions() as s:
            rid = await s.scalar(select(Remedial.id).where(Remedial.audit_id == audit2))
        await sim.click(RecordPlan.verb, RecordPlan(rid, "todo").pack()
                        | {f"plan.{rid}": "Legal planning meeting."}, "AD1")

    async def part_bs_for(audit_id: int, *who: str) -> None:
        ids = part_b_ids(audit_id)
        for staff_id in who:
            await sim.click(SubmitPartB.verb, SubmitPartB(audit_id).pack()
                            | {ids["agrees"]: "yes"}, staff_id)

    async def c2002_part_bs() -> None:
        await part_bs_for(audit2, "SW1", "TM1")

    async def reaudit_part_b() -> None:
        async with ctx.sessions() as s:
            again = await s.scalar(select(Audit.id).where(Audit.case_ref == "C-2002",
                                                          Audit.month == "2027-05"))
        await part_bs_for(int(again), "SW1", "TM1")

    async def sam_done_a1() -> None:
        await sim.click(ActionDone.verb, ActionDone(a1).pack()
                        | {f"note.{a1}": "Done at last."}, "SW1")

    async def sam_done_c2002() -> None:
        a = await sim.action_id("SW1", audit2)
        await sim.click(ActionDone.verb, ActionDone(a).pack(), "SW1")

    async def sue_done_a2() -> None:
        await sim.click(ActionDone.verb, ActionDone(a2).pack(), "SM1")

    async def reaudit_in_may() -> None:
        await sim.job("allocation", at(date(2027, 5, 4), 9))
        async with ctx.sessions() as s:
            again = await s.scalar(select(Audit).where(Audit.case_ref == "C-2002",
                                                       Audit.month == "2027-05"))
        assert again is not None and again.reason == "reaudit", "re-audits are taken first"
        who = next(sid for sid, u in USERS.items() if sid == again.auditor_id)
        await sim.click(OpenAudit.verb, OpenAudit(again.id).pack(), who)
        from cards.payloads import SubmitAudit

        await sim.click(SubmitAudit.verb, SubmitAudit(again.id).pack() | form(ctx, "good"), who)

    events[START] += [acknowledge]
    events[date(2027, 1, 6)] += [sam_part_b]
    events[date(2027, 1, 11)] += [dana_plan]
    events[date(2027, 1, 19)] += [tia_more_time, sue_approves]
    events[date(2027, 2, 1)] += [audit_c2002]
    events[date(2027, 2, 3)] += [tia_part_b]
    events[date(2027, 2, 8)] += [c2002_part_bs]
    events[date(2027, 2, 15)] += [ade_plan]
    events[date(2027, 2, 17)] += [sam_done_a1]
    events[date(2027, 2, 22)] += [sam_done_c2002]
    events[date(2027, 3, 31)] += [sue_done_a2]
    events[date(2027, 5, 4)] += [reaudit_in_may]
    events[date(2027, 5, 6)] += [reaudit_part_b]

    day = START
    while day <= END:
        await sim.job("daily_nudges", at(day, 9, 30))  # before anyone acts that day
        sim.on(day)
        for event in events.get(day, []):
            await event()
        if day == START:
            await sim.job("safeguarding_escalation", at(day, 14, 30))  # acknowledged: stays
        day += timedelta(days=1)

    # ---- what was queued, by whom and when
    async with ctx.sessions() as s:
        rows = list(await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        steps = [(e.entity, e.entity_id, e.at.astimezone(LONDON).date(), e.after)
                 for e in await s.scalars(select(AuditLogEntry).where(
                     AuditLogEntry.action.like("%.escalated")).order_by(AuditLogEntry.id))]
        reminders = [(e.entity, e.entity_id, e.at.astimezone(LONDON).date())
                     for e in await s.scalars(select(AuditLogEntry).where(
                         AuditLogEntry.action.like("%.reminded")).order_by(AuditLogEntry.id))]
        alert = await s.scalar(select(SafeguardingAlert))
        tracked = {r.audit_id: r.closed_at for r in await s.scalars(select(Remedial))}
    nudged: dict[str, set[date]] = defaultdict(set)
    for r in rows:
        if r.dedupe_key and r.dedupe_key.startswith("nudge:"):
            _, staff_id, iso = r.dedupe_key.split(":", 2)
            nudged[staff_id].add(date.fromisoformat(iso))

    def ladder(action_id: int) -> list[tuple[date, int, list[str]]]:
        return [(d, after["step"], after["told"]) for entity, eid, d, after in steps
                if entity == "audit_action" and eid == str(action_id)]

    # A1 climbs a rung a week (Sam, Tia, Sue, Ade, then Ade again) and stops when done.
    assert ladder(a1) == [
        (date(2027, 1, 19), 0, ["SW1"]), (date(2027, 1, 26), 1, ["SW1", "TM1"]),
        (date(2027, 2, 2), 2, ["SM1", "SW1"]), (date(2027, 2, 9), 3, ["AD1", "SW1"]),
        (date(2027, 2, 16), 4, ["AD1", "SW1"])]
    assert ("audit_action", str(a1), date(2027, 1, 14)) in reminders  # 2 working days before
    # A2: reminded, given more time, reminded again before its new date, then a rung a week
    # from 1 March; the step due on Easter Monday waits for Tuesday; done on 31 March.
    assert ("audit_action", str(a2), date(2027, 1, 18)) in reminders
    assert ("audit_action", str(a2), date(2027, 2, 24)) in reminders
    assert [(d, k) for d, k, _ in ladder(a2)] == [
        (date(2027, 3, 1), 0), (date(2027, 3, 8), 1), (date(2027, 3, 15), 2),
        (date(2027, 3, 22), 3), (date(2027, 3, 30), 4)]
    # Nothing is chased on a bank holiday or at a weekend.
    all_days = {d for days in nudged.values() for d in days}
    assert not all_days & HOLIDAYS
    assert all(d.weekday() < 5 for d in all_days)
    # The people on each step were messaged that day (one card listing all their items).
    for _, _, d, after in steps:
        for staff_id in (after or {}).get("told", []):
            assert d in nudged[staff_id], (staff_id, d)
    # What they read says it: Tia's card the day A1 reached her, Ade's at the top.
    cards_of = {(who, _todo_day(c)): texts_of(c) for who in USERS for c in fc.cards(chat(who))
                if _todo_day(c)}
    tia_26 = cards_of[("TM1", "26 Jan 2027")]
    assert "Overdue actions escalated to you" in tia_26 and "Sam Worker's action" in tia_26
    assert "Update the chronology" in tia_26 and "6 working days overdue" in tia_26
    assert "Sam Worker's action" in cards_of[("AD1", "9 Feb 2027")]
    assert "Hold a strategy discussion" in cards_of[("AD1", "30 Mar 2027")]
    # Sam: nothing after A1 and C-2002's action were done and his Part B recorded.
    assert max(nudged["SW1"]) < date(2027, 2, 22)
    # Tia's Part B was chased (overdue from 19 Jan) until she recorded it on 3 February.
    async with ctx.sessions() as s:
        tias = await s.scalar(select(PartB.id).where(PartB.audit_id == audit1,
                                                     PartB.staff_id == "TM1"))
        teds = await s.scalar(select(PartB.id).where(PartB.audit_id == audit1,
                                                     PartB.staff_id == "TM2"))
    tia = [(d, after["step"]) for entity, eid, d, after in steps
           if entity == "part_b" and eid == str(tias)]
    assert tia == [(date(2027, 1, 19), 0), (date(2027, 1, 26), 1), (date(2027, 2, 2), 2)]
    ted = [d for entity, eid, d, _ in steps if entity == "part_b" and eid == str(teds)]
    assert ted[0] == date(2027, 1, 19) and max(ted) > date(2027, 6, 20)  # never lets go
    # Remedial plans: the first was recorded before its reminder; the second was reminded
    # (4 Feb), chased when overdue (9 Feb) and stopped once Ade recorded it (15 Feb).
    remedial_reminders = [d for e, _, d in reminders if e == "remedial"]
    assert remedial_reminders == [date(2027, 2, 4)]
    assert date(2027, 2, 9) in nudged["DIR"] and date(2027, 2, 9) in nudged["AD1"]
    # The alert was acknowledged at 11:00 on the first day: it never climbed.
    assert alert.acknowledged_by == "TM1"
    assert not [r for r in rows if r.dedupe_key and ":escalated:" in r.dedupe_key]
    # Ted is not reachable in Teams: the auditor and the QA lead were told at once.
    for who in ("AUD1", "QA1"):
        assert any("could not be delivered to Ted Manager" in t for t in fc.texts(chat(who)))
    # C-2002 left the tracking list when its May re-audit graded it Good; C-2001 did not.
    assert tracked[audit1] is None and tracked[audit2] is not None
    sue_lists = {_todo_day(c): texts_of(c).partition("Cases tracked to Good")[2]
                 for c in fc.cards(chat("SM1")) if _todo_day(c)}
    assert "C-2002" in sue_lists["12 Apr 2027"] and "C-2001" in sue_lists["12 Apr 2027"]
    assert "C-2002" not in sue_lists["7 Jun 2027"] and "C-2001" in sue_lists["7 Jun 2027"]
    # Every Monday (or the week's first working day) Sue had her tracking list.
    assert date(2027, 3, 30) in nudged["SM1"] and date(2027, 5, 4) in nudged["SM1"]

    # ---- nobody got more than one nudge message a day
    per_day = Counter((d.conversation_id, _todo_day(d.activity["attachments"][0]["content"]))
                      for d in fc.deliveries if d.activity.get("attachments")
                      and _todo_day(d.activity["attachments"][0]["content"]))
    assert per_day and max(per_day.values()) == 1

    # ---- a replayed day sends nothing twice
    before = len(rows)
    for replay in (date(2027, 1, 26), date(2027, 2, 16), date(2027, 3, 30)):
        await sim.job("daily_nudges", at(replay, 9, 30))
    async with ctx.sessions() as s:
        after = list(await s.scalars(select(OutboxMessage)))
        steps_after = [e for e in await s.scalars(select(AuditLogEntry).where(
            AuditLogEntry.action.like("%.escalated")))]
    assert len(after) == before and len(steps_after) == len(steps)
