"""Leadership digest (R12) and export (R13): exact figures on small hand-built data.

Fixtures have report_* names so they never clash with tests/conftest.py. PostgreSQL runs
when TEST_DATABASE_URL is set, in a sibling database (``<name>_reports``) so a colleague's
test run against the same server cannot drop the schema under these tests.

The data sits around the March 2026 British Summer Time change (29 March), so period
edges are tested in local time: March ends at 2026-03-31 23:00 UTC.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cards.digest import digest_text as card_text
from qa.digest import channel_view
from qa.framework import Framework
from qa.framework_file import bundled_framework_path, load_framework
from qa.periods import Period
from reports.digest import Digest, compute_digest
from reports.export import ACTION_COLUMNS, AUDIT_COLUMNS, DOMAIN_COLUMNS, export
from store.db import make_engine, make_sessionmaker
from store.models import (
    AllocationRun,
    Audit,
    AuditAction,
    Case,
    DomainGrade,
    Staff,
    Team,
)

PG_URL = os.environ.get("TEST_DATABASE_URL", "")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def report_framework() -> Framework:
    return load_framework(bundled_framework_path("lambeth_like"))


@dataclass
class Builder:
    """Hand-built audits, one allocation run per month, cases created on first use."""

    sessions: async_sessionmaker[AsyncSession]
    runs: dict[str, int] = field(default_factory=dict)
    cases: set[str] = field(default_factory=set)
    next_id: int = 0

    async def base(self) -> None:
        async with self.sessions.begin() as s:
            s.add_all([Team(id=1, name="Alpha"), Team(id=2, name="Beta")])
            await s.flush()
            s.add_all([
                Staff(staff_id="A1", name="Ann Auditor", email="a1@x.example", roles=["iro"],
                      team_id=1),
                Staff(staff_id="B1", name="Ben Auditor", email="b1@x.example", roles=["iro"],
                      team_id=2),
            ])

    async def audit(self, ref: str, month: str, *, team: int = 1, area: str = "early_help",
                    status: str = "submitted", submitted: datetime | None = None,
                    grade: str | None = None, answers: dict[str, Any] | None = None,
                    safeguarding: bool = False, domains: dict[str, str] | None = None,
                    closed_on: date | None = None,
                    actions: list[dict[str, Any]] | None = None) -> int:
        self.next_id += 1
        audit_id = self.next_id
        async with self.sessions.begin() as s:
            if month not in self.runs:
                run = AllocationRun(key=f"monthly:{month}", kind="monthly", month=month, seed=1,
                                    created_by="test", deadline=date(2030, 1, 1))
                s.add(run)
                await s.flush()
                self.runs[month] = run.id
            if ref not in self.cases:
                s.add(Case(case_ref=ref, team_id=team, area=area, opened_on=date(2024, 1, 1),
                           status="closed" if closed_on else "open", closed_on=closed_on))
                self.cases.add(ref)
                await s.flush()
            s.add(Audit(
                id=audit_id, run_id=self.runs[month], case_ref=ref, auditor_id="B1", team_id=team,
                area=area, tool="case_audit", month=month, reason="random", status=status,
                allocated_at=utc(2024, 1, 1), deadline=date(2030, 1, 1),
                look_back_from=date(2024, 1, 1), look_back_to=date(2024, 1, 1),
                submitted_at=submitted, submitted_by="B1" if submitted else None,
                overall_grade=grade, outcomes="met" if grade else None,
                answers=answers if answers is not None else ({"celebrate": ""} if grade else None),
                safeguarding_concern=safeguarding))
            await s.flush()
            for d, g in (domains or {}).items():
                s.add(DomainGrade(audit_id=audit_id, domain=d, grade=g))
            for seq, a in enumerate(actions or [], start=1):
                s.add(AuditAction(audit_id=audit_id, seq=seq, owner_id="A1", priority="high",
                                  what=a.get("what", f"action {seq}"), due_on=a["due"],
                                  status=a.get("status", "done" if a.get("done") else "open"),
                                  created_at=a["created"], done_at=a.get("done")))
        return audit_id


@pytest.fixture
async def report_db(db_url: str) -> AsyncIterator[tuple[AsyncEngine, Builder]]:
    engine = make_engine(db_url)
    builder = Builder(make_sessionmaker(engine))
    await builder.base()
    try:
        yield engine, builder
    finally:
        await engine.dispose()


ACTIONS = [  # March 2026 ends 2026-03-31 23:00 UTC (BST from 29 March)
    {"created": utc(2026, 1, 15), "due": date(2026, 2, 28)},  # x1 open, overdue
    {"created": utc(2026, 3, 5), "due": date(2026, 3, 31)},  # x2 open, overdue (last day)
    {"created": utc(2026, 3, 5), "due": date(2026, 4, 1)},  # x3 open, not yet due
    {"created": utc(2026, 2, 1), "due": date(2026, 3, 15),
     "done": utc(2026, 3, 15, 18)},  # x4 done on time
    {"created": utc(2026, 2, 1), "due": date(2026, 3, 10), "done": utc(2026, 3, 12)},  # x5 late
    {"created": utc(2026, 2, 1), "due": date(2026, 3, 20),
     "done": utc(2026, 4, 2)},  # x6 done after the end: open and overdue at it
    {"created": utc(2026, 1, 2), "due": date(2026, 1, 20), "done": utc(2026, 2, 1)},  # x7
    {"created": utc(2026, 3, 1), "due": date(2026, 3, 2), "status": "cancelled"},  # x8
    {"created": utc(2026, 4, 2), "due": date(2026, 4, 10)},  # x9 after the period
    {"created": utc(2026, 3, 1), "due": date(2026, 3, 1),
     "what": "=HYPERLINK(\"http://x\")", "done": utc(2026, 3, 1, 9)},  # x10 on time
]

CASE_REFS = ["CR-1001", "CR-1002", "CR-1003", "CR-1004", "CR-1005", "CR-1006", "CR-1007",
             "CR-1008", "CR-2001", "CR-2002", "CR-2003", "CR-2004", "CR-2005", "CR-2006",
             "CR-2007", "CR-2008", "CR-2009", "CR-3001", "CR-3002"]


async def seed(b: Builder) -> None:
    # March 2026 allocations
    await b.audit("CR-1001", "2026-03", submitted=utc(2026, 3, 10, 10), grade="good",
                  answers={"celebrate": "Lovely direct work", "strengths": "x"},
                  domains={"assessment": "good", "planning": "requires_improvement"},
                  actions=ACTIONS)
    await b.audit("CR-1002", "2026-03", area="help_and_protection",
                  submitted=utc(2026, 3, 31, 22, 30),  # 23:30 BST: still March
                  grade="inadequate", safeguarding=True, answers={"celebrate": "   "},
                  domains={"assessment": "inadequate"})
    await b.audit("CR-1003", "2026-03", team=2, status="allocated")
    await b.audit("CR-1004", "2026-03", team=2, area="children_in_care",
                  submitted=utc(2026, 3, 31, 23, 30), grade="good")  # 00:30 BST 1 April
    await b.audit("CR-1005", "2026-03", team=2, status="cancelled")
    # February allocations
    await b.audit("CR-1006", "2026-02", submitted=utc(2026, 3, 2), grade="requires_improvement")
    await b.audit("CR-1007", "2026-02", submitted=utc(2026, 2, 10), grade="good",
                  answers={"celebrate": "Great"})
    await b.audit("CR-1008", "2026-02", team=2, submitted=utc(2026, 2, 20), grade="good",
                  domains={"assessment": "good"})
    # Re-audit history (months in 2025)
    await b.audit("CR-2001", "2025-07", submitted=utc(2025, 7, 15), grade="inadequate")
    await b.audit("CR-2002", "2025-08", submitted=utc(2025, 8, 10), grade="inadequate")
    await b.audit("CR-2003", "2025-06", submitted=utc(2025, 6, 1), grade="inadequate")
    await b.audit("CR-2003", "2025-12", submitted=utc(2025, 12, 1), grade="good")
    await b.audit("CR-2004", "2025-03", submitted=utc(2025, 3, 20), grade="requires_improvement")
    await b.audit("CR-2005", "2025-04", submitted=utc(2025, 4, 30, 22, 30),  # 30 April local
                  grade="requires_improvement")
    await b.audit("CR-2006", "2025-05", submitted=utc(2025, 5, 1, 12), grade="requires_improvement")
    await b.audit("CR-2007", "2025-07", submitted=utc(2025, 7, 1), grade="inadequate",
                  closed_on=date(2026, 2, 1))
    await b.audit("CR-2008", "2025-05", submitted=utc(2025, 5, 1, 12), grade="inadequate")
    await b.audit("CR-2008", "2026-04", status="allocated")
    await b.audit("CR-2009", "2025-01", submitted=utc(2025, 1, 10), grade="requires_improvement")
    await b.audit("CR-2009", "2026-04", submitted=utc(2026, 4, 5), grade="good")
    # Quarter edges (GMT in winter: local = UTC)
    await b.audit("CR-3001", "2025-12", submitted=utc(2025, 12, 31, 23, 59, 59),
                  grade="outstanding")
    await b.audit("CR-3002", "2026-01", submitted=utc(2026, 1, 1), grade="outstanding")


def digest_text(d: Digest, framework: Framework) -> str:
    """The printed digest: the channel's protected view as plain text."""
    return card_text(channel_view(d, framework))


def grades_of(d: Any) -> dict[str, tuple[int, int]]:
    return {g.grade: (g.count, g.previous) for g in d.grades}


# --------------------------------------------------------------------------- periods


def test_periods() -> None:
    m = Period.parse("2026-03")
    assert (m.start, m.end, m.month_keys, m.label) == (
        date(2026, 3, 1), date(2026, 4, 1), ("2026-03",), "March 2026")
    assert m.previous().key == "2026-02" and m.next().key == "2026-04"
    assert Period.parse("2026-01").previous().key == "2025-12"
    q = Period.parse("2026-q1")
    assert (q.key, q.start, q.end, q.month_keys) == (
        "2026-Q1", date(2026, 1, 1), date(2026, 4, 1), ("2026-01", "2026-02", "2026-03"))
    assert q.previous().key == "2025-Q4" and q.next().key == "2026-Q2"
    assert Period.quarter_of(date(2026, 11, 1)).key == "2026-Q4"
    assert q.label == "Q1 2026 (January to March)"
    for bad in ("2026-13", "2026-Q5", "26-01", "2026/01", ""):
        with pytest.raises(ValueError):
            Period.parse(bad)


# --------------------------------------------------------------------------- digest


async def test_monthly_digest_exact_figures(report_db: tuple[AsyncEngine, Builder],
                                            report_framework: Framework) -> None:
    _, b = report_db
    await seed(b)
    d = await compute_digest(b.sessions, report_framework, "2026-03")
    assert (d.period, d.kind, d.start, d.end, d.previous_period) == (
        "2026-03", "month", "2026-03-01", "2026-04-01", "2026-02")
    # allocated in March (cancelled left out), completed by 31 March 23:00 UTC
    assert (d.allocated, d.completed) == (4, 2)
    assert [(t.label, t.allocated, t.completed) for t in d.teams] == [
        ("Alpha", 2, 2), ("Beta", 2, 0)]
    assert {a.key: (a.allocated, a.completed) for a in d.areas} == {
        "early_help": (2, 1), "help_and_protection": (1, 1), "children_in_care": (1, 0),
        "care_leavers": (0, 0)}
    # submitted during March: CR-1001, CR-1002 (23:30 BST), CR-1006 (February's, late)
    assert (d.submitted, d.previous_submitted) == (3, 2)
    assert grades_of(d.grades) == {"outstanding": (0, 0), "good": (1, 2),
                                   "requires_improvement": (1, 0), "inadequate": (1, 0)}
    good = next(g for g in d.grades.grades if g.grade == "good")
    assert (good.change, good.share, good.previous_share, good.share_change) == (
        -1, 33.3, 100.0, -66.7)
    assert (d.grades.good_or_better, d.grades.previous_good_or_better,
            d.grades.good_or_better_change) == (33.3, 100.0, -66.7)
    domains = {x.domain: x.distribution for x in d.domains}
    assert list(domains) == ["assessment", "planning"]  # framework order, graded ones only
    assert grades_of(domains["assessment"])["good"] == (1, 1)
    assert grades_of(domains["assessment"])["inadequate"] == (1, 0)
    assert grades_of(domains["planning"])["requires_improvement"] == (1, 0)
    assert domains["planning"].previous_total == 0
    a = d.actions
    assert (a.raised, a.open, a.overdue, a.done_on_time, a.done_late) == (3, 4, 3, 2, 1)
    r = {x.grade: (x.months, x.pending, x.overdue, x.due_next_period) for x in d.reaudits}
    assert r == {"requires_improvement": (12, 5, 2, 1), "inadequate": (8, 4, 2, 1)}
    assert (d.reaudits_overdue, d.reaudits_due_next) == (4, 2)
    assert (d.celebrate, d.safeguarding_concerns) == (1, 1)


async def test_quarterly_digest_and_edges(report_db: tuple[AsyncEngine, Builder],
                                          report_framework: Framework) -> None:
    _, b = report_db
    await seed(b)
    d = await compute_digest(b.sessions, report_framework, "2026-Q1")
    assert (d.period, d.kind, d.previous_period, d.label) == (
        "2026-Q1", "quarter", "2025-Q4", "Q1 2026 (January to March)")
    assert (d.allocated, d.completed) == (8, 6)
    # 2025-12-31 23:59:59 is Q4; 2026-01-01 00:00 is Q1; 2026-03-31 23:30 UTC is Q2
    assert (d.submitted, d.previous_submitted) == (6, 2)
    assert grades_of(d.grades) == {"outstanding": (1, 1), "good": (3, 1),
                                   "requires_improvement": (1, 0), "inadequate": (1, 0)}
    a = d.actions
    assert (a.raised, a.open, a.overdue, a.done_on_time, a.done_late) == (8, 4, 3, 2, 2)
    r = {x.grade: (x.pending, x.overdue, x.due_next_period) for x in d.reaudits}
    assert r == {"requires_improvement": (5, 2, 2), "inadequate": (4, 2, 1)}
    # the previous quarter, as of its own end: nothing from 2026 counts
    q4 = await compute_digest(b.sessions, report_framework, Period.parse("2025-Q4"))
    assert (q4.submitted, q4.allocated, q4.completed) == (2, 2, 2)
    assert q4.actions.open == 0


async def test_digest_of_an_empty_period(report_db: tuple[AsyncEngine, Builder],
                                         report_framework: Framework) -> None:
    _, b = report_db
    d = await compute_digest(b.sessions, report_framework, "2026-03")
    assert (d.allocated, d.completed, d.submitted, d.celebrate) == (0, 0, 0, 0)
    assert d.grades.total == 0 and d.grades.good_or_better == 0.0
    assert all(r.pending == 0 for r in d.reaudits) and d.domains == ()
    assert "Allocated 0, completed 0" in digest_text(d, report_framework)


async def test_digest_holds_no_case_refs_or_free_text(
        report_db: tuple[AsyncEngine, Builder], report_framework: Framework) -> None:
    _, b = report_db
    await seed(b)
    for period in ("2026-03", "2026-Q1"):
        d = await compute_digest(b.sessions, report_framework, period)
        payload = d.to_json()
        assert json.loads(payload)["period"] == period  # serialisable as it stands
        rendered = digest_text(d, report_framework)
        for ref in CASE_REFS:
            assert ref not in payload and ref not in rendered
        for leak in ("Lovely direct work", "HYPERLINK", "A1", "B1", "Ann Auditor"):
            assert leak not in payload and leak not in rendered


async def test_digest_text_uses_framework_labels(report_db: tuple[AsyncEngine, Builder],
                                                 report_framework: Framework) -> None:
    _, b = report_db
    await seed(b)
    d: Digest = await compute_digest(b.sessions, report_framework, "2026-03")
    out = digest_text(d, report_framework)
    # The printed digest is the channel's view (deliberate change in issue 10): every count
    # here is from 1 to 4, so each is shown as "fewer than 5" and no share is shown.
    assert "audit digest for March 2026" in out
    assert "Allocated fewer than 5, completed fewer than 5 (–)" in out
    assert "Children in need of help and protection  fewer than 5" in out
    assert "Requires Improvement  fewer than 5" in out
    assert "Quality of assessment" in out and "February 2026" in out
    assert "Overdue: fewer than 5; open, not yet due: fewer than 5" in out
    assert "**" not in out and "`" not in out  # plain text, no Markdown on a terminal


# --------------------------------------------------------------------------- export


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


async def test_export_csv_rows_and_headers(report_db: tuple[AsyncEngine, Builder],
                                           report_framework: Framework, tmp_path: Path) -> None:
    _, b = report_db
    await seed(b)
    paths = await export(b.sessions, tmp_path / "out", framework=report_framework, batch=4)
    # Part B (issue 9) is exported as a table of its own (issue 10: exports carry Part B)
    # ... and moderation (rounds and calibration) too.
    assert set(paths) == {"audits", "domain_grades", "actions", "part_b", "moderations",
                          "calibration"}
    for name, cols in (("audits", AUDIT_COLUMNS), ("domain_grades", DOMAIN_COLUMNS),
                       ("actions", ACTION_COLUMNS)):
        with paths[name].open(encoding="utf-8") as fh:
            assert fh.readline().strip() == ",".join(cols)
    audits = read_csv(paths["audits"])
    assert len(audits) == b.next_id == 22  # every audit, paged 4 at a time
    assert [int(r["audit_id"]) for r in audits] == list(range(1, 23))
    first = audits[0]
    assert (first["case_ref"], first["month"], first["team"], first["auditor_id"],
            first["status"], first["overall_grade"], first["overall_grade_label"],
            first["outcomes"], first["submitted_at_utc"], first["safeguarding_concern"]) == (
        "CR-1001", "2026-03", "Alpha", "B1", "submitted", "good", "Good", "met",
        "2026-03-10T10:00:00+00:00", "no")
    assert audits[2]["submitted_at_utc"] == "" and audits[2]["overall_grade_label"] == ""
    grades = read_csv(paths["domain_grades"])
    assert [(g["case_ref"], g["domain"], g["grade_label"]) for g in grades] == [
        ("CR-1001", "assessment", "Good"), ("CR-1001", "planning", "Requires Improvement"),
        ("CR-1002", "assessment", "Inadequate"), ("CR-1008", "assessment", "Good")]
    assert grades[0]["domain_title"] == "Quality of assessment"
    actions = read_csv(paths["actions"])
    assert len(actions) == len(ACTIONS)
    assert (actions[3]["due_on"], actions[3]["done_at_utc"], actions[3]["status"],
            actions[3]["owner_id"], actions[3]["priority"], actions[3]["case_ref"]) == (
        "2026-03-15", "2026-03-15T18:00:00+00:00", "done", "A1", "high", "CR-1001")
    assert actions[9]["what"] == "'=HYPERLINK(\"http://x\")"  # never a live formula
    assert not list((tmp_path / "out").glob("*.part"))


async def test_export_since_until_by_month(report_db: tuple[AsyncEngine, Builder],
                                           tmp_path: Path) -> None:
    _, b = report_db
    await seed(b)
    paths = await export(b.sessions, tmp_path, since=date(2026, 1, 1), until=date(2026, 3, 1))
    months = sorted({r["month"] for r in read_csv(paths["audits"])})
    assert months == ["2026-01", "2026-02"]
    assert len(read_csv(paths["audits"])) == 4
    assert [g["case_ref"] for g in read_csv(paths["domain_grades"])] == ["CR-1008"]
    assert read_csv(paths["actions"]) == []
    assert read_csv(paths["audits"])[0]["overall_grade_label"] == "requires_improvement"  # keys
    mid = await export(b.sessions, tmp_path / "mid", since=date(2026, 2, 15))
    assert sorted({r["month"] for r in read_csv(mid["audits"])}) == ["2026-03", "2026-04"]


async def test_export_xlsx(report_db: tuple[AsyncEngine, Builder], report_framework: Framework,
                           tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    _, b = report_db
    await seed(b)
    paths = await export(b.sessions, tmp_path, fmt="xlsx", framework=report_framework, batch=5)
    book_path = paths["audits"]
    assert set(paths.values()) == {book_path} and book_path.suffix == ".xlsx"
    book = openpyxl.load_workbook(book_path, read_only=True)
    assert book.sheetnames == ["audits", "domain_grades", "actions", "part_b", "moderations",
                               "calibration"]
    rows = {name: list(book[name].iter_rows(values_only=True)) for name in book.sheetnames}
    assert rows["audits"][0] == AUDIT_COLUMNS and len(rows["audits"]) == 23
    assert len(rows["domain_grades"]) == 5 and len(rows["actions"]) == 11
    assert rows["actions"][10][6] == "'=HYPERLINK(\"http://x\")"
    assert rows["audits"][1][11] == utc(2026, 3, 10, 10).replace(tzinfo=None)  # UTC wall time
    book.close()
    with pytest.raises(ValueError):
        await export(b.sessions, tmp_path, fmt="pdf")


# --------------------------------------------------------------------------- benchmark


async def test_bench_reports_tiny(tmp_path: Path) -> None:
    from bench.bench_reports import run
    from bench.harness import BenchOptions

    databases = ("sqlite", "postgresql") if PG_URL else ("sqlite",)
    opts = BenchOptions(workdir=tmp_path, tiny=True, databases=databases, log=io.StringIO())
    section = await run(opts)
    for kind in databases:
        sizes = section.figures["sizes"][kind]
        assert [s["years"] for s in sizes] == [1, 2]
        for s in sizes:
            assert s["audits"] > 0 and s["monthly_ms"] > 0 and s["quarterly_ms"] > 0
            assert s["export_rows"] >= s["audits"] and s["digest_check"]["allocated"] > 0
        assert set(sizes[-1]["plans"]) == {"allocation", "overall grades", "domain grades",
                                            "actions", "re-audits"}
    assert "monthly digest" in section.body and section.targets
