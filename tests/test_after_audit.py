"""After the audit (issue 9, SPEC R6-R9), through the running service and the fake Teams:
findings and Part B, actions done and given more time, the to-do lists, safeguarding alerts
acknowledged, escalated and checked for delivery, remedial plans and tracking to Good."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from cards.followups import part_b_ids
from cards.payloads import (
    AcknowledgeAlert,
    ActionDone,
    AskMoreTime,
    DecideMoreTime,
    RecordPlan,
    ShowMyActions,
    SubmitPartB,
)
from qa import form_rules as fr
from scheduler.jobs import run_job
from store.models import (
    AlertRecipient,
    AuditAction,
    AuditLogEntry,
    OutboxMessage,
    PartB,
    Remedial,
    SafeguardingAlert,
    Staff,
)
from tests.after_audit import (
    CASE,
    USERS,
    action,
    anchor,
    button,
    chat,
    click,
    count,
    dumps,
    form,
    say,
    seed_council,
    submit,
    texts_of,
)

LONDON = ZoneInfo("Europe/London")


def today(ctx) -> date:
    return ctx.clock().astimezone(ctx.framework.zone).date()


async def _cards_to(fc, who: str, words: str, n: int = 1) -> list[dict]:
    await fc.wait_for(lambda f: sum(words in dumps(c) for c in f.cards(chat(who))) >= n,
                      timeout=10)
    return [c for c in fc.cards(chat(who)) if words in dumps(c)]


# ---------------------------------------------------------------------------- findings, Part B


async def test_submit_sends_the_findings_with_part_b_and_copies_the_qa_team(service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    await anchor(service)
    due = today(ctx) + timedelta(days=20)
    await submit(service, audit_id, form(ctx, "requires_improvement") | action(1, due))

    thanks = fc.texts(chat("AUD1"))[-1]
    assert "queued the findings for Sam Worker, Tia Manager and Ted Manager" in thanks
    assert "sent" not in thanks.lower()
    for who in ("SW1", "TM1", "TM2"):
        [findings] = await _cards_to(fc, who, "Audit findings")
        text = texts_of(findings)
        assert CASE in text and "Chronology out of date." in text and "Update the chronology" in text
        assert button(findings, SubmitPartB.verb, audit_id=audit_id)
    [copy] = await _cards_to(fc, "QA1", "Audit findings")
    assert "Copy for the QA team" in texts_of(copy) and not [
        b for b in copy.get("actions", []) if b.get("verb") == SubmitPartB.verb]
    async with ctx.sessions() as s:
        asked = {(p.staff_id, p.relation) for p in await s.scalars(select(PartB))}
    assert asked == {("SW1", "social_worker"), ("TM1", "team_manager"), ("TM2", "team_manager")}


async def test_part_b_is_checked_recorded_once_and_the_auditor_is_told(service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    await anchor(service)
    await submit(service, audit_id, form(ctx))
    ids = part_b_ids(audit_id)

    # Disagreeing without a reason: the card comes back with the entries and the error.
    card = await click(service, SubmitPartB.verb, SubmitPartB(audit_id).pack()
                       | {ids["agrees"]: "no", ids["reflections"]: "Fair, mostly."}, "SW1")
    assert "Please say why you disagree." in texts_of(card)
    assert "Fair, mostly." in dumps(card)
    assert await count(ctx, PartB, PartB.status == "submitted") == 0

    # Someone else cannot record the social worker's Part B.
    card = await click(service, SubmitPartB.verb, SubmitPartB(audit_id).pack()
                       | {ids["agrees"]: "yes"}, "AD1")
    assert "no Part B waiting from you" in texts_of(card)

    later = (today(ctx) + timedelta(days=3)).isoformat()
    card = await click(service, SubmitPartB.verb, SubmitPartB(audit_id).pack()
                       | {ids["agrees"]: "yes", ids["discussed_on"]: later}, "SW1")
    assert "cannot be in the future" in texts_of(card)

    done = {ids["agrees"]: "no", ids["reason"]: "The chronology was updated last week.",
            ids["reflections"]: "Useful.", ids["discussed_on"]: today(ctx).isoformat()}
    card = await click(service, SubmitPartB.verb, SubmitPartB(audit_id).pack() | done, "SW1")
    assert "You disagreed with the findings: The chronology was updated last week." in (
        texts_of(card))
    again = await click(service, SubmitPartB.verb, SubmitPartB(audit_id).pack()
                        | {ids["agrees"]: "yes"}, "SW1")
    assert "You disagreed" in texts_of(again)  # recorded once; the second press changes nothing
    async with ctx.sessions() as s:
        row = await s.scalar(select(PartB).where(PartB.staff_id == "SW1"))
        logged = list(await s.scalars(select(AuditLogEntry.action).where(
            AuditLogEntry.action == "part_b.submitted")))
    assert (row.status, row.agrees, row.discussed_on) == ("submitted", False, today(ctx))
    assert logged == ["part_b.submitted"]
    await fc.wait_for(lambda f: any("Part B is in from Sam Worker" in t
                                    for t in f.texts(chat("AUD1"))), timeout=10)


# ---------------------------------------------------------------------------- actions


async def _with_action(service, due: date | None = None, owner: str = "SW1") -> tuple[int, int]:
    ctx = service.ctx
    audit_id = await seed_council(ctx, service.connector)
    await anchor(service)
    await submit(service, audit_id, form(ctx, "requires_improvement")
                 | action(1, due or today(ctx) + timedelta(days=20), owner))
    async with ctx.sessions() as s:
        action_id = await s.scalar(select(AuditAction.id))
    return audit_id, action_id


async def test_an_action_is_closed_once_by_someone_entitled(service) -> None:
    ctx = service.ctx
    _, action_id = await _with_action(service)

    card = await click(service, ActionDone.verb, ActionDone(action_id).pack(), "AUD1")
    assert "Only the action's owner, their line of management or the QA team" in texts_of(card)
    assert await count(ctx, AuditAction, AuditAction.status == "done") == 0

    card = await click(service, ActionDone.verb, ActionDone(action_id).pack()
                       | {f"note.{action_id}": "Chronology updated on 3 December."}, "SW1")
    assert "Done: Update the chronology (case C-2001). Recorded." in texts_of(card)
    card = await click(service, ActionDone.verb, ActionDone(action_id).pack(), "TM1")
    assert "is already done (by Sam Worker). Nothing was changed." in texts_of(card)
    async with ctx.sessions() as s:
        a = await s.get(AuditAction, action_id)
        log = list(await s.scalars(select(AuditLogEntry).where(
            AuditLogEntry.entity == "audit_action", AuditLogEntry.action == "action.done")))
    assert (a.status, a.done_by, a.done_note) == ("done", "SW1", "Chronology updated on 3 December.")
    assert len(log) == 1 and log[0].actor == "SW1"


@pytest.mark.parametrize("who", ["TM1", "SM1", "QA1"])
async def test_the_owners_line_or_the_qa_team_may_close_it(service, who: str) -> None:
    _, action_id = await _with_action(service)
    card = await click(service, ActionDone.verb, ActionDone(action_id).pack(), who)
    assert "Done:" in texts_of(card)


async def test_more_time_is_asked_decided_by_the_manager_and_moves_the_date(service) -> None:
    ctx, fc = service.ctx, service.connector
    due = today(ctx) + timedelta(days=10)
    _, action_id = await _with_action(service, due)
    new_due = due + timedelta(days=14)

    # A date before the current one, or no reason, is refused and changes nothing.
    for bad in ({f"due.{action_id}": (due - timedelta(days=1)).isoformat(),
                 f"reason.{action_id}": "x"},
                {f"due.{action_id}": new_due.isoformat()}):
        card = await click(service, AskMoreTime.verb, AskMoreTime(action_id).pack() | bad, "SW1")
        assert "Nothing was changed." in texts_of(card)
    card = await click(service, AskMoreTime.verb, AskMoreTime(action_id).pack()
                       | {f"due.{action_id}": new_due.isoformat(),
                          f"reason.{action_id}": "Waiting for the school's report."}, "SW1")
    assert "Asked for more time" in texts_of(card)

    [request] = await _cards_to(fc, "TM1", "asks for more time")
    assert "Waiting for the school's report." in texts_of(request)
    approve = button(request, DecideMoreTime.verb, action_id=action_id, decision="approve")
    # The owner cannot approve their own request; a colleague outside the line cannot either.
    for who in ("SW1", "AUD1"):
        card = await click(service, approve["verb"], approve["data"], who)
        assert "Nothing was changed." in texts_of(card)
    card = await click(service, approve["verb"], approve["data"], "TM1")
    assert "Approved" in texts_of(card)
    again = await click(service, approve["verb"], approve["data"], "SM1")
    assert "no request for more time waiting" in texts_of(again)
    async with ctx.sessions() as s:
        a = await s.get(AuditAction, action_id)
    assert (a.status, a.due_on, a.first_due_on, a.decided_by) == ("extended", new_due, due, "TM1")
    await fc.wait_for(lambda f: any("gave you more time" in t for t in f.texts(chat("SW1"))),
                      timeout=10)


async def test_a_refused_extension_keeps_the_date(service) -> None:
    ctx, fc = service.ctx, service.connector
    due = today(ctx) + timedelta(days=10)
    _, action_id = await _with_action(service, due)
    await click(service, AskMoreTime.verb, AskMoreTime(action_id).pack()
                | {f"due.{action_id}": (due + timedelta(days=5)).isoformat(),
                   f"reason.{action_id}": "Busy."}, "SW1")
    [request] = await _cards_to(fc, "TM1", "asks for more time")
    refuse = button(request, DecideMoreTime.verb, action_id=action_id, decision="refuse")
    await click(service, refuse["verb"], refuse["data"], "TM1")
    async with ctx.sessions() as s:
        a = await s.get(AuditAction, action_id)
    assert (a.status, a.due_on) == ("open", due)
    await fc.wait_for(lambda f: any("did not give more time" in t for t in f.texts(chat("SW1"))),
                      timeout=10)


async def test_my_actions_and_team_actions(service) -> None:
    fc = service.connector
    _, action_id = await _with_action(service)
    await say(service, "my actions", "SW1")
    [mine] = await _cards_to(fc, "SW1", "Your QA to-do list")
    assert "Update the chronology" in texts_of(mine)
    assert button(mine, ActionDone.verb, action_id=action_id)
    assert button(mine, ShowMyActions.verb)

    await say(service, "team actions", "SM1")
    [team] = await _cards_to(fc, "SM1", "Open actions in the teams you manage")
    assert "Sam Worker's action" in texts_of(team)
    await say(service, "team actions", "SW1")
    await fc.wait_for(lambda f: any("Nobody reports to you" in t for t in f.texts(chat("SW1"))),
                      timeout=10)


# ---------------------------------------------------------------------------- safeguarding


def concern(ctx) -> dict[str, str]:
    # A Good grade with a serious concern is a plausible mistake: the auditor confirms it.
    return form(ctx, safeguarding="true", safeguarding_details="Bruising seen on the last visit.",
                **{fr.CONFIRM: "true"})


async def test_an_alert_is_acknowledged_once_and_the_auditor_told(service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    await anchor(service)
    await submit(service, audit_id, concern(ctx))
    assert "queued the safeguarding alert for Sue Service, Tia Manager and Ted Manager" in (
        fc.texts(chat("AUD1"))[-1])
    [alert] = await _cards_to(fc, "TM1", "Serious safeguarding concern")
    ack = button(alert, AcknowledgeAlert.verb)

    card = await click(service, ack["verb"], ack["data"], "SW1")  # not told, not above them
    assert "Only the managers told about this concern" in texts_of(card)
    card = await click(service, ack["verb"], ack["data"], "TM2")
    assert "Acknowledged by Ted Manager" in texts_of(card)
    card = await click(service, ack["verb"], ack["data"], "TM1")
    assert "Acknowledged by Ted Manager" in texts_of(card)  # the first one counts
    async with ctx.sessions() as s:
        alert_row = await s.scalar(select(SafeguardingAlert))
    assert alert_row.acknowledged_by == "TM2"
    await fc.wait_for(lambda f: any("Ted Manager acknowledged the safeguarding concern" in t
                                    for t in f.texts(chat("AUD1"))), timeout=10)
    # Acknowledged: the escalation job leaves it alone, however late.
    late = datetime.now(LONDON) + timedelta(days=10)
    assert "no unacknowledged" in await run_job(ctx, "safeguarding_escalation", late)


async def test_an_unacknowledged_alert_climbs_a_rung_each_time_its_hours_pass(service) -> None:
    ctx, fc = service.ctx, service.connector
    monday = datetime(2027, 1, 11, 10, 0, tzinfo=LONDON)
    service.clock.set(monday)
    audit_id = await seed_council(ctx, fc)
    await anchor(service)
    await submit(service, audit_id, concern(ctx))
    job = "safeguarding_escalation"
    assert "0 escalated" in await run_job(ctx, job, monday + timedelta(hours=3, minutes=59))
    # (the clock runs on from 10:00, so the alert was raised a moment after it)
    assert "1 escalated" in await run_job(ctx, job, monday + timedelta(hours=4, minutes=1))
    assert "0 escalated" in await run_job(ctx, job, monday + timedelta(hours=4, minutes=1))
    async with ctx.sessions() as s:
        told = {(r.staff_id, r.rung) for r in await s.scalars(select(AlertRecipient))}
    assert told == {("TM1", 0), ("TM2", 0), ("SM1", 0), ("AD1", 1)}
    [alert] = await _cards_to(fc, "AD1", "Serious safeguarding concern")
    assert "Not acknowledged by" in texts_of(alert)
    await fc.wait_for(lambda f: any("so I have queued it for Ade Assistant" in t
                                    for t in f.texts(chat("AUD1"))), timeout=10)
    # 4 more working hours from 14:01 Monday: 3 of Monday and 1 of Tuesday = 10:01 Tuesday
    assert "0 escalated" in await run_job(ctx, job, datetime(2027, 1, 12, 10, 0, tzinfo=LONDON))
    assert "1 escalated" in await run_job(ctx, job, datetime(2027, 1, 12, 10, 2, tzinfo=LONDON))
    [alert] = await _cards_to(fc, "DIR", "Serious safeguarding concern")
    # Above the director: the QA team, then nobody new.
    assert "1 escalated" in await run_job(ctx, job, datetime(2027, 1, 12, 14, 5, tzinfo=LONDON))
    await _cards_to(fc, "QA1", "Serious safeguarding concern")
    assert "0 escalated" in await run_job(ctx, job, datetime(2027, 1, 13, 14, 0, tzinfo=LONDON))
    assert not any("Serious safeguarding" in dumps(x) for x in fc.cards(chat("SW1")))


async def test_an_alert_that_cannot_be_delivered_is_reported_at_once(service) -> None:
    ctx, fc = service.ctx, service.connector
    # TM2 is on no roster and not linked: the alert cannot reach them.
    audit_id = await seed_council(ctx, fc, unlinked=frozenset({"TM2"}))
    await anchor(service)
    await submit(service, audit_id, concern(ctx))
    await fc.wait_for(lambda f: any("could not be delivered to Ted Manager" in t
                                    for t in f.texts(chat("AUD1"))), timeout=15)
    await fc.wait_for(lambda f: any("could not be delivered to Ted Manager" in t
                                    for t in f.texts(chat("QA1"))), timeout=15)
    # ... and the next manager up gets the alert itself.
    await _cards_to(fc, "SM1", "Serious safeguarding concern")
    async with ctx.sessions() as s:
        failed = await s.scalar(select(OutboxMessage).where(
            OutboxMessage.dedupe_key == f"safeguarding:{audit_id}:TM2"))
    # Held for them (it goes once they are linked), and its fallbacks went at once.
    assert failed.status == "held" and "not linked" in failed.last_error
    # Every alert and every note about it went 1:1, never to a channel or group chat.
    personal = {chat(sid) for sid in USERS}
    about = [d for d in fc.deliveries if "safeguarding" in dumps(d.activity).lower()]
    assert about and {d.conversation_id for d in about} <= personal


async def test_an_alert_teams_refuses_is_reported_as_undelivered(service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    await anchor(service)
    # Tia Manager has blocked the bot: the first message to her (the alert, queued before
    # her findings) is refused. Matched by her chat, as the sender sends to several at once.
    import re

    fc.fail_next(403, match=re.escape(f"/v3/conversations/{chat('TM1')}/activities"),
                 code="Forbidden", message="The bot is blocked by the user.")
    await submit(service, audit_id, concern(ctx))
    await fc.wait_for(lambda f: any("could not be delivered to Tia Manager" in t
                                    for t in f.texts(chat("AUD1"))), timeout=15)
    async with ctx.sessions() as s:
        failed = list(await s.scalars(select(OutboxMessage).where(
            OutboxMessage.status == "failed")))
    assert len(failed) == 1 and failed[0].dedupe_key.startswith(f"safeguarding:{audit_id}:TM1")
    assert "refused: HTTP 403" in failed[0].last_error
    await fc.wait_for(lambda f: any("could not be delivered to" in t
                                    for t in f.texts(chat("QA1"))), timeout=15)


async def test_an_unlinked_recipient_is_looked_up_on_a_team_roster(service) -> None:
    ctx, fc = service.ctx, service.connector
    from tests.fakes import Team as TeamsTeam
    from tests.fakes import team_install

    audit_id = await seed_council(ctx, fc, unlinked=frozenset({"TM2"}),
                                  roster_only=frozenset({"TM2"}))
    team = TeamsTeam.named("Assessment")
    fc.add_team(team, members=[USERS["TM2"], USERS["AUD1"]])
    for activity in team_install(team, service_url=fc.url):
        await service.post(activity)  # the install links TM2 from the roster ...
    async with ctx.sessions.begin() as s:  # ... so unlink again: the lookup must do it
        tm2 = await s.get(Staff, "TM2")
        tm2.teams_user_id = tm2.aad_object_id = None
    await anchor(service)
    await submit(service, audit_id, concern(ctx))
    await _cards_to(fc, "TM2", "Serious safeguarding concern")
    async with ctx.sessions() as s:
        assert (await s.get(Staff, "TM2")).teams_user_id == USERS["TM2"].id
    assert not any("could not be delivered" in t for t in fc.texts(chat("AUD1")))


# ---------------------------------------------------------------------------- remedial


async def test_an_inadequate_audit_asks_for_a_remedial_plan_and_tracks_the_case(service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    await anchor(service)
    await submit(service, audit_id, form(ctx, "inadequate") | action(
        1, today(ctx) + timedelta(days=10)))
    due = today(ctx) + timedelta(days=7)
    assert (f"queued for Dana Director and Ade Assistant for a remedial plan by "
            f"{due:%a} {due.day} {due:%b %Y}") in fc.texts(chat("AUD1"))[-1]
    [plan_card] = await _cards_to(fc, "DIR", "Remedial action needed")
    await _cards_to(fc, "AD1", "Remedial action needed")
    record = button(plan_card, RecordPlan.verb)

    card = await click(service, record["verb"], record["data"], "SM1")
    assert "Only the people asked for the remedial plan" in texts_of(card)
    card = await click(service, record["verb"], record["data"], "DIR")
    assert "Please write the remedial plan" in texts_of(card)
    async with ctx.sessions() as s:
        rid = await s.scalar(select(Remedial.id))
    card = await click(service, record["verb"], record["data"]
                       | {f"plan.{rid}": "Weekly case review with the service manager."}, "DIR")
    assert "Plan recorded by Dana Director" in texts_of(card)
    await fc.wait_for(lambda f: any("Dana Director recorded the remedial plan" in t
                                    for t in f.texts(chat("QA1"))), timeout=10)

    # A later audit of the case grading it Good takes it off the tracking list.
    async with ctx.sessions.begin() as s:
        from store.models import AllocationRun, Audit

        first = await s.get(Audit, audit_id)
        run = AllocationRun(key="test:reaudit", kind="monthly", month="2099-01", seed=2,
                            created_by="test", deadline=first.deadline, summary={})
        s.add(run)
        await s.flush()
        again = Audit(run_id=run.id, case_ref=CASE, auditor_id="AUD1",
                      team_id=first.team_id, area=first.area, tool=first.tool,
                      month="2099-01", reason="reaudit", status="allocated",
                      deadline=first.deadline, look_back_from=first.look_back_from,
                      look_back_to=first.look_back_to)
        s.add(again)
        await s.flush()
        again_id = again.id
    await submit(service, again_id, form(ctx, "good"))
    assert "leaves the tracking-to-Good list" in fc.texts(chat("AUD1"))[-1]
    async with ctx.sessions() as s:
        row = await s.get(Remedial, rid)
    assert row.closed_at is not None and row.closed_by_audit_id == again_id


async def test_status_shows_reaudits_due_and_overdue(service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    await anchor(service)
    await submit(service, audit_id, form(ctx, "inadequate") | action(
        1, today(ctx) + timedelta(days=10)))
    # Eight months on, the Inadequate case is owed its re-audit.
    service.clock.set(datetime.now(LONDON) + timedelta(days=31 * 9))
    await say(service, "status", "QA1")
    [card] = await _cards_to(fc, "QA1", "Audit completion")
    text = texts_of(card)
    assert "Re-audits" in text and "Overdue (1)" in text and f"{CASE}: Inadequate" in text


# ---------------------------------------------------------------------------- retention


async def test_a_purged_case_takes_its_part_b_alerts_and_plans_with_it(service) -> None:
    from flows.records import purge_records, read_log
    from store.models import Audit, Case, RemedialRecipient

    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    await anchor(service)
    await submit(service, audit_id, concern(ctx) | form(ctx, "inadequate", safeguarding="true",
                                                        safeguarding_details="Bruising.")
                 | action(1, today(ctx) + timedelta(days=10)))
    async with ctx.sessions() as s:
        assert await s.scalar(select(PartB.id)) and await s.scalar(select(Remedial.id))
        assert await s.scalar(select(SafeguardingAlert.id))
        remedial_id = await s.scalar(select(Remedial.id))
    async with ctx.sessions.begin() as s:
        case = await s.get(Case, CASE)
        case.status, case.closed_on = "closed", date(2018, 3, 1)  # past the 7 years kept
    at = datetime.now(LONDON)
    log_before = await read_log(ctx, since=at - timedelta(days=1), case_ref=CASE)
    assert {"part_b.requested", "remedial.opened"} <= {e.action for e in log_before}
    done = await purge_records(ctx, at=at, actor="test", dry_run=False)
    assert done.counts["cases"] == 1 and done.counts["part_b"] == 3
    assert done.counts["safeguarding_alerts"] == 1 and done.counts["remedial_plans"] == 1
    async with ctx.sessions() as s:
        for model in (Audit, AuditAction, PartB, SafeguardingAlert, AlertRecipient, Remedial,
                      RemedialRecipient):
            assert (await s.scalars(select(model))).all() == [], model.__tablename__
        about = (await s.scalars(select(AuditLogEntry).where(
            AuditLogEntry.entity == "remedial",
            AuditLogEntry.entity_id == str(remedial_id)))).all()
    assert about == []


async def test_the_export_carries_part_b_and_how_actions_were_closed(service, tmp_path) -> None:
    import csv

    from flows.export import export_records

    ctx = service.ctx
    _, action_id = await _with_action(service)
    async with ctx.sessions() as s:
        audit_id = await s.scalar(select(AuditAction.audit_id))
    ids = part_b_ids(audit_id)
    await click(service, SubmitPartB.verb, SubmitPartB(audit_id).pack()
                | {ids["agrees"]: "no", ids["reason"]: "=HYPERLINK(\"x\")"}, "SW1")
    await click(service, ActionDone.verb, ActionDone(action_id).pack()
                | {f"note.{action_id}": "Chronology updated."}, "SW1")
    paths = await export_records(ctx, tmp_path, since=None, until=None, fmt="csv")
    with paths["part_b"].open(newline="", encoding="utf-8") as f:
        rows = {r["staff_id"]: r for r in csv.DictReader(f)}
    assert rows["SW1"]["agrees"] == "no" and rows["SW1"]["status"] == "submitted"
    assert rows["SW1"]["disagree_reason"].startswith("'=")  # neutralised for spreadsheets
    assert rows["TM1"]["status"] == "requested" and rows["SW1"]["case_ref"] == CASE
    with paths["actions"].open(newline="", encoding="utf-8") as f:
        [done] = list(csv.DictReader(f))
    assert (done["status"], done["done_by"], done["done_note"]) == ("done", "SW1",
                                                                    "Chronology updated.")
