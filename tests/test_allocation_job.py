"""The monthly allocation job against a generated council (SPEC R3, R9): rules over many seeds,
exactly once, dry run, blackout, late catch-up, delivery through the outbox, and the cards."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
from collections import Counter
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bench.datagen import QA_UNIT, Council, cases_csv, generate, load_council, staff_csv
from cards.allocation import (
    AllocatedCase,
    AllocationView,
    AreaCount,
    CompletionRow,
    CompletionView,
    QaSummaryView,
    ReminderView,
    StaffRef,
    allocation_card,
    completion_card,
    qa_summary_card,
    reminder_card,
)
from cards.common import teams_findings
from cards.payloads import OpenAudit
from flows.allocation import allocate_month, plan_monthly
from qa.allocation import repeat_window_start
from qa.framework import Framework
from qa.people import LineOfManagement
from qabot.app import build_services
from qabot.services import Services
from scheduler.jobs import run_job
from store.directory import people
from store.models import (
    AllocationRun,
    Audit,
    AuditLogEntry,
    Case,
    Conversation,
    OutboxMessage,
    Staff,
    Team,
)
from tests.allocation_checker import check_allocation
from tests.fakes import User, message
from tests.test_outbox import make_sender

LONDON = ZoneInfo("Europe/London")
DEC = date(2026, 12, 1)
DEC_RUN = datetime(2026, 12, 1, 9, 0, tzinfo=LONDON)  # Tuesday 1 December 2026, 09:00
DEC_DEADLINE = date(2026, 12, 22)  # 15 working days on
SNAPSHOTS = Path(__file__).with_name("snapshots")


# ---------------------------------------------------------------------------------------------
# Shared helpers (tests/test_completion.py uses them too)


@cache
def council(seed: int = 0) -> Council:
    return generate(seed)


def role_ids(c: Council, *roles: str) -> list[str]:
    return [s.staff_id for s in c.staff if set(roles) & set(s.roles)]


def user_for(staff_id: str, c: Council | None = None) -> User:
    """The Teams user a generated staff member would be (same name and email)."""
    row = next(s for s in (c or council()).staff if s.staff_id == staff_id)
    return User.named(row.name, email=row.email)


async def load(ctx: Services, c: Council | None = None, *,
               unlinked: frozenset[str] = frozenset(), link: bool = False) -> Council:
    """Load the council; with ``link`` every staff member but ``unlinked`` has a Teams id."""
    c = c or council()
    ids = {s.staff_id: user_for(s.staff_id, c).id for s in c.staff
           if link and s.staff_id not in unlinked}
    await load_council(ctx.sessions, c, teams_ids=ids)
    return c


def framework_with(fw: Framework, **changes: Any) -> Framework:
    """A copy of the framework with some settings changed (``counts`` sets area counts)."""
    counts = changes.pop("counts", None)
    if counts is not None:
        changes["areas"] = {k: dataclasses.replace(a, monthly_count=counts.get(k))
                            for k, a in fw.areas.items()}
    return dataclasses.replace(fw, **changes)


def context_like(ctx: Services, framework: Framework) -> Services:
    """Another Services on the same database (another process, or another framework)."""
    return build_services(ctx.settings, framework)


async def table_counts(ctx: Services) -> dict[str, int]:
    out = {}
    async with ctx.sessions() as session:
        for model in (AllocationRun, Audit, AuditLogEntry, OutboxMessage, Case, Staff, Team):
            out[model.__tablename__] = int(
                await session.scalar(select(func.count()).select_from(model)) or 0)
    return out


async def audit_rows(ctx: Services) -> list[tuple[Any, ...]]:
    async with ctx.sessions() as session:
        rows = await session.execute(
            select(Audit.run_id, Audit.case_ref, Audit.auditor_id, Audit.area, Audit.reason,
                   Audit.deadline).order_by(Audit.id))
        return [tuple(r) for r in rows.all()]


def _ts(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 12, 0, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class History:
    due: frozenset[str]  # re-audits due in December 2026
    recent: frozenset[str]  # audited inside December's repeat window


async def add_history(ctx: Services, c: Council) -> History:
    """Earlier months' audits: re-audits that fall due in December, and recent audits.

    * 5 cases graded Requires Improvement in December 2025: re-audit due 2026-12 (12 months);
    * 5 graded Inadequate in April 2026: re-audit due 2026-12-20 (8 months);
    * 3 graded Inadequate in March 2026 but already re-allocated in October: not due, recent;
    * 30 graded Good in September 2026: inside the 6-month window, must not come back.
    """
    cases = c.cases
    ri, inadequate, underway, good = cases[0:5], cases[5:10], cases[10:13], cases[20:50]
    auditor = next(s for s in c.staff if "iro" in s.roles)  # QA unit: no casework team
    async with ctx.sessions.begin() as session:
        team_id = dict((await session.execute(select(Team.name, Team.id))).all())
        runs: dict[str, AllocationRun] = {}
        for month in ("2025-12", "2026-03", "2026-04", "2026-09", "2026-10"):
            runs[month] = AllocationRun(key=f"history:{month}", kind="thematic", month=month,
                                        seed=0, created_by="test", deadline=date(2000, 1, 1))
            session.add(runs[month])
        await session.flush()

        def audit(case: Any, month: str, submitted: date | None, grade: str | None) -> Audit:
            return Audit(run_id=runs[month].id, case_ref=case.case_ref, auditor_id=auditor.staff_id,
                         team_id=team_id[case.team], area=case.area, tool="case_audit",
                         month=month, reason="random",
                         status="submitted" if submitted else "allocated",
                         allocated_at=_ts(date.fromisoformat(f"{month}-01")),
                         deadline=date.fromisoformat(f"{month}-20"),
                         look_back_from=date(2000, 1, 1), look_back_to=date(2000, 1, 1),
                         submitted_at=_ts(submitted) if submitted else None, overall_grade=grade)

        session.add_all(audit(x, "2025-12", date(2025, 12, 10), "requires_improvement") for x in ri)
        session.add_all(audit(x, "2026-04", date(2026, 4, 20), "inadequate") for x in inadequate)
        session.add_all(audit(x, "2026-03", date(2026, 3, 20), "inadequate") for x in underway)
        session.add_all(audit(x, "2026-10", None, None) for x in underway)
        session.add_all(audit(x, "2026-09", date(2026, 9, 15), "good") for x in good)
    return History(due=frozenset(x.case_ref for x in (*ri, *inadequate)),
                   recent=frozenset(x.case_ref for x in (*underway, *good)))


def named(token: str, lines: tuple[str, ...]) -> bool:
    pattern = re.compile(rf"(?<![\w-]){re.escape(token)}(?![\w-])")
    return any(pattern.search(line) for line in lines)


async def assert_rules_in_db(ctx: Services, framework: Framework,
                             allocations: list[tuple[str, str, str, str]],
                             shortfalls: tuple[str, ...], history: History | None) -> None:
    """Every rule, checked against the stored staff and cases rather than the request."""
    async with ctx.sessions() as session:
        staff = {s.staff_id: s for s in await session.scalars(select(Staff))}
        cases = {c.case_ref: c for c in await session.scalars(select(Case))}
        line = LineOfManagement(await people(session))
    refs = [ref for ref, _, _, _ in allocations]
    assert len(refs) == len(set(refs)), "a case allocated twice"
    load: Counter[str] = Counter()
    per_area: Counter[str] = Counter()
    for ref, auditor_id, area, reason in allocations:
        case, auditor = cases[ref], staff[auditor_id]
        assert case.status == "open" and case.area == area
        assert auditor.active and framework.quota_for_roles(auditor.roles) > 0
        assert auditor.team_id != case.team_id, f"{ref}: from {auditor_id}'s own team"
        assert auditor.staff_id != case.social_worker_id, f"{ref}: on {auditor_id}'s caseload"
        assert case.team_id not in line.teams_below(auditor_id), (
            f"{ref}: from a team below {auditor_id} in the line of management")
        if history is not None:
            assert ref not in history.recent, f"{ref}: audited inside the repeat window"
            assert (reason == "reaudit") == (ref in history.due), ref
        load[auditor_id] += 1
        per_area[area] += 1
    for sid, n in load.items():
        assert n <= framework.quota_for_roles(staff[sid].roles)
    for sid, s in staff.items():
        quota = framework.quota_for_roles(s.roles) if s.active else 0
        if load[sid] < quota:
            assert named(sid, shortfalls), f"{sid} below quota and not reported"
    for key, area in framework.areas.items():
        if area.monthly_count is not None:
            assert per_area[key] <= area.monthly_count
            if per_area[key] < area.monthly_count:
                assert named(key, shortfalls), f"{key} short and not reported"
    if history is not None:
        for ref in history.due - set(refs):
            assert named(ref, shortfalls), f"re-audit {ref} neither allocated nor reported"


TIGHT = {"early_help": 2, "help_and_protection": 4, "children_in_care": 3, "care_leavers": 2}


# ---------------------------------------------------------------------------------------------
# Generated data


def test_generated_council_is_deterministic_and_realistic() -> None:
    c = council()
    assert c == generate(0) and c != generate(1)
    assert len(c.staff) == 150 and len(c.cases) == 2000
    casework = [t for t in c.teams if t != QA_UNIT]
    assert len(casework) == 12
    roles = Counter(r for s in c.staff for r in s.roles)
    assert roles["team_manager"] == 12 and roles["director"] == 1
    assert roles["qa_lead"] == 1 and roles["principal_social_worker"] == 1
    ids = {s.staff_id for s in c.staff}
    assert all(s.manager_id in ids for s in c.staff if s.manager_id)
    assert len({s.email for s in c.staff}) == 150
    assert all(re.fullmatch(r"C-\d{6}", x.case_ref) for x in c.cases)
    team_of = {s.staff_id: s.team for s in c.staff}
    in_team = sum(team_of.get(x.social_worker_id or "") == x.team for x in c.cases)
    assert 0.9 < in_team / len(c.cases) < 0.99  # a few unallocated or held in cover
    assert {x.area for x in c.cases} == {"early_help", "help_and_protection",
                                          "children_in_care", "care_leavers"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_generated_csv_imports_cleanly(ctx) -> None:
    from store.imports import import_cases, import_staff

    c = generate(3, n_cases=300)
    for func_, text in ((import_staff, staff_csv(c)), (import_cases, cases_csv(c))):
        path = Path(ctx.settings.database_url.split("///")[1]).with_name(f"{func_.__name__}.csv")
        path.write_text(text)
        report = await func_(ctx.sessions, ctx.framework, str(path), actor="test", at=ctx.clock())
        assert not report.rejected, report.details()
    counts = await table_counts(ctx)
    assert counts["staff"] == 150 and counts["cases"] == 300


# ---------------------------------------------------------------------------------------------
# The rules, over many seeds


@pytest.mark.parametrize("counts", [None, TIGHT], ids=["lambeth", "tight_counts"])
async def test_many_seeds_satisfy_every_rule(ctx, framework, counts) -> None:
    fw = framework if counts is None else framework_with(framework, counts=counts)
    c = await load(ctx)
    history = await add_history(ctx, c)
    seeds = range(20) if ctx.settings.database_url.startswith("sqlite") else range(5)
    results = set()
    for seed in seeds:
        plan = await plan_monthly(ctx.sessions, fw, ctx.calendar, DEC, as_of=DEC_RUN, seed=seed)
        assert plan.request.seed == seed
        assert check_allocation(plan.request, plan.result) == [], seed
        allocations = [(a.case_ref, a.auditor_id, a.area, a.reason) for a in plan.result.allocations]
        await assert_rules_in_db(ctx, fw, allocations, plan.result.shortfalls, history)
        results.add(frozenset(allocations))
        if counts is None:
            assert history.due <= {a[0] for a in allocations}  # capacity for every re-audit
    assert len(results) > len(seeds) // 2, "different seeds should give different samples"
    assert (await table_counts(ctx))["allocation_runs"] == 5  # planning wrote nothing


async def test_same_seed_reproduces_the_month(ctx, framework) -> None:
    await load(ctx)
    a = await plan_monthly(ctx.sessions, framework, ctx.calendar, DEC, as_of=DEC_RUN, seed=42)
    b = await plan_monthly(ctx.sessions, framework, ctx.calendar, DEC, as_of=DEC_RUN, seed=42)
    assert a.result == b.result


# ---------------------------------------------------------------------------------------------
# Persisting: exactly once


async def test_job_allocates_the_month_once_with_rows_log_and_messages(ctx, framework) -> None:
    c = await load(ctx)
    history = await add_history(ctx, c)
    before = await table_counts(ctx)
    result = await run_job(ctx, "allocation", DEC_RUN)
    assert result.startswith("2026-12: allocated ")
    async with ctx.sessions() as session:
        run = await session.scalar(select(AllocationRun).where(AllocationRun.key == "monthly:2026-12"))
        audits = list(await session.scalars(select(Audit).where(Audit.run_id == run.id)))
        logs = Counter(e.action for e in await session.scalars(select(AuditLogEntry)))
        messages = list(await session.scalars(select(OutboxMessage)))
    assert run is not None and run.kind == "monthly" and run.created_by == "job:allocation"
    assert run.deadline == DEC_DEADLINE and 0 <= run.seed < 2**63
    auditors = {a.auditor_id for a in audits}
    # Lambeth-like quotas: 26 auditors, 1 each; the assistant director manages every team,
    # so no case can be theirs (issue 12: never a case from a team below the auditor).
    assert len(audits) == 25 == len(auditors)
    assert named(role_ids(c, "assistant_director")[0], tuple(run.summary["shortfalls"]))
    await assert_rules_in_db(ctx, framework, [(a.case_ref, a.auditor_id, a.area, a.reason)
                                              for a in audits], tuple(run.summary["shortfalls"]),
                             history)
    case_team = {x.case_ref: x.team for x in c.cases}
    async with ctx.sessions() as session:
        team_name = dict((await session.execute(select(Team.id, Team.name))).all())
    for a in audits:
        assert a.deadline == DEC_DEADLINE and a.month == "2026-12" and a.status == "allocated"
        assert (a.look_back_from, a.look_back_to) == (date(2026, 6, 1), DEC)
        assert a.tool == framework.areas[a.area].tool
        assert team_name[a.team_id] == case_team[a.case_ref]
    assert logs["allocation.created"] == 1 and logs["audit.allocated"] == len(audits)
    keys = sorted(m.dedupe_key for m in messages)
    qa = role_ids(c, *framework.qa_roles)  # the generated QA lead and principal social worker
    assert len(qa) == 2
    assert keys == sorted([f"allocation:2026-12:{s}" for s in auditors]
                          + [f"allocation:2026-12:summary:{s}" for s in qa])
    assert run.summary["queued"] == len(messages) == before["outbox"] + len(auditors) + 2

    # Re-running changes nothing: the job again, later the same day, and by hand.
    rows, counts = await audit_rows(ctx), await table_counts(ctx)
    again = await run_job(ctx, "allocation", DEC_RUN)
    assert "already allocated" in again and "nothing changed" in again
    assert "already allocated" in await run_job(ctx, "allocation",
                                                 datetime(2026, 12, 9, 9, tzinfo=LONDON))
    by_hand = await allocate_month(ctx.sessions, framework, ctx.calendar, DEC, as_of=DEC_RUN,
                                   actor="cli:test", seed=123)
    assert by_hand.status == "already" and by_hand.seed == run.seed
    assert await audit_rows(ctx) == rows and await table_counts(ctx) == counts


async def test_two_instances_at_once_allocate_once(ctx, framework) -> None:
    await load(ctx)
    other = context_like(ctx, framework)
    try:
        results = await asyncio.gather(run_job(ctx, "allocation", DEC_RUN),
                                       run_job(other, "allocation", DEC_RUN))
    finally:
        await other.close()
    assert sum("already allocated" in r for r in results) == 1, results
    counts = await table_counts(ctx)
    assert counts["allocation_runs"] == 1 and counts["audits"] == 25
    assert counts["outbox"] == 25 + 2


async def test_dry_run_writes_nothing(ctx, framework) -> None:
    await load(ctx)
    before = await table_counts(ctx)
    outcome = await allocate_month(ctx.sessions, framework, ctx.calendar, DEC, as_of=DEC_RUN,
                                   actor="test", seed=5, dry_run=True)
    assert outcome.status == "dry_run" and outcome.allocated == 25 and outcome.seed == 5
    assert "Dry run: nothing was written." in outcome.report()
    assert await table_counts(ctx) == before
    real = await allocate_month(ctx.sessions, framework, ctx.calendar, DEC, as_of=DEC_RUN,
                                actor="test", seed=5)
    assert real.per_area == outcome.per_area and real.per_team == outcome.per_team  # preview = real


async def test_blackout_month_does_nothing(ctx, framework) -> None:
    fw = framework_with(framework, blackout_months=frozenset({8, 12}))
    await load(ctx)
    before = await table_counts(ctx)
    blackout_ctx = context_like(ctx, fw)
    try:
        assert "blackout" in await run_job(blackout_ctx, "allocation", DEC_RUN)
        outcome = await allocate_month(ctx.sessions, fw, ctx.calendar, DEC, as_of=DEC_RUN,
                                       actor="test")
        assert outcome.status == "blackout"
        assert await table_counts(ctx) == before
        jan = await run_job(blackout_ctx, "allocation", datetime(2027, 1, 4, 9, tzinfo=LONDON))
        assert "allocated 25" in jan
    finally:
        await blackout_ctx.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_job_waits_for_the_allocation_day_and_catches_up_late(ctx) -> None:
    await load(ctx)
    # January 2027: the 1st is a bank holiday and the 2nd-3rd a weekend; Monday 4th is the day.
    for at in (datetime(2027, 1, 1, 9, tzinfo=LONDON), datetime(2027, 1, 4, 8, 59, tzinfo=LONDON)):
        assert "nothing to do yet" in await run_job(ctx, "allocation", at)
    assert (await table_counts(ctx))["allocation_runs"] == 0
    # The service was down on the 4th: the next day's run allocates, deadline from the 5th.
    result = await run_job(ctx, "allocation", datetime(2027, 1, 5, 9, tzinfo=LONDON))
    assert "allocated 25" in result
    async with ctx.sessions() as session:
        deadlines = set(await session.scalars(select(Audit.deadline)))
        looks = set((await session.execute(select(Audit.look_back_from, Audit.look_back_to))).all())
    assert deadlines == {ctx.calendar.add_working_days(date(2027, 1, 5), 15)}
    assert looks == {(date(2026, 7, 5), date(2027, 1, 5))}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_consecutive_months_never_repeat_a_case_inside_the_window(ctx, framework) -> None:
    await load(ctx)
    months = [date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 1)]
    for month in months:
        day = ctx.calendar.first_working_day(month.year, month.month)
        result = await run_job(ctx, "allocation", datetime.combine(day, framework.schedule.allocation_time, LONDON))
        assert "allocated 25" in result, result
    async with ctx.sessions() as session:
        rows = (await session.execute(select(Audit.case_ref, Audit.month))).all()
    by_case: dict[str, list[str]] = {}
    for ref, month in rows:
        by_case.setdefault(ref, []).append(month)
    assert len(rows) == 4 * 25
    for ref, ms in by_case.items():
        assert len(ms) == 1, f"{ref} allocated in {ms}, inside the 6-month window"
    assert repeat_window_start(months[-1], 6) <= months[0]


# ---------------------------------------------------------------------------------------------
# The line of management (issue 12)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_service_and_heads_of_service_never_audit_a_team_below_them(ctx, framework) -> None:
    """Four months of a generated council in which service managers, heads of service and
    the assistant director all audit: none is ever given a case from a team under them."""
    fw = framework_with(framework, auditor_quotas={**framework.auditor_quotas,
                                                   "head_of_service": 1})
    c = await load(ctx)
    sms, heads = role_ids(c, "service_manager"), role_ids(c, "head_of_service")
    other = context_like(ctx, fw)
    try:
        dry = await allocate_month(other.sessions, fw, other.calendar, DEC, as_of=DEC_RUN,
                                   actor="test", seed=11, dry_run=True)
        report = "\n".join(dry.report())
        assert "Excluded by rule:" in report
        staff = {s.staff_id: s for s in c.staff}
        for sid in [*sms, *heads]:
            assert f"line of management: {sid} {staff[sid].name}" in report, sid
        given: Counter[str] = Counter()
        for month in (DEC, date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 1)):
            day = ctx.calendar.first_working_day(month.year, month.month)
            await run_job(other, "allocation", datetime.combine(day, fw.schedule.allocation_time,
                                                                LONDON))
        async with ctx.sessions() as session:
            line = LineOfManagement(await people(session))
            rows = (await session.execute(select(Audit.auditor_id, Audit.team_id))).all()
    finally:
        await other.close()
    for auditor_id, team_id in rows:
        given[auditor_id] += 1
        assert team_id not in line.teams_below(auditor_id), (auditor_id, team_id)
    # The rule bites but leaves them work: each service manager and head of service has
    # teams outside their own part of the service to audit.
    for sid in [*sms, *heads]:
        assert line.teams_below(sid), sid
        assert given[sid] == 4, (sid, given[sid])
    assert given[role_ids(c, "assistant_director")[0]] == 0  # every team is below them


# ---------------------------------------------------------------------------------------------
# Delivery: every auditor's card through the outbox, the QA summary naming unreachable staff


async def _anchor_chat(ctx: Services, fc: Any, staff_id: str) -> str:
    """One person has talked to the bot, so the sender knows the service URL and tenant."""
    from botbuilder.schema import Activity

    from bot.teams import to_incoming

    user = user_for(staff_id)
    incoming = to_incoming(Activity().deserialize(message("hi", user=user, service_url=fc.url)))
    await ctx.directory.save_conversation(
        conversation_id=incoming.conversation_id, kind="personal", service_url=fc.url,
        tenant_id=incoming.tenant_id, reference=incoming.reference,
        teams_user_id=user.id, aad_object_id=user.aad_object_id)
    return incoming.conversation_id


async def drain(ctx: Services, rounds: int = 50) -> None:
    sender = make_sender(ctx)
    for _ in range(rounds):
        if not await sender.drain_once():
            status = await ctx.outbox.status()
            if status.pending == 0 and status.sending == 0:
                return
            await asyncio.sleep(0.05)


async def test_every_auditors_card_arrives_through_the_outbox(ctx, fake_connector) -> None:
    fc = fake_connector
    c = council()
    unlinked = frozenset({role_ids(c, "team_manager")[0], role_ids(c, "iro")[0]})
    await load(ctx, c, link=True, unlinked=unlinked)
    fc.add_users(*(user_for(s.staff_id) for s in c.staff if s.staff_id not in unlinked))
    qa = role_ids(c, *ctx.framework.qa_roles)
    await _anchor_chat(ctx, fc, qa[0])
    await run_job(ctx, "allocation", DEC_RUN)
    await drain(ctx)

    async with ctx.sessions() as session:
        audits = list(await session.scalars(select(Audit)))
        convs = {cv.staff_id: cv.id for cv in await session.scalars(
            select(Conversation).where(Conversation.kind == "personal"))}
        held = dict((await session.execute(select(OutboxMessage.staff_id, OutboxMessage.last_error)
                                           .where(OutboxMessage.status == "held"))).all())
        failed = await session.scalar(select(func.count()).select_from(OutboxMessage)
                                      .where(OutboxMessage.status == "failed"))
    # Issue 12: held until they are linked, no longer failed.
    assert set(held) == unlinked & {a.auditor_id for a in audits} and failed == 0
    assert all("not linked to a Teams user yet" in why for why in held.values())
    for a in audits:
        if a.auditor_id in unlinked:
            continue
        [card] = fc.cards(convs[a.auditor_id])
        assert teams_findings(card) == []
        text = json.dumps(card)
        assert a.case_ref in text and "Tuesday 22 December 2026" in text
        [button] = [x for x in _walk(card) if x.get("type") == "Action.Execute"]
        assert button["verb"] == OpenAudit.verb and OpenAudit.parse(button["data"]).audit_id == a.id
    for lead in qa:
        [summary] = fc.cards(convs[lead])
        assert teams_findings(summary) == []
        text = json.dumps(summary)
        for sid in unlinked:
            assert sid in text
        assert not re.search(r"C-\d{6}", text), "no case references in the QA summary"
    assert fc.duplicates() == []


def _walk(node: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            out += _walk(v)
    elif isinstance(node, list):
        for v in node:
            out += _walk(v)
    return out


# ---------------------------------------------------------------------------------------------
# Cards: validated for Teams and snapshot-tested (UPDATE_SNAPSHOTS=1 regenerates)


def _case(audit_id: int, ref: str, reason: str = "random", due: date | None = None) -> AllocatedCase:
    return AllocatedCase(audit_id, ref, "Children looked after and permanence", reason,
                         date(2026, 6, 1), DEC, DEC_DEADLINE, due)


CARDS = {
    "allocation_one_case": lambda: allocation_card(AllocationView(
        "Lambeth-like Children's Social Care", "Dana Auditor", DEC, (_case(7, "C-000123"),))),
    "allocation_with_reaudit": lambda: allocation_card(AllocationView(
        "Lambeth-like Children's Social Care", "Dana Auditor", DEC,
        (_case(7, "C-000123"), _case(8, "C-000456", "reaudit", date(2026, 12, 20))))),
    "reminder": lambda: reminder_card(ReminderView(
        "Lambeth-like Children's Social Care", "Dana Auditor", DEC_DEADLINE, 3,
        (_case(7, "C-000123"),))),
    "qa_summary": lambda: qa_summary_card(QaSummaryView(
        "Lambeth-like Children's Social Care", DEC, 42, DEC_DEADLINE, 26,
        (AreaCount("Early help", 4, 40), AreaCount("Children looked after and permanence", 6, 60)),
        (("Early Help North", 2), ("Permanence", 3)),
        ("early_help: 40 wanted, 4 allocated (not enough auditor capacity)",), 1,
        (StaffRef("S0008", "Tom Green", 1), StaffRef("S0011", "Asha Lead")), ("August",))),
    "qa_summary_all_satisfied": lambda: qa_summary_card(QaSummaryView(
        "Bedford-like", DEC, 7, DEC_DEADLINE, 2, (AreaCount("Children in need", 2, None),),
        (("Team A", 2),), (), 0, ())),
    "completion": lambda: completion_card(CompletionView(DEC, date(2026, 12, 23), (
        CompletionRow("Early Help North", 3, 1, 1, 2), CompletionRow("No team", 9, 9, 0, 0)))),
    "completion_empty": lambda: completion_card(CompletionView(DEC, date(2026, 12, 1), ())),
}


@pytest.mark.parametrize("name", sorted(CARDS))
def test_cards_validate_and_match_snapshots(name: str) -> None:
    card = CARDS[name]()
    assert teams_findings(card) == []
    path = SNAPSHOTS / f"allocation_{name}.json"
    text = json.dumps(card, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text, f"{path.name} changed: rerun with UPDATE_SNAPSHOTS=1 if intended"


async def test_the_qa_summary_never_tells_the_unreachable_lead_they_are_unreachable(
        ctx, fake_connector) -> None:
    """Two QA leads, one not linked: each summary names the other, never its reader; and
    "cards are held" is said only when someone unreachable has an audit."""
    c = council()
    lead, psw = role_ids(c, "qa_lead")[0], role_ids(c, "principal_social_worker")[0]
    everyone = frozenset(s.staff_id for s in c.staff)
    await load(ctx, c, link=True, unlinked=frozenset({psw}))
    await run_job(ctx, "allocation", DEC_RUN)
    async with ctx.sessions() as session:
        cards = {m.staff_id: json.dumps(m.activity["card"]) for m in await session.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key.like("allocation:%:summary:%")))}
    assert psw not in cards[psw] and "Not linked to Teams" not in cards[psw]
    assert psw in cards[lead] and "Not linked to Teams yet (1)" in cards[lead]
    assert "None of them has an audit this month" in cards[lead]  # the PSW does not audit
    assert "held for them" not in cards[lead]

    # With an auditor unreachable too, the cards held for them are said, and counted.
    auditor = role_ids(c, "team_manager")[0]
    other = QaSummaryView("A", DEC, 1, DEC_DEADLINE, 1, (), (), (), 0,
                          (StaffRef(auditor, "X", 1), StaffRef(psw, "Y")))
    text = json.dumps(qa_summary_card(other))
    assert "1 allocation card is held for them" in text and "None of them" not in text
    assert everyone  # the council loaded


def test_qa_summary_and_completion_cards_carry_no_case_refs() -> None:
    for name in ("qa_summary", "completion"):
        assert not re.search(r"C-\d{6}", json.dumps(CARDS[name]()))
