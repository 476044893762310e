"""A large, seeded council history for the report benchmarks (and anyone else who needs one).

Five years at the default scale is about 12 teams, 150 staff, 20,000 cases, 30,000 audits,
200,000 domain grades and 60,000 actions. Rows are built in Python from one seeded
``random.Random`` (the same arguments give the same database, byte for byte in content) and
written with SQLAlchemy Core ``insert()`` executemany in large batches inside one
transaction, with explicit primary keys so nothing has to be read back. It works on SQLite
and PostgreSQL (sequences are moved past the explicit ids afterwards).

The history is shaped like a Lambeth-style QAF: every month an allocation run of about 500
audits, re-audits of Inadequate / Requires Improvement cases picked up around their due
month (some late, some never), grades skewed to Good, actions on most audits with roughly
one in eight done late, a few still open. No name, date of birth or free text about a child
appears: case references are pseudonymous (``BC000123``) and narrative answers are stock
phrases.
"""

from __future__ import annotations

import random
import time as clock
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from qa.framework import Framework
from qa.framework_file import bundled_framework_path, load_framework
from store.models import (
    AllocationRun,
    Audit,
    AuditAction,
    Case,
    DomainGrade,
    Moderation,
    ModerationDomain,
    Staff,
    Team,
)

DEFAULT_SEED: Final = 20261121
DEFAULT_END_MONTH: Final = "2026-10"
BATCH: Final = 20_000

GRADE_WEIGHTS: Final = (0.08, 0.50, 0.30, 0.12)  # best grade first
REAUDIT_GRADE_WEIGHTS: Final = (0.03, 0.52, 0.33, 0.12)
ACTIONS_BY_RANK: Final = ((0, 1), (1, 2), (2, 4), (3, 5))  # inclusive ranges
STOCK: Final = {
    "strengths": "Visits are regular and the plan is reviewed on time.",
    "worries": "Drift between core groups; the chronology is out of date.",
    "better": "Update the chronology and record management oversight.",
    "celebrate": "Thoughtful direct work, recorded in the child's own words.",
}
#: Stock worries and "needs to be better" answers, drawn at random so themes vary.
WORRIES: Final = (
    "Drift between core groups; the chronology is out of date.",
    "No evidence of direct work; the child's wishes and feelings are not recorded.",
    "Supervision is irregular and does not move the plan on.",
    "Domestic abuse in the home is not reflected in the safety plan.",
    "Home conditions remain poor and neglect is not named as a concern.",
    "Delay in the assessment; the family were not seen within timescales.",
    "The school nurse was not invited to the core group; information sharing is weak.",
    "The transition plan lacks detail about housing and education.",
)
BETTER: Final = (
    "Update the chronology and record management oversight.",
    "Record the child's views in their own words after each visit.",
    "Hold reflective supervision monthly and record the decisions.",
    "Agree a contingency plan with the family and partner agencies.",
    "Complete the transition plan with the young person before the review.",
)


@dataclass(frozen=True)
class Scale:
    """Sizes per year of history (cases and audits) and fixed ones (teams and staff)."""

    teams: int = 12
    staff: int = 150
    cases_per_year: int = 4000
    audits_per_month: int = 500

    def scaled(self, factor: float) -> Scale:
        return Scale(
            teams=max(2, round(self.teams * min(1.0, factor * 4))),
            staff=max(6, round(self.staff * min(1.0, factor * 4))),
            cases_per_year=max(20, round(self.cases_per_year * factor)),
            audits_per_month=max(2, round(self.audits_per_month * factor)),
        )


@dataclass
class GenStats:
    """What was written, and how long it took."""

    years: int
    first_month: str
    last_month: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _month_start(first: date, i: int) -> date:
    index = first.year * 12 + first.month - 1 + i
    return date(index // 12, index % 12 + 1, 1)


class _Writer:
    """Buffers rows per table and flushes them in FK order with executemany."""

    ORDER: Final = ("teams", "staff", "cases", "allocation_runs", "audits", "domain_grades",
                    "audit_actions", "moderations", "moderation_domains")

    def __init__(self, conn: AsyncConnection, batch: int) -> None:
        self.conn = conn
        self.batch = batch
        self.tables: dict[str, Table] = {
            m.__table__.name: m.__table__  # type: ignore[attr-defined]
            for m in (Team, Staff, Case, AllocationRun, Audit, DomainGrade, AuditAction,
                      Moderation, ModerationDomain)
        }
        self.buffers: dict[str, list[dict[str, Any]]] = {n: [] for n in self.ORDER}
        self.counts: dict[str, int] = dict.fromkeys(self.ORDER, 0)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.buffers[table].append(row)

    def full(self) -> bool:
        return sum(len(b) for b in self.buffers.values()) >= self.batch

    async def flush(self) -> None:
        for name in self.ORDER:
            rows = self.buffers[name]
            if rows:
                await self.conn.execute(insert(self.tables[name]), rows)
                self.counts[name] += len(rows)
                self.buffers[name] = []


async def generate(
    engine: AsyncEngine,
    *,
    years: int = 5,
    end_month: str = DEFAULT_END_MONTH,
    seed: int = DEFAULT_SEED,
    scale: float = 1.0,
    framework: Framework | None = None,
    batch: int = BATCH,
) -> GenStats:
    """Fill an empty, migrated database with ``years`` of history ending with ``end_month``."""
    started = clock.perf_counter()
    fw = framework or load_framework(bundled_framework_path("lambeth_like"))
    zone = ZoneInfo(fw.timezone)
    sizes = Scale().scaled(scale)
    rng = random.Random(f"{seed}:{years}:{scale}")
    months = 12 * years
    end = date.fromisoformat(end_month + "-01")
    first = _month_start(end, -(months - 1))
    grades = [g.key for g in fw.grades]
    areas = list(fw.areas)
    tools = {a: fw.tool_for_area(a) for a in areas}
    now = datetime.combine(_month_start(end, 1) + timedelta(days=4), time(12), tzinfo=zone)

    def at(day: date, hour: int, minute: int) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)

    async with engine.begin() as conn:
        w = _Writer(conn, batch)
        # -- teams and staff: 1 manager per team, the rest a mix of auditing roles
        for t in range(1, sizes.teams + 1):
            w.add("teams", {"id": t, "name": f"Team {t:02d}"})
        staff_by_team: dict[int, list[str]] = {t: [] for t in range(1, sizes.teams + 1)}
        auditors: list[tuple[str, int]] = []
        for s in range(1, sizes.staff + 1):
            team = (s - 1) % sizes.teams + 1
            sid = f"S{s:04d}"
            role = "team_manager" if s <= sizes.teams else rng.choice(
                ["social_worker", "social_worker", "advanced_practitioner", "iro", "cp_chair"])
            w.add("staff", {"staff_id": sid, "name": f"Staff {s:04d}",
                            "email": f"staff{s:04d}@council.example", "roles": [role],
                            "team_id": team, "manager_id": f"S{team:04d}", "active": True,
                            "updated_at": now})
            staff_by_team[team].append(sid)
            if role != "social_worker":
                auditors.append((sid, team))
        # -- cases, opened through the period (plus a backlog), some closed later
        n_cases = sizes.cases_per_year * years
        cases: list[tuple[str, int, str, int, int | None]] = []  # ref, team, area, open, close
        for c in range(1, n_cases + 1):
            ref = f"BC{c:06d}"
            team = rng.randint(1, sizes.teams)
            area = rng.choice(areas)
            opened = rng.randint(-12, months - 1)  # month index; negative = before the history
            closed = opened + rng.randint(6, 36) if rng.random() < 0.6 else None
            closed = closed if closed is not None and closed < months else None
            opened_on = _month_start(first, opened) + timedelta(days=rng.randint(0, 27))
            closed_on = _month_start(first, closed) + timedelta(days=rng.randint(0, 27)) \
                if closed is not None else None
            w.add("cases", {"case_ref": ref, "team_id": team,
                            "social_worker_id": rng.choice(staff_by_team[team]), "area": area,
                            "opened_on": opened_on, "status": "closed" if closed_on else "open",
                            "closed_on": closed_on, "tags": [], "updated_at": now})
            cases.append((ref, team, area, opened, closed))
        await w.flush()

        audit_id = grade_id = action_id = moderation_id = 0
        pending: dict[int, int] = {}  # case index -> month index a re-audit is due
        for i in range(months):
            month0 = _month_start(first, i)
            month_key = f"{month0.year}-{month0.month:02d}"
            last = i == months - 1
            allocated_at = at(month0 + timedelta(days=rng.randint(0, 2)), 9, 0)
            deadline = allocated_at.astimezone(zone).date() + timedelta(days=21)
            w.add("allocation_runs", {
                "id": i + 1, "key": f"monthly:{month_key}", "kind": "monthly",
                "month": month_key, "seed": rng.getrandbits(48), "created_at": allocated_at,
                "created_by": "bench", "deadline": deadline, "summary": {}})
            # The month's moderation run (SPEC R10); its rounds follow the audits below.
            w.add("allocation_runs", {
                "id": months + i + 1, "key": f"moderation:{month_key}", "kind": "moderation",
                "month": month_key, "seed": rng.getrandbits(48), "created_at": allocated_at,
                "created_by": "bench", "deadline": deadline, "summary": {}})
            chosen: dict[int, str] = {}
            for ci, due in list(pending.items()):
                if due <= i + 1 and rng.random() < 0.5 and len(chosen) < sizes.audits_per_month // 2:
                    chosen[ci] = "reaudit"
            tries = 0
            while len(chosen) < sizes.audits_per_month and tries < sizes.audits_per_month * 20:
                tries += 1
                ci = rng.randrange(len(cases))
                _, _, _, opened, closed = cases[ci]
                if ci in chosen or opened > i or (closed is not None and closed <= i):
                    continue
                chosen[ci] = "random"
            for ci, reason in chosen.items():
                ref, team, area, _, _ = cases[ci]
                audit_id += 1
                while True:
                    auditor, auditor_team = rng.choice(auditors)
                    if auditor_team != team:
                        break
                done = rng.random() < (0.65 if last else 0.97)
                submitted_at = grade = outcomes = answers = None
                safeguarding = False
                if done:
                    span = 27 if not last else 20
                    submitted_at = allocated_at + timedelta(
                        days=rng.randint(1, span), seconds=rng.randint(0, 8 * 3600))
                    weights = REAUDIT_GRADE_WEIGHTS if reason == "reaudit" else GRADE_WEIGHTS
                    rank = rng.choices(range(len(grades)), weights=weights[: len(grades)])[0]
                    grade = grades[rank]
                    outcomes = (rng.choice(["met", "on_the_way"]) if grade in fw.good_or_better
                                else rng.choice(["met", "on_the_way", "not_met"]))
                    answers = dict(STOCK)
                    answers["worries"] = rng.choice(WORRIES)
                    answers["better"] = rng.choice(BETTER)
                    if rng.random() >= 0.22:
                        answers["celebrate"] = ""
                    safeguarding = rng.random() < (0.08 if rank == len(grades) - 1 else 0.01)
                    given: list[dict[str, Any]] = []
                    for d in tools[area].domains:
                        dr = min(len(grades) - 1, max(0, rank + rng.choice((-1, 0, 0, 0, 1))))
                        grade_id += 1
                        given.append({"id": grade_id, "audit_id": audit_id, "domain": d.key,
                                      "grade": grades[dr], "moderated_grade": None})
                        w.add("domain_grades", given[-1])
                    lo, hi = ACTIONS_BY_RANK[min(rank, len(ACTIONS_BY_RANK) - 1)]
                    for seq in range(1, min(fw.max_actions, rng.randint(lo, hi)) + 1):
                        action_id += 1
                        local_day = submitted_at.astimezone(zone).date()
                        due_on = local_day + timedelta(days=rng.randint(14, 60))
                        done_at: datetime | None = None
                        if rng.random() < 0.96:
                            slip = rng.choice((-10, -5, -2, -1, 0, 0, 1, 3, 8, 20))
                            done_day = max(local_day, due_on + timedelta(days=slip))
                            done_at = at(done_day, rng.randint(8, 18), rng.randint(0, 59))
                            if done_at > now:
                                done_at = None
                        w.add("audit_actions", {
                            "id": action_id, "audit_id": audit_id, "seq": seq,
                            "what": "Review the plan with the family and update the record.",
                            "owner_id": rng.choice(staff_by_team[team]), "due_on": due_on,
                            "priority": rng.choice(("high", "medium", "low")),
                            "status": "done" if done_at else "open",
                            "created_at": submitted_at, "done_at": done_at})
                    if grade in fw.reaudit_months:
                        pending[ci] = i + fw.reaudit_months[grade]
                    else:
                        pending.pop(ci, None)
                audit_row = {
                    "id": audit_id, "run_id": i + 1, "case_ref": ref, "auditor_id": auditor,
                    "delegate_id": None, "team_id": team, "area": area,
                    "tool": tools[area].key, "month": month_key, "reason": reason,
                    "status": "submitted" if done else "allocated",
                    "allocated_at": allocated_at, "deadline": deadline,
                    "look_back_from": month0 - timedelta(days=183), "look_back_to": month0,
                    "draft": None, "draft_saved_at": None, "submitted_at": submitted_at,
                    "submitted_by": auditor if done else None, "overall_grade": grade,
                    "outcomes": outcomes, "answers": answers,
                    "safeguarding_concern": safeguarding, "version": 1 if done else 0,
                    "moderated_grade": None}
                w.add("audits", audit_row)
                if done and (grade in fw.moderation.always
                             or rng.random() < fw.moderation.rate):
                    moderation_id += 1
                    audit_row["moderated_grade"] = _moderate(
                        w, rng, moderation_id, months + i + 1, audit_id, auditor, team,
                        auditors, grades, rank, given, submitted_at, now, zone)
            if w.full():
                await w.flush()
        await w.flush()
        if conn.dialect.name == "postgresql":
            for table in ("teams", "allocation_runs", "audits", "domain_grades",
                          "audit_actions", "moderations"):
                await conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"))
    if engine.dialect.name == "postgresql":
        # Statistics and the visibility map (index-only scans) as autovacuum leaves them on
        # a live database (insert-triggered since PostgreSQL 13); do it now, not in minutes.
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    last_month = _month_start(first, months - 1)
    return GenStats(years=years, first_month=f"{first.year}-{first.month:02d}",
                    last_month=f"{last_month.year}-{last_month.month:02d}",
                    rows=dict(w.counts), seconds=clock.perf_counter() - started)


def _moderate(w: _Writer, rng: random.Random, moderation_id: int, run_id: int, audit_id: int,
              auditor: str, team: int, auditors: list[tuple[str, int]], grades: list[str],
              rank: int, given: list[dict[str, Any]], submitted_at: datetime, now: datetime,
              zone: ZoneInfo) -> str | None:
    """One moderation round: most agree, about one in six regrades (one grade up or down,
    overall and a domain or two), the latest ones still to decide. A regrade's grades are
    kept on the audit's rows too, as the store keeps them; returns its overall grade."""
    while True:
        moderator, moderator_team = rng.choice(auditors)
        if moderator != auditor and moderator_team != team:
            break
    decided_at = submitted_at + timedelta(days=rng.randint(8, 30), hours=rng.randint(0, 6))
    allocated_at = submitted_at + timedelta(days=rng.randint(1, 7))
    row: dict[str, Any] = {
        "id": moderation_id, "run_id": run_id, "audit_id": audit_id, "round": 1,
        "moderator_id": moderator, "status": "allocated", "allocated_at": allocated_at,
        "due_on": (allocated_at + timedelta(days=14)).astimezone(zone).date(),
        "decided_at": None, "decided_by": None, "auditor_overall": grades[rank],
        "overall_grade": None, "reason": None}
    if decided_at < now:
        regrade = rng.random() < 0.16
        moved = min(len(grades) - 1, max(0, rank + rng.choice((-1, 1, 1)))) if regrade else rank
        regrade = moved != rank
        row |= {"status": "regraded" if regrade else "agreed", "decided_at": decided_at,
                "decided_by": moderator, "overall_grade": grades[moved],
                "reason": "Evidence on the record does not support the grade." if regrade
                else None}
        for dg in given:
            dr = grades.index(dg["grade"])
            shift = moved - rank if regrade and rng.random() < 0.5 else 0
            mr = min(len(grades) - 1, max(0, dr + shift))
            w.add("moderation_domains", {"moderation_id": moderation_id, "domain": dg["domain"],
                                         "auditor_grade": grades[dr],
                                         "moderator_grade": grades[mr]})
            if regrade:
                dg["moderated_grade"] = grades[mr]
    w.add("moderations", row)
    return row["overall_grade"] if row["status"] == "regraded" else None


def counts_line(stats: GenStats) -> str:
    """One human line for logs and reports."""
    r = stats.rows
    return (f"{stats.years}y {stats.first_month}..{stats.last_month}: {r.get('audits', 0)} audits, "
            f"{r.get('domain_grades', 0)} domain grades, {r.get('audit_actions', 0)} actions, "
            f"{r.get('cases', 0)} cases in {stats.seconds:.1f}s")

