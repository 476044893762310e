"""Auditor completion (SPEC R11): reminders, manager notes, the QA team's ``status`` command, and
the ``qabot allocate`` / ``qabot jobs`` commands."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from bench.datagen import load_council
from cards.common import teams_findings
from qabot.app import build_services
from qabot.cli import main
from qabot.services import Services
from scheduler.jobs import run_job
from store.db import make_engine, make_sessionmaker
from store.models import AllocationRun, Audit, OutboxMessage, Staff, Team
from tests.fakes import message, personal_conversation_id
from tests.test_allocation_job import (
    DEC_RUN,
    LONDON,
    council,
    load,
    role_ids,
    table_counts,
    user_for,
)


def at(day: int, month: int = 12, year: int = 2026, hour: int = 9, minute: int = 30) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


async def december(ctx: Services, **load_args: Any) -> list[Audit]:
    """The generated council with December 2026 allocated (deadline Tuesday 22 December)."""
    await load(ctx, **load_args)
    # 26 auditors; the assistant director manages every team, so gets none (issue 12).
    assert "allocated 25" in await run_job(ctx, "allocation", DEC_RUN)
    async with ctx.sessions() as session:
        return list(await session.scalars(select(Audit).order_by(Audit.id)))


async def submit(ctx: Services, audit_id: int) -> None:
    async with ctx.sessions.begin() as session:
        await session.execute(update(Audit).where(Audit.id == audit_id).values(
            status="submitted", submitted_at=datetime(2026, 12, 10, 12, tzinfo=UTC),
            overall_grade="good"))


async def messages_with(ctx: Services, prefix: str) -> list[OutboxMessage]:
    async with ctx.sessions() as session:
        rows = await session.scalars(select(OutboxMessage).where(
            OutboxMessage.dedupe_key.like(f"{prefix}%")).order_by(OutboxMessage.id))
        return list(rows)


# ---------------------------------------------------------------------------------------------
# Reminders and manager notes


async def test_reminders_go_on_the_right_working_day_only_and_once(ctx) -> None:
    audits = await december(ctx)
    assert ctx.framework.reminder_working_days_before == 3
    done = audits[0]
    await submit(ctx, done.id)

    assert "0 reminder(s)" in await run_job(ctx, "completion_reminders", at(16))
    result = await run_job(ctx, "completion_reminders", at(17))  # Thursday: 3 working days before
    assert result.startswith("2026-12-17: 24 reminder(s) for audits due 2026-12-22"), result
    reminders = await messages_with(ctx, "completion:reminder:")
    assert sorted(m.staff_id for m in reminders) == sorted(
        a.auditor_id for a in audits if a.id != done.id)
    by_auditor = {a.auditor_id: a for a in audits}
    for m in reminders:
        card = m.activity["card"]
        assert teams_findings(card) == []
        text = json.dumps(card)
        assert by_auditor[m.staff_id].case_ref in text and "Tuesday 22 December 2026" in text
        assert "Open audit form" in text

    assert "0 reminder(s)" in await run_job(ctx, "completion_reminders", at(17, hour=15))
    assert "0 reminder(s)" in await run_job(ctx, "completion_reminders", at(18))
    assert "not a working day" in await run_job(ctx, "completion_reminders", at(19))
    assert len(await messages_with(ctx, "completion:reminder:")) == 24


async def test_line_manager_is_told_once_after_the_deadline(ctx) -> None:
    audits = await december(ctx)
    c = council()
    staff = {s.staff_id: s for s in c.staff}
    await submit(ctx, audits[0].id)
    overdue = [a for a in audits if a.id != audits[0].id]

    assert "0 manager note(s)" in await run_job(ctx, "completion_reminders", at(22))
    result = await run_job(ctx, "completion_reminders", at(23))
    managers = Counter(staff[a.auditor_id].manager_id for a in overdue)
    assert f"{len(managers)} manager note(s) about 24 overdue audit(s)" in result, result
    notes = await messages_with(ctx, "completion:overdue:")
    assert sorted(n.staff_id for n in notes) == sorted(managers)
    for note in notes:
        text = note.activity["text"]
        assert "Tuesday 22 December 2026" in text
        for a in audits:
            mine = staff[a.auditor_id].manager_id == note.staff_id and a in overdue
            assert (a.case_ref in text) == mine, (note.staff_id, a.case_ref)
            if mine:
                assert staff[a.auditor_id].name in text
    # The QA lead manages the IROs and CP chairs: one line each, with their count.
    qa_lead = role_ids(c, "qa_lead")[0]
    [lead_note] = [n for n in notes if n.staff_id == qa_lead]
    assert lead_note.activity["text"].count("\n- ") == managers[qa_lead]

    for later in (at(23, hour=16), at(29), at(30)):  # (24th: a council closure day)
        assert "0 manager note(s)" in await run_job(ctx, "completion_reminders", later)
    assert len(await messages_with(ctx, "completion:overdue:")) == len(managers)


# ---------------------------------------------------------------------------------------------
# The status command


def _rows(card: dict[str, Any]) -> list[list[str]]:
    [table] = [item for item in card["body"] if item.get("type") == "Table"]
    return [[cell["items"][0]["text"] for cell in row["cells"]] for row in table["rows"]]


async def test_status_shows_completion_per_team_to_the_qa_team_only(service) -> None:
    fc, ctx = service.connector, service.ctx
    c = council()
    lead, worker = role_ids(c, "qa_lead")[0], role_ids(c, "social_worker")[0]
    audits = await december(ctx, link=True, unlinked=frozenset(
        s.staff_id for s in c.staff if s.staff_id not in (lead, worker)))
    await submit(ctx, audits[0].id)
    async with ctx.sessions.begin() as session:
        await session.execute(update(Audit).where(Audit.id == audits[1].id).values(
            status="draft", draft_saved_at=datetime(2026, 12, 5, tzinfo=UTC)))
    service.clock.set(datetime(2026, 12, 23, 10, tzinfo=UTC))

    lead_user = user_for(lead)
    await service.post(message("status", user=lead_user, service_url=fc.url))
    conv = personal_conversation_id(lead_user)
    await fc.wait_for(lambda f: any("Audit completion" in json.dumps(x) for x in f.cards(conv)))
    [card] = [x for x in fc.cards(conv) if "Audit completion" in json.dumps(x)]
    assert teams_findings(card) == []
    text = json.dumps(card)
    assert "December 2026" in text and "1 of 25 audits submitted" in text
    assert "C-0" not in text  # counts only

    async with ctx.sessions() as session:
        team_of = dict((await session.execute(select(Staff.staff_id, Team.name).outerjoin(
            Team, Team.id == Staff.team_id))).all())
    expected: dict[str, list[int]] = {}
    for a in audits:
        row = expected.setdefault(team_of[a.auditor_id] or "No team", [0, 0, 0, 0])
        row[0] += 1
        row[1] += a.id == audits[0].id
        row[2] += a.id == audits[1].id
        row[3] += a.id != audits[0].id  # everything unsubmitted is past the 22nd
    rows = _rows(card)
    assert rows[0] == ["Auditor's team", "Allocated", "Submitted", "Draft", "Overdue"]
    assert {r[0]: [int(x) for x in r[1:]] for r in rows[1:-1]} == expected
    assert rows[-1] == ["Total", "25", "1", "1", "24"]

    worker_user = user_for(worker)
    await service.post(message("status", user=worker_user, service_url=fc.url))
    await fc.wait_for(lambda f: bool(f.texts(personal_conversation_id(worker_user))))
    [refusal] = fc.texts(personal_conversation_id(worker_user))
    assert "QA team only" in refusal and "Audit completion" not in refusal


# ---------------------------------------------------------------------------------------------
# The command line


async def _load_into(url: str) -> None:
    engine = make_engine(url)
    try:
        await load_council(make_sessionmaker(engine), council())
    finally:
        await engine.dispose()


async def _counts(url: str) -> dict[str, int]:
    from qabot.settings import Settings

    ctx = build_services(Settings(database_url=url))
    try:
        return await table_counts(ctx)
    finally:
        await ctx.close()


@pytest.fixture
def cli_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.delenv("QABOT_FRAMEWORK", raising=False)
    asyncio.run(_load_into(sqlite_url))
    return sqlite_url


def test_cli_allocate_previews_allocates_once_and_reports(cli_db, capsys) -> None:
    assert main(["allocate", "--month", "2026-12", "--dry-run", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "2026-12: would allocate 25 audit(s) to 25 auditor(s), seed 7" in out
    assert "By area of planning:" in out and "By team (the case's team):" in out
    assert "care_leavers: 70 wanted" in out  # shortfall: more wanted than auditors
    assert "Not reachable in Teams (not linked):" in out
    assert out.rstrip().endswith("Dry run: nothing was written.")
    assert asyncio.run(_counts(cli_db))["allocation_runs"] == 0

    assert main(["allocate", "--month", "2026-12", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "2026-12: allocated 25 audit(s)" in out and "27 message(s) queued" in out
    counts = asyncio.run(_counts(cli_db))
    assert counts["allocation_runs"] == 1 and counts["audits"] == 25 and counts["outbox"] == 27

    assert main(["allocate", "--month", "2026-12", "--seed", "8"]) == 0
    assert "already allocated (run #1, seed 7): nothing changed" in capsys.readouterr().out
    assert main(["jobs", "run", "allocation", "--at", "2026-12-01T09:00"]) == 0
    assert "already allocated" in capsys.readouterr().out
    assert asyncio.run(_counts(cli_db)) == counts


def test_cli_jobs_run_at_and_list(cli_db, capsys) -> None:
    assert main(["jobs", "run", "allocation", "--at", "2027-01-01T09:00"]) == 0
    assert "nothing to do yet" in capsys.readouterr().out
    assert main(["jobs", "run", "allocation", "--at", "2027-01-04T09:00"]) == 0
    assert capsys.readouterr().out.startswith("2027-01: allocated 25 audit(s)")
    assert main(["jobs", "run", "allocation", "--at", "2027-01-04T09:00"]) == 0
    assert "already allocated" in capsys.readouterr().out
    assert main(["jobs", "run", "completion_reminders", "--at", "2027-01-18T09:30"]) == 0
    # 4 Jan + 15 working days = 25 Jan; 3 working days before it is the 20th.
    assert "0 reminder(s) for audits due 2027-01-21" in capsys.readouterr().out
    assert main(["jobs", "run", "completion_reminders", "--at", "2027-01-20T09:30"]) == 0
    assert "25 reminder(s) for audits due 2027-01-25" in capsys.readouterr().out
    assert main(["jobs", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "next 20" in lines["allocation"] and "09:00:00" in lines["allocation"]
    assert "next 20" in lines["completion_reminders"] and "09:30:00" in lines["completion_reminders"]


def test_cli_allocate_refuses_a_bad_month(cli_db, capsys) -> None:
    assert main(["allocate", "--month", "December"]) == 2
    assert "expected YYYY-MM" in capsys.readouterr().err
    assert asyncio.run(_counts(cli_db))["allocation_runs"] == 0


def test_allocation_run_keeps_its_seed(cli_db, capsys) -> None:
    # A month ahead of the machine's clock, so its allocation day is the planned one (a
    # month allocated late counts its deadline from the day it is allocated).
    assert main(["allocate", "--month", "2030-03"]) == 0
    seed = int(capsys.readouterr().out.split("seed ")[1].split(",")[0])

    async def stored() -> tuple[int, date]:
        engine = make_engine(cli_db)
        try:
            async with make_sessionmaker(engine)() as session:
                run = await session.scalar(select(AllocationRun))
                return run.seed, run.deadline
        finally:
            await engine.dispose()

    # Fri 1 Mar 2030 + 15 working days (no bank holiday in between)
    assert asyncio.run(stored()) == (seed, date(2030, 3, 22))


def test_cli_warns_about_a_month_whose_deadline_has_passed(cli_db, capsys) -> None:
    assert main(["allocate", "--month", "2020-01", "--dry-run", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "Warning: the deadline for 2020-01" in out and "has already passed" in out
    assert "would allocate 25 audit(s)" in out  # a warning, never a refusal


def test_cli_allocate_ends_with_the_next_step_for_unreachable_people(cli_db, capsys) -> None:
    assert main(["allocate", "--month", "2026-12", "--seed", "7"]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert lines[-1].startswith("Next step: 27 people are not linked to Teams, so their "
                                "messages are held (not lost).")
    assert "The bot is not installed in any team yet" in lines[-1]
    assert "`qabot staff unlinked`" in lines[-1]


def test_cli_staff_unlinked_says_who_and_why(cli_db, capsys) -> None:
    assert main(["allocate", "--month", "2026-12", "--seed", "7"]) == 0
    capsys.readouterr()
    assert main(["staff", "unlinked"]) == 0
    out = capsys.readouterr().out
    c = council()
    assert out.startswith(f"{len(c.staff)} of {len(c.staff)} active people cannot be reached")
    assert "The bot is not installed in any team yet" in out
    tm = next(s for s in c.staff if "team_manager" in s.roles)
    assert f"{tm.staff_id} {tm.name} <{tm.email}> (Team manager, {tm.team})" in out
    assert "(Team manager, Early Help North) - 1 message waiting" in out  # their card
    assert "  why: the bot is not installed in any team yet" in out
    assert "How to fix:" in out and "C-0" not in out  # people, never cases
