"""The line of management (qa/people.py): one answer to "who is above whom", with the holes a
council's HR export really has (leavers, dangling managers, loops) handled, never a crash."""

from __future__ import annotations

import logging

import pytest

from qa.people import OWNER, LineOfManagement, Person, is_manager, manager_loops

# A small council: director > AD > two service managers > team managers > social workers.
COUNCIL = [
    Person("DIR", "Dana Director", frozenset({"director"})),
    Person("AD1", "Ade Assistant", frozenset({"assistant_director"}), manager_id="DIR"),
    Person("HOS", "Hal Head", frozenset({"head_of_service"}), manager_id="AD1"),
    Person("SM1", "Sue Service", frozenset({"service_manager"}), team_id=90, manager_id="HOS"),
    Person("SM2", "Sid Service", frozenset({"service_manager"}), manager_id="AD1"),
    Person("TM1", "Tia Manager", frozenset({"team_manager"}), team_id=1, manager_id="SM1"),
    Person("TM2", "Ted Manager", frozenset({"team_manager"}), team_id=1, manager_id="SM1"),
    Person("TM3", "Tom Manager", frozenset({"team_manager"}), team_id=2, manager_id="SM2"),
    Person("SW1", "Sam Worker", frozenset({"social_worker"}), team_id=1, manager_id="TM1"),
    Person("SW2", "Sal Worker", frozenset({"social_worker"}), team_id=2, manager_id="TM3"),
    Person("SW3", "Sol Worker", frozenset({"social_worker"}), team_id=1, manager_id="GONE"),
]


def ids(people: list[Person]) -> list[str]:
    return [p.staff_id for p in people]


@pytest.fixture
def line() -> LineOfManagement:
    return LineOfManagement(COUNCIL)


def test_the_chain_climbs_to_the_top_nearest_first(line: LineOfManagement) -> None:
    assert ids(line.chain("SW1")) == ["TM1", "SM1", "HOS", "AD1", "DIR"]
    assert ids(line.chain("DIR")) == []
    assert line.manager_of("SW2").staff_id == "TM3"


def test_a_manager_who_left_is_stepped_over() -> None:
    left = [p if p.staff_id != "TM1" else Person("TM1", "Tia Manager", frozenset({"team_manager"}),
                                                  team_id=1, manager_id="SM1", active=False)
            for p in COUNCIL]
    line = LineOfManagement(left)
    assert line.manager_of("SW1").staff_id == "SM1"
    assert "TM1" not in ids(line.chain("SW1"))
    assert ids(line.team_managers(1)) == ["TM2"]  # the leaver is nobody's team manager now


def test_a_manager_naming_nobody_stops_the_chain_and_is_logged(
        line: LineOfManagement, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="qa.people"):
        assert line.chain("SW3") == []
        assert line.manager_of("SW3") is None
    assert any(getattr(r, "manager_id", None) == "GONE" for r in caplog.records)


def test_a_loop_stops_the_walk_instead_of_spinning(caplog: pytest.LogCaptureFixture) -> None:
    looped = LineOfManagement([
        Person("A", "A", frozenset({"team_manager"}), manager_id="B"),
        Person("B", "B", frozenset({"service_manager"}), manager_id="C"),
        Person("C", "C", frozenset({"assistant_director"}), manager_id="A"),
    ])
    with caplog.at_level(logging.WARNING, logger="qa.people"):
        assert ids(looped.chain("A")) == ["B", "C"]
    assert any(r.getMessage() == "line of management: loop" for r in caplog.records)
    assert [r.person.staff_id if r.person else None
            for r in looped.ladder("A", (OWNER, "service_manager", "assistant_director",
                                         "director"))] == ["A", "B", "C", None]


def test_the_case_is_managed_by_the_workers_manager_then_the_team_managers(
        line: LineOfManagement) -> None:
    assert ids(line.case_managers(1, "SW1")) == ["TM1", "TM2"]
    assert ids(line.case_managers(2, "SW2")) == ["TM3"]
    assert ids(line.case_managers(1, None)) == ["TM2", "TM1"]  # unallocated: by name
    assert ids(line.case_managers(3, "NOBODY")) == []


def test_the_next_rung_is_above_the_people_named(line: LineOfManagement) -> None:
    managers = line.case_managers(1, "SW1")
    assert ids(line.next_rung(managers)) == ["SM1"]  # both team managers report to SM1
    assert ids(line.next_rung([line.person("TM1"), line.person("SM1")])) == ["HOS"]


def test_the_frameworks_ladder_resolves_through_the_line(line: LineOfManagement) -> None:
    ladder = (OWNER, "team_manager", "service_manager", "assistant_director")
    rungs = line.ladder("SW1", ladder)
    assert [(r.step, r.person.staff_id if r.person else None) for r in rungs] == [
        (OWNER, "SW1"), ("team_manager", "TM1"), ("service_manager", "SM1"),
        ("assistant_director", "AD1")]
    # a team manager's own ladder: their team manager rung is a colleague, never themselves
    rungs = line.ladder("TM1", ladder)
    assert [r.person.staff_id if r.person else None for r in rungs] == ["TM1", "TM2", "SM1",
                                                                       "AD1"]


def test_a_rung_nobody_holds_is_skipped_not_a_crash(line: LineOfManagement) -> None:
    rungs = line.ladder("SW3", (OWNER, "team_manager", "service_manager", "director"))
    # SW3's manager is missing: a team manager of their team (by name) steps in; above, nobody
    assert [r.person.staff_id if r.person else None for r in rungs] == ["SW3", "TM2", None, None]
    assert line.ladder("NOBODY", (OWNER, "director")) == [
        type(rungs[0])(OWNER, None), type(rungs[0])("director", None)]


def test_nobody_is_named_on_two_rungs() -> None:
    both = LineOfManagement([
        Person("SW", "SW", frozenset({"social_worker"}), manager_id="X"),
        Person("X", "X", frozenset({"team_manager", "service_manager"})),
    ])
    rungs = both.ladder("SW", (OWNER, "team_manager", "service_manager"))
    assert [r.person.staff_id if r.person else None for r in rungs] == ["SW", "X", None]


def test_teams_below_reach_every_level(line: LineOfManagement) -> None:
    assert line.teams_below("TM1") == {1}  # their own team, as its team manager
    assert line.teams_below("SM1") == {1}
    assert line.teams_below("AD1") == {1, 2, 90}
    assert line.teams_below("DIR") == {1, 2, 90}
    assert line.teams_below("SW1") == frozenset()
    assert ids(line.below("SM2")) == ["SW2", "TM3"]


def test_manager_loops_are_found_with_their_members() -> None:
    assert manager_loops({"A": "B", "B": "A", "C": "A", "D": None}) == [["A", "B"]]
    assert manager_loops({"A": "A"}) == [["A"]]
    assert manager_loops({"A": "B", "B": "C", "C": "D"}) == []  # D unknown: a gap, no loop
    assert sorted(map(sorted, manager_loops({"A": "B", "B": "A", "X": "Y", "Y": "Z",
                                             "Z": "X"}))) == [["A", "B"], ["X", "Y", "Z"]]


def test_is_manager() -> None:
    assert is_manager({"team_manager"}) and is_manager(["director", "qa_lead"])
    assert not is_manager({"social_worker", "iro"})
