"""Moderation through the running service and the fake Teams (issue 10 items 1-2, SPEC R10):
the monthly sample to moderators outside the case, Agree, Regrade (the final grade every
report reads), Return for rework and the resubmission's next round, moderators chased, and
the QA team's calibration."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta

from sqlalchemy import select

from cards.payloads import (
    AgreeModeration,
    OpenAudit,
    OpenModeration,
    RegradeModeration,
    ReturnModeration,
)
from flows.allocation import reaudits_owed, scheduled_day
from flows.moderation import calibration, sample_month
from qa import form_rules as fr
from qa.periods import first_of_month, month_key, shift_month
from reports.digest import compute_digest
from reports.export import export
from scheduler.jobs import run_job
from store.models import (
    AllocationRun,
    Audit,
    AuditAction,
    AuditLogEntry,
    Moderation,
    ModerationDomain,
    OutboxMessage,
    PartB,
    Remedial,
    Staff,
    Team,
)
from tests.after_audit import (
    CASE,
    USERS,
    action,
    anchor,
    button,
    buttons,
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
from tests.fakes import User


def local_today(ctx) -> date:
    return ctx.clock().astimezone(ctx.framework.zone).date()


async def _cards_to(fc, who: str, words: str, n: int = 1) -> list[dict]:
    await fc.wait_for(lambda f: sum(words in dumps(c) for c in f.cards(chat(who))) >= n,
                      timeout=10)
    return [c for c in fc.cards(chat(who)) if words in dumps(c)]


async def _texts_to(fc, who: str, words: str) -> list[str]:
    await fc.wait_for(lambda f: any(words in t for t in f.texts(chat(who))), timeout=10)
    return [t for t in fc.texts(chat(who)) if words in t]


async def _add_staff(ctx, fc, sid: str, name: str, roles: list[str], team: str,
                     manager: str | None) -> None:
    user = User.named(name)
    USERS[sid] = user
    fc.add_users(user)
    async with ctx.sessions.begin() as s:
        team_id = await s.scalar(select(Team.id).where(Team.name == team))
        s.add(Staff(staff_id=sid, name=name, roles=roles, team_id=team_id, email=user.email,
                    manager_id=manager, active=True, teams_user_id=user.id,
                    aad_object_id=user.aad_object_id))


async def _sampled(service, overall: str = "good", **extra: str) -> tuple[int, int, datetime]:
    """Submit the council's audit, then run the moderation job on next month's allocation
    day: (audit id, moderation id, when the job ran)."""
    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    # A head of service inside the case's team: a moderating role, never given its cases.
    await _add_staff(ctx, fc, "HOS1", "Hana Head", ["head_of_service"], "Assessment 1", "AD1")
    await anchor(service)
    values = form(ctx, overall) | extra
    if ctx.framework.needs_actions(overall):
        values |= action(1, local_today(ctx) + timedelta(days=40))
    await submit(service, audit_id, values)
    month = first_of_month(local_today(ctx))
    day = scheduled_day(ctx.framework, ctx.calendar, shift_month(month, 1))
    at = datetime.combine(day, ctx.framework.schedule.allocation_time,
                          tzinfo=ctx.framework.zone) + timedelta(minutes=1)
    service.clock.set(at)
    early = await run_job(ctx, "moderation", at - timedelta(minutes=2))
    assert "nothing to do yet" in early
    result = await run_job(ctx, "moderation", at)
    assert f"moderation of {month_key(month)}'s audits: gave 1 of 1" in result, result
    async with ctx.sessions() as s:
        mid = await s.scalar(select(Moderation.id).where(Moderation.audit_id == audit_id))
    return audit_id, mid, at


# ---------------------------------------------------------------------------- the sample


async def test_last_months_audits_go_once_to_a_moderator_outside_the_case(service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id, mid, at = await _sampled(service)
    async with ctx.sessions() as s:
        row = await s.get(Moderation, mid)
        run = await s.get(AllocationRun, row.run_id)
    # QA1 is the only moderator outside the case's team (HOS1 is in it) and its line
    # (SM1 manages the team, AUD1 audited it).
    assert (row.moderator_id, row.round, row.status, run.kind) == ("QA1", 1, "allocated",
                                                                   "moderation")
    assert row.due_on > at.astimezone(ctx.framework.zone).date()
    [invite] = await _cards_to(fc, "QA1", "Audits to moderate")
    assert CASE in texts_of(invite) and "audited by Alex Auditor, graded Good" in texts_of(invite)
    assert button(invite, OpenModeration.verb, moderation_id=mid)
    [summary] = await _texts_to(fc, "QA1", "Moderation sample for audits submitted in")
    assert "1 of 1 (10% sample, every Inadequate audit included)" in summary
    assert "Quinn Lead (1)" in summary

    # Replayed (a restart, a second instance): nothing more is allocated or queued.
    before = await count(ctx, OutboxMessage)
    again = await run_job(ctx, "moderation", at + timedelta(hours=3))
    assert "already allocated" in again
    assert await count(ctx, Moderation) == 1 and await count(ctx, OutboxMessage) == before
    assert await count(ctx, AuditLogEntry, AuditLogEntry.action == "moderation.allocated") == 1


async def test_an_audit_nobody_may_moderate_is_told_to_the_qa_team(service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    await anchor(service)
    await submit(service, audit_id, form(ctx, "good"))
    async with ctx.sessions.begin() as s:  # the only moderator leaves the moderating roles
        (await s.get(Staff, "QA1")).roles = ["qa_lead"]
    month = first_of_month(local_today(ctx))
    async with ctx.sessions.begin() as s:
        # QA1 audits in the case's team now: no one may moderate it
        qa = await s.get(Staff, "QA1")
        qa.team_id = (await s.get(Audit, audit_id)).team_id
    outcome = await sample_month(ctx, month, at=ctx.clock(), actor="test", seed=1)
    assert outcome.unassigned == (CASE,) and outcome.sampled == 1
    [summary] = await _texts_to(fc, "QA1", "Could not allocate")
    assert CASE in summary
    assert await count(ctx, Moderation) == 0
    async with ctx.sessions() as s:  # the run row outlives purged cases: counts only
        run = await s.scalar(select(AllocationRun).where(AllocationRun.kind == "moderation"))
    assert run.summary["unassigned"] == 1 and CASE not in json.dumps(run.summary)


# ---------------------------------------------------------------------------- the card


async def test_the_moderation_card_shows_the_audit_and_only_its_moderator_acts(service) -> None:
    ctx = service.ctx
    audit_id, mid, _ = await _sampled(service)
    card = await click(service, OpenModeration.verb, OpenModeration(mid).pack(), "QA1")
    text = texts_of(card)
    assert f"Moderation: case {CASE}" in text and "Chronology out of date." in text
    assert "Warm relationship with the family." in text and '"Good"' in dumps(card)
    verbs = {b["verb"] for b in buttons(card)}
    assert verbs == {AgreeModeration.verb, RegradeModeration.verb, ReturnModeration.verb}
    for who in ("AUD1", "SM1", "SW1"):
        refused = await click(service, AgreeModeration.verb, AgreeModeration(mid).pack(), who)
        assert "Only the moderator this audit was given to" in texts_of(refused)
    assert await count(ctx, Moderation, Moderation.status == "allocated") == 1


async def test_agree_is_recorded_once_and_the_auditor_told(service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id, mid, _ = await _sampled(service)
    card = await click(service, AgreeModeration.verb, AgreeModeration(mid).pack(), "QA1")
    assert "Agreed with the auditor's grades by Quinn Lead" in texts_of(card)
    assert not buttons(card)
    again = await click(service, AgreeModeration.verb, AgreeModeration(mid).pack(), "QA1")
    assert "Agreed with the auditor's grades" in texts_of(again)
    [note] = await _texts_to(fc, "AUD1", "moderated your audit")
    assert "agreed with your grades" in note
    async with ctx.sessions() as s:
        row = await s.get(Moderation, mid)
        domains = list(await s.scalars(select(ModerationDomain)))
    assert row.status == "agreed" and row.overall_grade == "good" and row.decided_by == "QA1"
    assert domains and all(d.auditor_grade == d.moderator_grade == "good" for d in domains)
    assert await count(ctx, AuditLogEntry, AuditLogEntry.action == "moderation.agreed") == 1
    assert await count(ctx, OutboxMessage, OutboxMessage.dedupe_key == f"moderation:{mid}:auditor"
                       ) == 1


def _csv(path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def test_a_regrade_is_the_final_grade_every_report_reads(service, tmp_path) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id, mid, at = await _sampled(service)
    fw = ctx.framework
    submitted_month = month_key(shift_month(first_of_month(at.astimezone(fw.zone).date()), -1))
    before = await compute_digest(ctx.sessions, fw, submitted_month, phrases=False)
    assert before.grades.counts()["good"] == 1

    tool = fw.tools["case_audit"]
    first = tool.domains[0].key
    lower = {f"mod.domain.{first}": "requires_improvement",
             "mod.overall": "requires_improvement"}
    # No reason, no action: both are asked for, nothing is recorded.
    card = await click(service, RegradeModeration.verb, RegradeModeration(mid).pack() | lower,
                       "QA1")
    text = texts_of(card)
    assert "Please say why you regraded the audit." in text
    assert "needs at least one added action" in text
    assert "requires_improvement" in dumps(card)  # the choices made are kept
    # Unchanged grades are not a regrade.
    card = await click(service, RegradeModeration.verb, RegradeModeration(mid).pack()
                       | {"mod.reason": "Checked."}, "QA1")
    assert "press Agree" in texts_of(card)
    assert await count(ctx, Moderation, Moderation.status == "allocated") == 1

    due = local_today(ctx) + timedelta(days=20)
    done = lower | {"mod.reason": "The plan is not reviewed; drift since the summer."} | action(
        1, due, owner="TM1", what="Review the child's plan with the family")
    card = await click(service, RegradeModeration.verb, RegradeModeration(mid).pack() | done,
                       "QA1")
    text = texts_of(card)
    assert "Regraded: final grade Requires Improvement by Quinn Lead" in text
    assert "Review the child's plan with the family" in text

    async with ctx.sessions() as s:
        row = await s.get(Moderation, mid)
        added = list(await s.scalars(select(AuditAction).where(
            AuditAction.audit_id == audit_id)))
        audit = await s.get(Audit, audit_id)
        owed = await reaudits_owed(s, fw, first_of_month(local_today(ctx)))
    assert row.status == "regraded" and row.overall_grade == "requires_improvement"
    assert audit.overall_grade == "good"  # the auditor's grade is kept as given
    assert [(a.what, a.owner_id, a.status) for a in added] == [
        ("Review the child's plan with the family", "TM1", "open")]
    # Re-audits follow the final grade.
    assert [(ref, grade) for ref, grade, _ in owed] == [(CASE, "requires_improvement")]

    after = await compute_digest(ctx.sessions, fw, submitted_month, phrases=False)
    assert after.grades.counts()["good"] == 0
    assert after.grades.counts()["requires_improvement"] == 1
    domain = {d.domain: d.distribution.counts() for d in after.domains}[first]
    assert domain["requires_improvement"] == 1 and domain["good"] == 0

    # The auditor and the people who had the findings hear of it; the owner of the action.
    for who in ("AUD1", "SW1", "TM1", "TM2"):
        [note] = await _texts_to(fc, who, "regraded it")
        assert "the final grade is now **Requires Improvement** (the auditor gave Good)" in note
    [owner_note] = await _texts_to(fc, "TM1", "added an action for you")
    assert "Review the child's plan with the family" in owner_note
    # Requires Improvement asks for a remedial plan (Lambeth: within 14 days).
    async with ctx.sessions() as s:
        plan = await s.scalar(select(Remedial).where(Remedial.audit_id == audit_id))
    assert plan is not None and plan.grade == "requires_improvement"
    await _cards_to(fc, "DIR", "Remedial action needed")

    # Replaying the click changes nothing.
    await click(service, RegradeModeration.verb, RegradeModeration(mid).pack() | done, "QA1")
    assert await count(ctx, AuditAction, AuditAction.audit_id == audit_id) == 1
    assert await count(ctx, Remedial) == 1

    # The export carries both grades, the round and the auditor's calibration.
    paths = await export(ctx.sessions, tmp_path, framework=fw)
    [row] = _csv(paths["audits"])
    assert (row["overall_grade"], row["final_overall_grade"]) == ("good", "requires_improvement")
    grades = {r["domain"]: (r["grade"], r["final_grade"]) for r in _csv(paths["domain_grades"])}
    assert grades[first] == ("good", "requires_improvement")
    assert all(g == ("good", "good") for d, g in grades.items() if d != first)
    [round_] = _csv(paths["moderations"])
    assert (round_["status"], round_["moderator_id"], round_["moderated_overall_grade"]) == (
        "regraded", "QA1", "requires_improvement")
    calibration_rows = {r["domain"]: r for r in _csv(paths["calibration"])}
    overall = calibration_rows["overall"]
    assert (overall["auditor_id"], overall["agreed"], overall["auditor_graded_higher"],
            overall["tendency"], overall["enough_to_judge"]) == ("AUD1", "0", "1", "higher", "no")


async def test_a_regrade_up_to_good_takes_the_case_off_tracking(service) -> None:
    ctx = service.ctx
    audit_id, mid, _ = await _sampled(service, "inadequate")
    async with ctx.sessions() as s:
        assert (await s.scalar(select(Remedial).where(Remedial.audit_id == audit_id))
                ).closed_at is None
    tool = ctx.framework.tools["case_audit"]
    up = {f"mod.domain.{d.key}": "good" for d in tool.domains} | {
        "mod.overall": "good", fr.OUTCOMES: "met",
        "mod.reason": "The evidence on the record shows the plan is working."}
    card = await click(service, RegradeModeration.verb, RegradeModeration(mid).pack() | up, "QA1")
    assert "Regraded: final grade Good" in texts_of(card)
    async with ctx.sessions() as s:
        plan = await s.scalar(select(Remedial).where(Remedial.audit_id == audit_id))
        owed = await reaudits_owed(s, ctx.framework, first_of_month(local_today(ctx)))
    assert plan.closed_at is not None
    assert owed == []


# ---------------------------------------------------------------------------- rework


async def test_return_for_rework_gives_the_form_back_and_the_resubmission_is_moderated_again(
        service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id, mid, _ = await _sampled(service)
    card = await click(service, ReturnModeration.verb, ReturnModeration(mid).pack(), "QA1")
    assert "Please say what needs redoing" in texts_of(card)
    reason = "The grades are not evidenced: say what the record shows for each domain."
    card = await click(service, ReturnModeration.verb, ReturnModeration(mid).pack()
                       | {"mod.return_reason": reason}, "QA1")
    assert "Returned to the auditor for rework by Quinn Lead" in texts_of(card)
    async with ctx.sessions() as s:
        audit = await s.get(Audit, audit_id)
    assert (audit.status, audit.submitted_at, audit.reworks) == ("returned", None, 1)

    # The auditor gets the form back, entries kept, with the moderator's comment.
    [back] = await _cards_to(fc, "AUD1", "Returned for rework by Quinn Lead")
    assert reason in texts_of(back) and "Chronology out of date." in dumps(back)
    # While returned it is not a completed audit in the digest.
    fw = ctx.framework
    period = audit.month
    assert (await compute_digest(ctx.sessions, fw, period, phrases=False)).completed == 0
    opened = await click(service, OpenAudit.verb, OpenAudit(audit_id).pack(), "AUD1")
    assert "Returned for rework by Quinn Lead" in texts_of(opened)

    # Resubmitted: the next round goes to the same moderator, the findings are revised and
    # nobody is asked for Part B twice.
    part_bs = await count(ctx, PartB)
    await submit(service, audit_id, form(ctx, "good", **{
        fr.STRENGTHS: "Warm relationship; the record now evidences each visit."}))
    thanks = fc.texts(chat("AUD1"))[-1]
    assert "queued it for Quinn Lead to moderate again" in thanks
    assert await count(ctx, PartB) == part_bs
    [revised] = await _cards_to(fc, "SW1", "Audit findings (revised)")
    assert "the record now evidences each visit" in texts_of(revised)
    [again] = await _cards_to(fc, "QA1", "Resubmitted for moderation")
    async with ctx.sessions() as s:
        second = await s.scalar(select(Moderation).where(Moderation.round == 2))
    assert second.moderator_id == "QA1" and second.status == "allocated"
    assert button(again, OpenModeration.verb, moderation_id=second.id)
    card = await click(service, OpenModeration.verb, OpenModeration(second.id).pack(), "QA1")
    assert "You returned it for rework" in texts_of(card) and reason in texts_of(card)
    # The old round is decided and stays so; the new one is agreed.
    old = await click(service, AgreeModeration.verb, AgreeModeration(mid).pack(), "QA1")
    assert "Returned to the auditor for rework" in texts_of(old)
    card = await click(service, AgreeModeration.verb, AgreeModeration(second.id).pack(), "QA1")
    assert "Agreed with the auditor's grades" in texts_of(card)
    # It stands again, as submitted in the month it was resubmitted.
    resubmitted = month_key(first_of_month(local_today(ctx)))
    assert (await compute_digest(ctx.sessions, fw, resubmitted, phrases=False)).submitted == 1


async def test_a_returned_audit_with_actions_keeps_them_and_resubmits_without_new_ones(
        service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id, mid, _ = await _sampled(service, "requires_improvement")
    await click(service, ReturnModeration.verb, ReturnModeration(mid).pack()
                | {"mod.return_reason": "Please evidence the domain grades."}, "QA1")
    [back] = await _cards_to(fc, "AUD1", "Returned for rework")
    assert "The 1 action you recorded stay open" in texts_of(back)
    await submit(service, audit_id, form(ctx, "requires_improvement"))
    async with ctx.sessions() as s:
        audit = await s.get(Audit, audit_id)
        actions = list(await s.scalars(select(AuditAction)))
    assert audit.status == "submitted" and [a.seq for a in actions] == [1]
    assert await count(ctx, Remedial) == 1  # the plan asked for the first time stands


# ---------------------------------------------------------------------------- chasing


async def test_moderators_are_reminded_before_the_due_date_and_their_manager_told_after(
        service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id, mid, at = await _sampled(service)
    async with ctx.sessions.begin() as s:
        (await s.get(Staff, "QA1")).manager_id = "DIR"
        due = (await s.get(Moderation, mid)).due_on
    cal, fw = ctx.calendar, ctx.framework
    remind_day = cal.add_working_days(due, -fw.reminder_working_days_before)

    def at_day(d: date) -> datetime:
        return datetime.combine(d, fw.schedule.daily_time, tzinfo=fw.zone)

    result = await run_job(ctx, "moderation_reminders", at_day(remind_day))
    assert "1 moderation reminder(s)" in result
    [reminder] = await _cards_to(fc, "QA1", "Reminder: moderation due")
    assert button(reminder, OpenModeration.verb, moderation_id=mid)
    again = await run_job(ctx, "moderation_reminders", at_day(remind_day) + timedelta(hours=1))
    assert "0 moderation reminder(s)" in again

    late = cal.next_working_day(due + timedelta(days=1))
    result = await run_job(ctx, "moderation_reminders", at_day(late))
    assert "1 note(s) about 1 overdue" in result
    [note] = await _texts_to(fc, "DIR", "past their due date")
    assert f"Quinn Lead: {CASE}" in note
    replay = await run_job(ctx, "moderation_reminders", at_day(late))
    assert "0 note(s)" in replay

    # Decided, it is chased no more.
    await click(service, AgreeModeration.verb, AgreeModeration(mid).pack(), "QA1")
    later = cal.next_working_day(late + timedelta(days=1))
    assert "about 0 overdue" in await run_job(ctx, "moderation_reminders", at_day(later))


# ---------------------------------------------------------------------------- calibration


async def test_calibration_is_for_the_qa_team_and_says_when_there_are_too_few(service) -> None:
    fc = service.connector
    audit_id, mid, _ = await _sampled(service)
    await click(service, AgreeModeration.verb, AgreeModeration(mid).pack(), "QA1")
    await say(service, "calibration", "QA1")
    [card] = await _cards_to(fc, "QA1", "Auditor calibration")
    text = texts_of(card)
    assert "Alex Auditor · 1 moderated audit" in text and "Too few to judge." in text
    await say(service, "calibration", "SW1")
    assert not [c for c in fc.cards(chat("SW1")) if "Auditor calibration" in dumps(c)]


async def test_calibration_per_auditor_and_domain_from_five_moderations(service) -> None:
    ctx, fc = service.ctx, service.connector
    await seed_council(ctx, fc)
    fw = ctx.framework
    now = ctx.clock()
    domains = [d.key for d in fw.tools["case_audit"].domains][:2]
    async with ctx.sessions.begin() as s:
        template = await s.scalar(select(Audit))
        run = AllocationRun(key="moderation:test", kind="moderation", month="2026-01", seed=1,
                            created_by="test", deadline=template.deadline, summary={})
        s.add(run)
        await s.flush()
        # Five moderated audits by AUD1: overall agreed 3 times, graded higher twice.
        for i, (mine, theirs) in enumerate([("good", "good")] * 3 + [
                ("good", "requires_improvement")] * 2):
            own = AllocationRun(key=f"test:cal:{i}", kind="monthly", month=f"2026-{i + 2:02d}",
                                seed=1, created_by="test", deadline=template.deadline,
                                summary={})
            s.add(own)
            await s.flush()
            a = Audit(run_id=own.id, case_ref=CASE, auditor_id="AUD1",
                      submitted_by="AUD1", team_id=template.team_id, area=template.area,
                      tool=template.tool, month=f"2026-{i + 2:02d}", reason="random",
                      status="submitted", deadline=template.deadline, submitted_at=now,
                      overall_grade=mine, look_back_from=template.look_back_from,
                      look_back_to=template.look_back_to)
            s.add(a)
            await s.flush()
            m = Moderation(run_id=run.id, audit_id=a.id, round=1, moderator_id="QA1",
                           status="agreed" if mine == theirs else "regraded",
                           allocated_at=now, due_on=template.deadline, decided_at=now,
                           decided_by="QA1", auditor_overall=mine, overall_grade=theirs)
            s.add(m)
            await s.flush()
            s.add_all([ModerationDomain(moderation_id=m.id, domain=domains[0],
                                        auditor_grade=mine, moderator_grade=theirs),
                       ModerationDomain(moderation_id=m.id, domain=domains[1],
                                        auditor_grade="good", moderator_grade="outstanding")])
    view = await calibration(ctx, since=now.date() - timedelta(days=30))
    [auditor] = view.auditors
    assert auditor.name == "Alex Auditor" and auditor.audits == 5 and auditor.enough
    rows = {r.domain: r for r in auditor.rows}
    titles = {d.key: d.title for d in fw.tools["case_audit"].domains}
    assert rows["Overall"].agreement == 0.6 and rows["Overall"].tendency == "higher"
    assert rows[titles[domains[0]]].agreement == 0.6
    assert rows[titles[domains[1]]].agreement == 0 and rows[titles[domains[1]]].tendency == "lower"
    await say(service, "calibration", "QA1")
    [card] = await _cards_to(fc, "QA1", "Auditor calibration")
    assert "60% agreed · grades higher than moderators (5 audits)" in json.dumps(
        card, ensure_ascii=False)


# ---------------------------------------------------------------------------- by hand


async def test_a_qa_lead_takes_an_unallocated_audit_or_one_waiting_with_someone_else(
        service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    await _add_staff(ctx, fc, "QA2", "Quincy Second", ["qa_lead"], "Quality Assurance", None)
    await anchor(service)
    await submit(service, audit_id, form(ctx, "good"))

    await say(service, "moderate", "QA1")
    assert "Please write it as: moderate CASE_REF" in fc.texts(chat("QA1"))[-1]
    await say(service, "moderate C-0000", "QA1")
    assert "has no submitted audit to moderate" in fc.texts(chat("QA1"))[-1]
    await say(service, f"moderate {CASE}", "SW1")  # not the QA team
    assert await count(ctx, Moderation) == 0

    # Nobody was given it: QA1 takes it.
    await say(service, f"moderate {CASE}", "QA1")
    [card] = await _cards_to(fc, "QA1", f"Moderation: case {CASE}")
    assert f"The audit of case {CASE} is yours to moderate" in fc.texts(chat("QA1"))[-1]
    async with ctx.sessions() as s:
        row = await s.scalar(select(Moderation))
    assert (row.moderator_id, row.status, row.round) == ("QA1", "allocated", 1)

    # QA2 takes it over from QA1 (off sick); QA1's buttons then refuse.
    await say(service, f"moderate {CASE}", "QA2")
    assert "(it was with Quinn Lead)" in fc.texts(chat("QA2"))[-1]
    refused = await click(service, AgreeModeration.verb, AgreeModeration(row.id).pack(), "QA1")
    assert "Only the moderator this audit was given to" in texts_of(refused)
    done = await click(service, AgreeModeration.verb, AgreeModeration(row.id).pack(), "QA2")
    assert "Agreed with the auditor's grades by Quincy Second" in texts_of(done)
    assert await count(ctx, AuditLogEntry, AuditLogEntry.action == "moderation.reassigned") == 1
    await say(service, f"moderate {CASE}", "QA1")
    assert "is already moderated (agreed)" in fc.texts(chat("QA1"))[-1]


async def test_a_qa_lead_who_manages_the_case_cannot_take_it(service) -> None:
    ctx, fc = service.ctx, service.connector
    audit_id = await seed_council(ctx, fc)
    await anchor(service)
    await submit(service, audit_id, form(ctx, "good"))
    async with ctx.sessions.begin() as s:  # the QA lead is also the case team's manager
        (await s.get(Staff, "TM1")).roles = ["team_manager", "qa_lead"]
    await say(service, f"moderate {CASE}", "TM1")
    assert "you audited it, work in the case's team or manage it" in fc.texts(chat("TM1"))[-1]
    assert await count(ctx, Moderation) == 0
