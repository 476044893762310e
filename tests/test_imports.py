"""CSV import of staff and cases (SPEC R2): upsert, row errors, data minimisation, file quirks.

Fixtures have import_* names so they never clash with tests/conftest.py. PostgreSQL runs
when TEST_DATABASE_URL is set, in a sibling database (``<name>_imports``) so a colleague's
test run against the same server cannot drop the schema under these tests.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from qa.framework import Framework
from qa.framework_file import bundled_framework_path, load_framework
from qabot.cli import import_progress
from store.db import make_engine, make_sessionmaker
from store.imports import (
    ImportRefused,
    ImportReport,
    RowError,
    case_ref_problem,
    import_cases,
    import_staff,
)
from store.models import AuditLogEntry, Base, Case, Staff, Team, utcnow

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
ACTOR = "cli:tester"

STAFF_HEADER = "staff_id,name,email,roles,team,manager_id"
STAFF_ROWS = [
    "HOS1,Hana Okafor,hana.okafor@council.gov.uk,head_of_service,Children's Services,",
    "TM1,Tom Mensah,Tom.Mensah@Council.gov.uk,team_manager,Assessment Team 1,HOS1",
    "SW1,Sara Walsh,sara.walsh@council.gov.uk,social_worker,Assessment Team 1,TM1",
    "SW2,Sam Whyte,sam.whyte@council.gov.uk,social_worker;advanced_practitioner,Assessment Team 1,TM1",
]
CASE_HEADER = "case_ref,team,social_worker_id,area_of_planning,opened_on,status,tags"
CASE_ROWS = [
    "C-1001,Assessment Team 1,SW1,help_and_protection,2024-01-10,open,neglect;domestic abuse",
    "C-1002,Assessment Team 1,SW2,children_in_care,2023-06-01,open,",
    "C-1003,Assessment Team 2,,early_help,2024-03-15,open,exploitation",
]


def csv_text(*lines: str, newline: str = "\n") -> str:
    return newline.join(lines) + newline


def stream(*lines: str) -> io.StringIO:
    return io.StringIO(csv_text(*lines))


# --------------------------------------------------------------------------- fixtures


@dataclass
class ImportDb:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def all(self, model: type[Base]) -> list[Any]:
        async with self.sessions() as session:
            return list(await session.scalars(select(model)))

    async def log(self, action: str | None = None) -> list[AuditLogEntry]:
        stmt = select(AuditLogEntry).order_by(AuditLogEntry.id)
        if action:
            stmt = stmt.where(AuditLogEntry.action == action)
        async with self.sessions() as session:
            return list(await session.scalars(stmt))

    async def count(self, model: type[Base]) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture(scope="session")
def import_framework() -> Framework:
    return load_framework(bundled_framework_path("lambeth_like"))


@pytest.fixture
async def import_db(db_url: str) -> AsyncIterator[ImportDb]:
    engine = make_engine(db_url)
    try:
        yield ImportDb(db_url, engine, make_sessionmaker(engine))
    finally:
        await engine.dispose()


@pytest.fixture
async def import_db_staffed(import_db: ImportDb, import_framework: Framework) -> ImportDb:
    """A database holding the standard staff, for case imports that name social workers."""
    report = await import_staff(import_db.sessions, import_framework,
                                stream(STAFF_HEADER, *STAFF_ROWS), actor=ACTOR, at=utcnow())
    assert not report.rejected
    return import_db


# --------------------------------------------------------------------------- report


def test_summary_and_details_format() -> None:
    report = ImportReport(kind="cases", added=["x"] * 1950, changed=["y"] * 12,
                          closed=["z"] * 3, unchanged=7,
                          rejected=[RowError(17, "opened_on '2024-13-01' is not a date (YYYY-MM-DD)")])
    assert report.summary() == "cases: 1,950 added, 12 changed, 3 closed, 7 unchanged, 1 rejected"
    assert report.details().splitlines() == [
        report.summary(), "line 17: opened_on '2024-13-01' is not a date (YYYY-MM-DD)"]


# --------------------------------------------------------------------------- staff


async def test_staff_import_then_reimport_is_an_upsert(
    import_db: ImportDb, import_framework: Framework
) -> None:
    first = await import_staff(import_db.sessions, import_framework,
                               stream(STAFF_HEADER, *STAFF_ROWS), actor=ACTOR, at=utcnow())
    assert first.added == ["HOS1", "TM1", "SW1", "SW2"]
    assert (first.changed, first.closed, first.unchanged, first.rejected) == ([], [], 0, [])
    staff = {s.staff_id: s for s in await import_db.all(Staff)}
    assert staff["TM1"].email == "tom.mensah@council.gov.uk"  # lower-cased on store
    assert staff["SW2"].roles == ["social_worker", "advanced_practitioner"]
    assert staff["SW1"].manager_id == "TM1" and staff["HOS1"].manager_id is None
    assert all(s.active for s in staff.values())
    teams = {t.name for t in await import_db.all(Team)}
    assert teams == {"Children's Services", "Assessment Team 1"}
    assert len(await import_db.log("staff.added")) == 4
    assert len(await import_db.log("team.added")) == 2

    # SW1 moves team, SW2's roles are only reordered, TM1 leaves; HOS1 is not in the file.
    second = await import_staff(import_db.sessions, import_framework, stream(
        STAFF_HEADER + ",active",
        "TM1,Tom Mensah,tom.mensah@council.gov.uk,team_manager,Assessment Team 1,HOS1,no",
        "SW1,Sara Walsh,sara.walsh@council.gov.uk,social_worker,assessment team 2,TM1,yes",
        "SW2,Sam Whyte,SAM.WHYTE@council.gov.uk,advanced_practitioner;social_worker,Assessment Team 1,TM1,",
        "SW3,Sid Wu,sid.wu@council.gov.uk,Social worker,Assessment Team 1,TM1,",
    ), actor=ACTOR, at=utcnow())
    assert second.added == ["SW3"]
    assert second.changed == ["SW1"]
    assert second.closed == ["TM1"]
    assert second.unchanged == 1 and second.rejected == []
    staff = {s.staff_id: s for s in await import_db.all(Staff)}
    assert set(staff) == {"HOS1", "TM1", "SW1", "SW2", "SW3"}  # nothing deleted
    assert staff["TM1"].active is False and staff["HOS1"].active is True
    assert staff["SW3"].roles == ["social_worker"]  # matched by the role's label

    changed = await import_db.log("staff.changed")
    assert [(e.entity_id, e.before, e.after, e.actor) for e in changed] == [
        ("SW1", {"team": "Assessment Team 1"}, {"team": "assessment team 2"}, ACTOR)]
    deactivated = await import_db.log("staff.deactivated")
    assert [(e.entity_id, e.before, e.after) for e in deactivated] == [
        ("TM1", {"active": True}, {"active": False})]

    # The same file again: nothing changes and nothing at all is written to the log.
    log_size = await import_db.count(AuditLogEntry)
    again = await import_staff(import_db.sessions, import_framework, stream(
        STAFF_HEADER, *STAFF_ROWS[:1], STAFF_ROWS[2].replace("Assessment Team 1", "Assessment Team 2"),
    ), actor=ACTOR, at=utcnow())
    assert (again.added, again.changed, again.closed, again.unchanged) == ([], [], [], 2)
    assert await import_db.count(AuditLogEntry) == log_size


STAFF_GOOD_BEFORE = "A1,Ann Lee,ann.lee@council.gov.uk,team_manager,Team A,"
STAFF_GOOD_AFTER = "A2,Bo Chan,bo.chan@council.gov.uk,social_worker,Team A,A1"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (",No Id,no.id@council.gov.uk,social_worker,Team A,", "staff_id is blank"),
        ("B 1,Space Id,space@council.gov.uk,social_worker,Team A,", "staff_id 'B 1' is not a valid id"),
        ("B1,,b1@council.gov.uk,social_worker,Team A,", "name is blank"),
        ("B1,Bad Mail,not-an-email,social_worker,Team A,",
         "email 'not-an-email' does not look like an email address"),
        ("B1,No Mail,,social_worker,Team A,", "email is blank"),
        ("B1,Bad Role,b1@council.gov.uk,social_worker;teem_manager,Team A,",
         "roles: 'teem_manager' (did you mean team_manager?) not a role in the framework; "
         "valid roles: social_worker, team_manager"),
        ("B1,No Role,b1@council.gov.uk,,Team A,", "roles is blank"),
        ("B1,Own Boss,b1@council.gov.uk,social_worker,Team A,B1",
         "manager_id is the staff member's own id"),
        ("B1,Lost,b1@council.gov.uk,social_worker,Team A,ZZ9",
         "manager_id 'ZZ9' is not a staff id in this file or already imported"),
        ("B1,Dup Mail,ANN.LEE@council.gov.uk,social_worker,Team A,",
         "email 'ann.lee@council.gov.uk' is already used by staff_id 'A1' on line 2"),
        ("A1,Ann Again,ann2@council.gov.uk,social_worker,Team A,", "staff_id 'A1' already appears on line 2"),
        ("B1,Short Row,b1@council.gov.uk,social_worker", "the row has 4 values but the header has 6"),
        ("B1,Long Row,b1@council.gov.uk,social_worker,Team A,,surplus",
         "the row has 7 values but the header has 6"),
    ],
)
async def test_staff_bad_row_is_reported_and_good_rows_land(
    import_db: ImportDb, import_framework: Framework, row: str, reason: str
) -> None:
    report = await import_staff(import_db.sessions, import_framework,
                                stream(STAFF_HEADER, STAFF_GOOD_BEFORE, row, STAFF_GOOD_AFTER),
                                actor=ACTOR, at=utcnow())
    assert len(report.rejected) == 1, report.details()
    assert report.rejected[0].line == 3
    assert reason in report.rejected[0].reason
    assert report.added == ["A1", "A2"]
    assert {s.staff_id for s in await import_db.all(Staff)} == {"A1", "A2"}


async def test_staff_bad_active_value_and_manager_on_rejected_row(
    import_db: ImportDb, import_framework: Framework
) -> None:
    report = await import_staff(import_db.sessions, import_framework, stream(
        STAFF_HEADER + ",active",
        "M1,Mo Ali,bad-email,team_manager,Team A,,yes",
        "W1,Wyn Ode,wyn@council.gov.uk,social_worker,Team A,M1,",
        "W2,Val Ide,val@council.gov.uk,social_worker,Team A,W1,",
        "W3,Ann Other,ann@council.gov.uk,social_worker,Team A,,maybe",
        "W4,Ok Row,ok@council.gov.uk,social_worker,Team A,,",
    ), actor=ACTOR, at=utcnow())
    assert [(e.line, e.reason) for e in report.rejected] == [
        (2, "email 'bad-email' does not look like an email address"),
        (3, "manager_id 'M1' is on line 2, which was rejected"),
        (4, "manager_id 'W1' is on line 3, which was rejected"),
        (5, "active 'maybe' is not yes or no (yes, no, true, false, 1, 0)"),
    ]
    assert report.added == ["W4"]


async def test_staff_email_of_someone_else_in_the_database_is_rejected(
    import_db: ImportDb, import_framework: Framework
) -> None:
    await import_staff(import_db.sessions, import_framework,
                       stream(STAFF_HEADER, STAFF_GOOD_BEFORE), actor=ACTOR, at=utcnow())
    report = await import_staff(import_db.sessions, import_framework, stream(
        STAFF_HEADER, "X9,Ann Lee,Ann.Lee@council.gov.uk,team_manager,Team A,"), actor=ACTOR, at=utcnow())
    assert [(e.line, e.reason) for e in report.rejected] == [
        (2, "email 'ann.lee@council.gov.uk' already belongs to staff_id 'A1': fix one of the two")]


async def test_manager_already_in_the_database_is_accepted(
    import_db: ImportDb, import_framework: Framework
) -> None:
    await import_staff(import_db.sessions, import_framework,
                       stream(STAFF_HEADER, STAFF_GOOD_BEFORE), actor=ACTOR, at=utcnow())
    report = await import_staff(import_db.sessions, import_framework,
                                stream(STAFF_HEADER, STAFF_GOOD_AFTER), actor=ACTOR, at=utcnow())
    assert report.added == ["A2"] and report.rejected == []


async def test_a_manager_chain_that_loops_is_refused_with_its_lines(
    import_db: ImportDb, import_framework: Framework
) -> None:
    report = await import_staff(import_db.sessions, import_framework, stream(
        STAFF_HEADER,
        "S1,Sue Service,sue@council.gov.uk,service_manager,Team S,T1",
        "T1,Tia Manager,tia@council.gov.uk,team_manager,Team A,S1",
        "W1,Wyn Ode,wyn@council.gov.uk,social_worker,Team A,T1",
        "W2,Val Ide,val@council.gov.uk,social_worker,Team A,",
    ), actor=ACTOR, at=utcnow())
    loop = "S1 (line 2), T1 (line 3) report to each other in a circle"
    assert [(e.line, e.reason) for e in report.rejected] == [
        (2, f"manager_id 'T1' makes a loop in the line of management: {loop}; fix one of "
            "their manager_id values"),
        (3, f"manager_id 'S1' makes a loop in the line of management: {loop}; fix one of "
            "their manager_id values"),
        (4, "manager_id 'T1' is on line 3, which was rejected"),
    ]
    assert report.added == ["W2"]


async def test_a_loop_through_staff_already_imported_is_refused_too(
    import_db: ImportDb, import_framework: Framework
) -> None:
    await import_staff(import_db.sessions, import_framework, stream(
        STAFF_HEADER, "M1,Mo Ali,mo@council.gov.uk,team_manager,Team A,",
        "W1,Wyn Ode,wyn@council.gov.uk,social_worker,Team A,M1"), actor=ACTOR, at=utcnow())
    report = await import_staff(import_db.sessions, import_framework, stream(
        STAFF_HEADER, "M1,Mo Ali,mo@council.gov.uk,team_manager,Team A,W1"), actor=ACTOR,
        at=utcnow())
    assert [e.line for e in report.rejected] == [2]
    assert "M1 (line 2), W1 report to each other" in report.rejected[0].reason
    (manager,) = [s for s in await import_db.all(Staff) if s.staff_id == "M1"]
    assert manager.manager_id is None  # the loop was not written


# --------------------------------------------------------------------------- cases


async def test_cases_import_then_reimport_is_an_upsert(
    import_db_staffed: ImportDb, import_framework: Framework
) -> None:
    db = import_db_staffed
    first = await import_cases(db.sessions, import_framework,
                               stream(CASE_HEADER, *CASE_ROWS), actor=ACTOR, at=utcnow())
    assert first.added == ["C-1001", "C-1002", "C-1003"]
    assert (first.changed, first.closed, first.unchanged, first.rejected) == ([], [], 0, [])
    cases = {c.case_ref: c for c in await db.all(Case)}
    assert cases["C-1001"].tags == ["neglect", "domestic abuse"]
    assert cases["C-1001"].opened_on == date(2024, 1, 10)
    assert cases["C-1003"].social_worker_id is None  # unallocated
    assert cases["C-1002"].area == "children_in_care" and cases["C-1002"].status == "open"
    assert "Assessment Team 2" in {t.name for t in await db.all(Team)}  # created on demand
    added_log = await db.log("case.added")
    assert added_log[0].after == {
        "team": "Assessment Team 1", "social_worker_id": "SW1", "area": "help_and_protection",
        "opened_on": "2024-01-10", "status": "open", "closed_on": None,
        "tags": ["neglect", "domestic abuse"]}

    # C-1001: tags reordered only (unchanged); C-1002 closed; C-1003 reallocated;
    # C-1004 new; C-1005 absent from an earlier file is not in this one either.
    second = await import_cases(db.sessions, import_framework, stream(
        CASE_HEADER + ",closed_on",
        "C-1001,Assessment Team 1,SW1,help_and_protection,2024-01-10,open,Domestic Abuse;neglect,",
        "C-1002,Assessment Team 1,SW2,children_in_care,2023-06-01,Closed,,2024-05-31",
        "C-1003,Assessment Team 2,SW1,early_help,2024-03-15,open,exploitation,",
        "C-1004,Assessment Team 2,,Care leavers,2022-02-02,open,,",
    ), actor=ACTOR, at=utcnow())
    assert second.added == ["C-1004"]
    assert second.changed == ["C-1003"]
    assert second.closed == ["C-1002"]
    assert second.unchanged == 1 and second.rejected == []
    cases = {c.case_ref: c for c in await db.all(Case)}
    assert cases["C-1002"].status == "closed" and cases["C-1002"].closed_on == date(2024, 5, 31)
    assert cases["C-1004"].area == "care_leavers"  # matched by the area's label
    assert cases["C-1001"].tags == ["neglect", "domestic abuse"]

    closed = await db.log("case.closed")
    assert [(e.entity_id, e.before, e.after) for e in closed] == [
        ("C-1002", {"status": "open", "closed_on": None},
         {"status": "closed", "closed_on": "2024-05-31"})]
    changed = await db.log("case.changed")
    assert [(e.entity_id, e.before, e.after) for e in changed] == [
        ("C-1003", {"social_worker_id": None}, {"social_worker_id": "SW1"})]
    imports = await db.log("import.cases")
    assert imports[-1].after == {"file": "stream", "added": 1, "changed": 1, "closed": 1,
                                 "unchanged": 1, "rejected": 0}

    # A partial export closes nothing; reopening is a change.
    third = await import_cases(db.sessions, import_framework, stream(
        CASE_HEADER, "C-1002,Assessment Team 1,SW2,children_in_care,2023-06-01,open,"),
        actor=ACTOR, at=utcnow())
    assert third.changed == ["C-1002"] and not third.closed
    cases = {c.case_ref: c for c in await db.all(Case)}
    assert cases["C-1002"].status == "open" and cases["C-1002"].closed_on is None
    assert {c.status for c in cases.values()} == {"open"}
    assert len(cases) == 4
    reopened = await db.log("case.reopened")
    assert reopened[0].after == {"status": "open", "closed_on": None}


async def test_closing_without_a_date_uses_today_and_stays_unchanged_after(
    import_db_staffed: ImportDb, import_framework: Framework
) -> None:
    db = import_db_staffed
    await import_cases(db.sessions, import_framework, stream(CASE_HEADER, CASE_ROWS[0]), actor=ACTOR, at=utcnow())
    closing = CASE_ROWS[0].replace(",open,", ",closed,")
    report = await import_cases(db.sessions, import_framework, stream(CASE_HEADER, closing),
                                actor=ACTOR, at=utcnow())
    assert report.closed == ["C-1001"]
    (case,) = await db.all(Case)
    assert case.closed_on is not None and abs(case.closed_on - datetime.now(UTC).date()) <= timedelta(days=1)
    report = await import_cases(db.sessions, import_framework, stream(CASE_HEADER, closing),
                                actor=ACTOR, at=utcnow())
    assert report.unchanged == 1 and not report.closed and not report.changed


CASE_GOOD_BEFORE = "C-2001,Team A,SW1,early_help,2024-01-01,open,neglect"
CASE_GOOD_AFTER = "C-2002,Team A,,children_in_care,2024-02-01,closed,"
SPACE_REF = "case_ref contains a space and could be a person's name"
NO_DIGIT_REF = "case_ref has no digits and could be a person's name"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("John Smith,Team A,SW1,early_help,2024-01-01,open,", SPACE_REF),
        ("JohnSmith,Team A,SW1,early_help,2024-01-01,open,", NO_DIGIT_REF),
        ("Smith-J,Team A,SW1,early_help,2024-01-01,open,", NO_DIGIT_REF),
        ("C1,Team A,SW1,early_help,2024-01-01,open,", "case_ref is not a valid reference"),
        ("C#1234,Team A,SW1,early_help,2024-01-01,open,", "case_ref is not a valid reference"),
        ("C-" + "1" * 31 + ",Team A,SW1,early_help,2024-01-01,open,", "case_ref is not a valid reference"),
        (",Team A,SW1,early_help,2024-01-01,open,", "case_ref is blank"),
        ("12/03/2015,Team A,SW1,early_help,2024-01-01,open,", "case_ref looks like a date"),
        ("9434765919,Team A,SW1,early_help,2024-01-01,open,", "case_ref looks like an NHS number"),
        ("A123456789012,Team A,SW1,early_help,2024-01-01,open,", "looks like a unique pupil number"),
        ("C-3001,Team A,SW1,early_help,2024-13-01,open,",
         "opened_on '2024-13-01' is not a date (YYYY-MM-DD)"),
        ("C-3001,Team A,SW1,early_help,01/02/2024,open,",
         "opened_on '01/02/2024' is not a date (YYYY-MM-DD)"),
        ("C-3001,Team A,SW1,early_help,,open,", "opened_on is blank"),
        ("C-3001,Team A,SW1,early_help,2999-01-01,open,", "opened_on '2999-01-01' is in the future"),
        ("C-3001,Team A,SW1,early help plus,2024-01-01,open,",
         "area_of_planning 'early help plus' is not an area of planning in the framework"),
        ("C-3001,Team A,SW1,,2024-01-01,open,", "area_of_planning is blank; valid areas: early_help"),
        ("C-3001,Team A,SW1,early_help,2024-01-01,pending,", "status 'pending' is not open or closed"),
        ("C-3001,,SW1,early_help,2024-01-01,open,", "team is blank"),
        ("C-3001,Team A,SW99,early_help,2024-01-01,open,",
         "social_worker_id 'SW99' is not a known staff id"),
        ("C-2001,Team A,SW1,early_help,2024-01-01,open,", "case_ref 'C-2001' already appears on line 2"),
        ("C-3001,Team A,SW1,early_help", "the row has 4 values but the header has 7"),
    ],
)
async def test_case_bad_row_is_reported_and_good_rows_land(
    import_db_staffed: ImportDb, import_framework: Framework, row: str, reason: str
) -> None:
    db = import_db_staffed
    report = await import_cases(db.sessions, import_framework,
                                stream(CASE_HEADER, CASE_GOOD_BEFORE, row, CASE_GOOD_AFTER),
                                actor=ACTOR, at=utcnow())
    assert len(report.rejected) == 1, report.details()
    assert report.rejected[0].line == 3
    assert reason in report.rejected[0].reason
    assert report.added == ["C-2001", "C-2002"]
    assert {c.case_ref for c in await db.all(Case)} == {"C-2001", "C-2002"}


@pytest.mark.parametrize("ref", ["John Smith", "JohnSmith", "9434765919", "A123456789012"])
def test_a_rejected_case_ref_is_never_echoed(ref: str) -> None:
    problem = case_ref_problem(ref)
    assert problem is not None and ref not in problem


@pytest.mark.parametrize("ref", ["C-1001", "123456", "LCS/2024/0042", "abc_9", "9434765918"])
def test_pseudonymous_references_are_accepted(ref: str) -> None:
    assert case_ref_problem(ref) is None


async def test_closed_on_rules(import_db_staffed: ImportDb, import_framework: Framework) -> None:
    report = await import_cases(import_db_staffed.sessions, import_framework, stream(
        CASE_HEADER + ",closed_on",
        "C-4001,Team A,,early_help,2024-03-01,closed,,2024-02-01",
        "C-4002,Team A,,early_help,2024-03-01,open,,2024-04-01",
        "C-4003,Team A,,early_help,2024-03-01,closed,,2024-04-01",
    ), actor=ACTOR, at=utcnow())
    assert [(e.line, e.reason) for e in report.rejected] == [
        (2, "closed_on 2024-02-01 is before opened_on 2024-03-01"),
        (3, "closed_on is given but status is open"),
    ]
    assert report.added == ["C-4003"]


# --------------------------------------------------------------------------- minimisation


@pytest.mark.parametrize(
    "column",
    ["child_name", "Child Name", "child-name", "CHILD", "Child's name", "name", " Name ",
     "first_name", "First Name", "forename", "Surname", "last-name", "Full Name", "DOB",
     "D.O.B.", "Date of Birth", "date_of_birth", "Address", "Home Address", "Post Code",
     "postcode", "NHS Number", "nhs_no", "UPN", "Unique Pupil Number", "Mother's name",
     "Parent Phone"],
)
async def test_cases_file_with_identifier_column_is_refused(
    import_db_staffed: ImportDb, import_framework: Framework, column: str
) -> None:
    header = CASE_HEADER.replace("team,", f"team,{column},")
    row = CASE_ROWS[0].replace("Assessment Team 1,", "Assessment Team 1,Jane Doe,")
    with pytest.raises(ImportRefused) as refused:
        await import_cases(import_db_staffed.sessions, import_framework,
                           stream(header, row), actor=ACTOR, at=utcnow())
    message = str(refused.value)
    assert f"column 3 '{column.strip()}' is refused" in message
    assert "never stores a child's name or identifying details" in message
    assert f"Remove the column '{column.strip()}'" in message
    assert "Jane Doe" not in message
    assert await import_db_staffed.count(Case) == 0


@pytest.mark.parametrize("column", ["child_name", "First Name", "surname", "DOB", "Postcode", "UPN"])
async def test_staff_file_with_identifier_column_is_refused(
    import_db: ImportDb, import_framework: Framework, column: str
) -> None:
    with pytest.raises(ImportRefused, match=f"'{column}' is refused") as refused:
        await import_staff(import_db.sessions, import_framework,
                           stream(STAFF_HEADER + f",{column}", STAFF_GOOD_BEFORE + ",x"), actor=ACTOR, at=utcnow())
    assert "Remove the column" in str(refused.value)
    assert await import_db.count(Staff) == 0


@pytest.mark.parametrize(
    "extra", ["Team Name", "social_worker_name", "Allocated Worker Name", "gender", "legal_status",
              "Child ID", "notes"])
async def test_harmless_extra_case_columns_are_allowed(
    import_db_staffed: ImportDb, import_framework: Framework, extra: str
) -> None:
    report = await import_cases(import_db_staffed.sessions, import_framework,
                                stream(f"{CASE_HEADER},{extra}", CASE_ROWS[0] + ",x"), actor=ACTOR, at=utcnow())
    assert report.added == ["C-1001"]


async def test_staff_file_allows_email_address_column(
    import_db: ImportDb, import_framework: Framework
) -> None:
    report = await import_staff(import_db.sessions, import_framework,
                                stream(STAFF_HEADER + ",Email Address", STAFF_GOOD_BEFORE + ",x"),
                                actor=ACTOR, at=utcnow())
    assert report.added == ["A1"]


# --------------------------------------------------------------------------- file quirks


async def test_bom_crlf_quotes_blank_lines_and_messy_headers(
    import_db_staffed: ImportDb, import_framework: Framework, tmp_path: Path
) -> None:
    body = csv_text(
        " Case_Ref , TEAM,Social Worker ID,area-of-planning,Opened_On,Status ,Tags,Notes",
        "C-5001,Assessment Team 1,SW1,early_help,2024-01-01,open,neglect,\"first line, with comma",
        "second line\"",
        "",
        "C-5002 , \"Team, with comma\" ,SW2,early_help,2024-01-02,OPEN,\"a;b\",  ",
        "   ",
        "C-5003,Assessment Team 1,SW1,early_help,2024-02-30,open,,",
        "C-5004,Assessment Team 1,,early_help,2024-01-03,open,,\"three",
        "line",
        "note\"",
        "C-5005,Assessment Team 1,SW9,early_help,2024-01-03,open,,",
        newline="\r\n",
    )
    path = tmp_path / "cases.csv"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    report = await import_cases(import_db_staffed.sessions, import_framework, str(path),
                                actor=ACTOR, at=utcnow())
    assert report.added == ["C-5001", "C-5002", "C-5004"]
    assert [(e.line, e.reason.split(":")[0]) for e in report.rejected] == [
        (7, "opened_on '2024-02-30' is not a date (YYYY-MM-DD)"),
        (11, "social_worker_id 'SW9' is not a known staff id"),
    ]
    cases = {c.case_ref: c for c in await import_db_staffed.all(Case)}
    assert cases["C-5002"].tags == ["a", "b"] and cases["C-5002"].status == "open"
    assert "Team, with comma" in {t.name for t in await import_db_staffed.all(Team)}


async def test_unclosed_quote_is_reported_with_its_lines(
    import_db_staffed: ImportDb, import_framework: Framework
) -> None:
    report = await import_cases(import_db_staffed.sessions, import_framework, stream(
        CASE_HEADER,
        CASE_ROWS[0],
        'C-6001,"Assessment Team 1,SW1,early_help,2024-01-01,open,',
        CASE_ROWS[1],
    ), actor=ACTOR, at=utcnow())
    assert report.added == ["C-1001"]
    assert len(report.rejected) == 1 and report.rejected[0].line == 3
    assert "lines 3-4" in report.rejected[0].reason


@pytest.mark.parametrize("kind", ["path", "str", "textio"])
async def test_sources(import_db: ImportDb, import_framework: Framework, tmp_path: Path,
                       kind: str) -> None:
    path = tmp_path / "staff.csv"
    path.write_text(csv_text(STAFF_HEADER, STAFF_GOOD_BEFORE), encoding="utf-8")
    source: Any = {"path": path, "str": str(path)}.get(kind)
    if kind == "textio":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            report = await import_staff(import_db.sessions, import_framework, fh, actor=ACTOR, at=utcnow())
    else:
        report = await import_staff(import_db.sessions, import_framework, source, actor=ACTOR, at=utcnow())
    assert report.added == ["A1"]


async def test_header_only_file_imports_nothing(
    import_db: ImportDb, import_framework: Framework
) -> None:
    report = await import_cases(import_db.sessions, import_framework, stream(CASE_HEADER),
                                actor=ACTOR, at=utcnow())
    assert report.summary() == "cases: 0 added, 0 changed, 0 closed, 0 unchanged, 0 rejected"
    assert await import_db.count(AuditLogEntry) == 0


REFUSALS: list[tuple[str, bytes, str]] = [
    ("empty", b"", "the file is empty"),
    ("blank lines only", b"\r\n\r\n  \r\n", "the file is empty"),
    ("windows-1252", (CASE_HEADER + "\nC-1,Caf\xe9 team,,early_help,2024-01-01,open,\n").encode("cp1252"),
     "not UTF-8 text (first bad byte on line 2"),
    ("utf-16", (CASE_HEADER + "\n").encode("utf-16"), "UTF-16"),
    ("xlsx", b"PK\x03\x04\x14\x00\x06\x00rest-of-zip", "Excel workbook"),
    ("nul bytes", b"case_ref\x00team\n", "binary data"),
    ("missing columns", b"case_ref,team,opened_on\nC-1,Team A,2024-01-01\n",
     "missing the column(s) social_worker_id, area_of_planning, status, tags"),
    ("semicolons", CASE_HEADER.replace(",", ";").encode(), "separated by semicolons"),
    ("staff file", csv_text(STAFF_HEADER, STAFF_GOOD_BEFORE).encode(), "looks like the staff file"),
    ("repeated column", (CASE_HEADER + ",team\n").encode(), "'team' appears twice (columns 2 and 8)"),
]


@pytest.mark.parametrize(("content", "reason"), [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])
async def test_unusable_files_are_refused(
    import_db: ImportDb, import_framework: Framework, tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "cases.csv"
    path.write_bytes(content)
    with pytest.raises(ImportRefused, match=None) as refused:
        await import_cases(import_db.sessions, import_framework, path, actor=ACTOR, at=utcnow())
    assert reason in str(refused.value)
    assert await import_db.count(Case) == 0


async def test_missing_file_is_refused(import_db: ImportDb, import_framework: Framework,
                                       tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match="cannot read"):
        await import_staff(import_db.sessions, import_framework, tmp_path / "nope.csv", actor=ACTOR, at=utcnow())


# --------------------------------------------------------------------------- scale


def _count_queries(engine: AsyncEngine) -> Callable[[], int]:
    counter = {"n": 0}

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        counter["n"] += 1

    return lambda: counter["n"]


async def test_two_thousand_cases_import_quickly_in_few_queries(
    import_db_staffed: ImportDb, import_framework: Framework,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = import_db_staffed
    areas = list(import_framework.areas)
    rows = [
        f"C-{i:06d},Team {i % 12},{'SW1' if i % 3 else ''},{areas[i % len(areas)]},"
        f"2024-{1 + i % 12:02d}-{1 + i % 28:02d},open,{'neglect;dv' if i % 2 else ''}"
        for i in range(2000)
    ]
    rows[1500] = rows[1500].replace(",open,", ",maybe,")
    source = csv_text(CASE_HEADER, *rows)
    queries = _count_queries(db.engine)

    started = time.perf_counter()
    first = await import_cases(db.sessions, import_framework, io.StringIO(source), actor=ACTOR, at=utcnow(),
                               progress=import_progress("cases"))
    elapsed = time.perf_counter() - started
    assert len(first.added) == 1999
    assert [e.line for e in first.rejected] == [1502]
    assert elapsed < 10, f"2,000 cases took {elapsed:.1f}s"
    assert "importing cases" in capsys.readouterr().err  # the progress bar, on stderr

    before = queries()
    started = time.perf_counter()
    second = await import_cases(db.sessions, import_framework, io.StringIO(source), actor=ACTOR, at=utcnow())
    elapsed = time.perf_counter() - started
    assert (len(second.added), len(second.changed), len(second.closed)) == (0, 0, 0)
    assert second.unchanged == 1999
    assert queries() - before < 20, "existing rows must be loaded in batches, not row by row"
    assert elapsed < 5, f"re-importing 2,000 unchanged cases took {elapsed:.1f}s"
    assert await db.count(Case) == 1999


async def test_progress_is_quiet_for_small_files(
    import_db: ImportDb, import_framework: Framework, capsys: pytest.CaptureFixture[str]
) -> None:
    await import_staff(import_db.sessions, import_framework,
                       stream(STAFF_HEADER, STAFF_GOOD_BEFORE), actor=ACTOR, at=utcnow(),
                       progress=import_progress("staff"))
    assert capsys.readouterr().err == ""


async def test_reactivating_staff_is_a_change(
    import_db: ImportDb, import_framework: Framework
) -> None:
    header = STAFF_HEADER + ",Active"
    await import_staff(import_db.sessions, import_framework,
                       stream(header, STAFF_GOOD_BEFORE + ",no"), actor=ACTOR, at=utcnow())
    (staff,) = await import_db.all(Staff)
    assert staff.active is False  # a new row may arrive inactive: added, not closed
    report = await import_staff(import_db.sessions, import_framework,
                                stream(header, STAFF_GOOD_BEFORE + ",TRUE"), actor=ACTOR, at=utcnow())
    assert report.changed == ["A1"] and not report.closed
    (entry,) = await import_db.log("staff.changed")
    assert (entry.before, entry.after) == ({"active": False}, {"active": True})


# ---------------------------------------------------------------------------- warnings (issue 12)


async def test_a_new_team_nothing_else_uses_is_warned_about_not_refused(ctx, tmp_path) -> None:
    from flows.roster import import_file

    staff = tmp_path / "staff.csv"
    staff.write_text(csv_text(
        STAFF_HEADER,
        "TM1,Tom Mensah,tom.mensah@council.example,team_manager,Assessment 1,",
        "TM2,Tia Moss,tia.moss@council.example,team_manager,Assessment 2,",
    ))
    first = await import_file(ctx, "staff", staff, actor=ACTOR)
    assert first.warnings == []  # no cases yet: nothing to compare with

    cases = tmp_path / "cases.csv"
    cases.write_text(csv_text(
        CASE_HEADER,
        "C-2001,Assessment 1,TM1,help_and_protection,2024-01-10,open,",
        "C-2002,Assesment 2,,early_help,2024-03-15,open,",  # the typo
    ))
    report = await import_file(ctx, "cases", cases, actor=ACTOR)
    assert report.added == ["C-2001", "C-2002"] and report.rejected == []  # imported anyway
    [warning] = report.warnings
    assert "team 'Assesment 2' is new and no member of staff belongs to it" in warning
    assert "Did you mean Assessment 2?" in warning
    assert "warning: team 'Assesment 2'" in report.details()

    staff.write_text(csv_text(
        STAFF_HEADER,
        "TM3,Tariq Malik,tariq.malik@council.example,team_manager,Asessment 1,",
        "TM4,Tess Moon,tess.moon@council.example,team_manager,Permanence,",
    ))
    again = await import_file(ctx, "staff", staff, actor=ACTOR)
    assert again.added == ["TM3", "TM4"]
    assert [w.split(".")[0] for w in again.warnings] == [
        "team 'Asessment 1' is new and no open case belongs to it",
        "team 'Permanence' is new and no open case belongs to it"]
    assert "Did you mean Assessment 1?" in again.warnings[0]
    assert "Did you mean" not in again.warnings[1]  # nothing close: no guess
