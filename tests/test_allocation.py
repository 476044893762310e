"""Monthly allocation rules (SPEC R3, R9): generated councils over many seeds plus crafted cases."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from datetime import date, timedelta
from fractions import Fraction
from functools import cache

import pytest

from qa.allocation import (
    Allocation,
    AllocationRequest,
    AllocationResult,
    Auditor,
    CaseInfo,
    allocate,
    new_seed,
    repeat_window_start,
)
from qa.periods import month_last_day
from tests.allocation_checker import check_allocation

JUNE = date(2026, 6, 1)
AREAS = ("early_help", "child_protection", "children_in_care", "care_leavers")
LAMBETH = {"early_help": 40, "child_protection": 70, "children_in_care": 60, "care_leavers": 70}
SEEDS = range(200)


# ---------------------------------------------------------------------------------------------
# Generated data: ~150 staff, ~40 auditors in 12 teams, 2,000 open cases over 4 areas.


@cache
def council(
    data_seed: int = 0, reaudit_rate: float = 0.01, n_cases: int = 2000
) -> tuple[tuple[Auditor, ...], tuple[CaseInfo, ...]]:
    rng = random.Random(data_seed)
    teams = [f"T{i:02d}" for i in range(12)]
    staff = [(f"S{i:03d}", teams[i % len(teams)]) for i in range(150)]
    chosen = sorted(rng.sample(range(len(staff)), 40))
    auditors = tuple(
        Auditor(staff[i][0], staff[i][1], rng.choices([0, 1, 2], weights=[1, 14, 3])[0])
        for i in chosen
    )
    by_team: dict[str, list[str]] = {}
    for sid, team in staff:
        by_team.setdefault(team, []).append(sid)
    cases = []
    for i in range(n_cases):
        team = rng.choice(teams)
        roll = rng.random()
        if roll < 0.05:
            worker = None  # unallocated case
        elif roll < 0.08:
            worker = rng.choice(staff)[0]  # held outside the case's team, sometimes by an auditor
        else:
            worker = rng.choice(by_team[team])
        last = None if rng.random() < 0.6 else date(2024, 1, 1) + timedelta(days=rng.randrange(880))
        due = None
        if last is not None and rng.random() < reaudit_rate * 2.5:
            due = last + timedelta(days=rng.choice([243, 365]))
        cases.append(
            CaseInfo(
                case_ref=f"C{i:05d}",
                team=team,
                social_worker_id=worker,
                area=rng.choices(AREAS, weights=[2, 3, 3, 2])[0],
                opened_on=date(2020, 1, 1) + timedelta(days=rng.randrange(2000)),
                last_audited_on=last,
                reaudit_due_on=due,
            )
        )
    return auditors, tuple(cases)


def request(seed: int, data_seed: int = 0, **changes: object) -> AllocationRequest:
    auditors, cases = council(data_seed)
    req = AllocationRequest(month=JUNE, seed=seed, auditors=auditors, cases=cases)
    return dataclasses.replace(req, **changes)


def slots(req: AllocationRequest) -> int:
    return sum(a.quota for a in req.auditors)


def loads(result: AllocationResult) -> Counter[str]:
    return Counter(al.auditor_id for al in result.allocations)


def by_area(result: AllocationResult) -> Counter[str]:
    return Counter(al.area for al in result.allocations)


def case(
    ref: str, team: str, area: str = "cp", worker: str | None = None, **kw: object
) -> CaseInfo:
    return CaseInfo(ref, team, worker, area, date(2025, 1, 1), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Every rule over many seeds, verified by the independent checker.


@pytest.mark.parametrize("seed", SEEDS)
def test_lambeth_counts_with_short_capacity(seed: int) -> None:
    req = request(seed, data_seed=seed % 5, area_counts=LAMBETH)
    result = allocate(req)
    assert check_allocation(req, result) == []
    assert len(result.allocations) == slots(req)  # capacity is the limit: every slot used
    assert all(loads(result)[a.staff_id] == a.quota for a in req.auditors)
    assert not result.blackout


@pytest.mark.parametrize("seed", SEEDS)
def test_no_area_counts(seed: int) -> None:
    req = request(seed, data_seed=seed % 5)
    result = allocate(req)
    assert check_allocation(req, result) == []
    assert all(loads(result)[a.staff_id] == a.quota for a in req.auditors)
    assert result.shortfalls == ()


@pytest.mark.parametrize("seed", range(100))
def test_small_counts_leave_spare_capacity(seed: int) -> None:
    counts = {"early_help": 4, "child_protection": 7, "children_in_care": 6, "care_leavers": 7}
    req = request(seed, data_seed=seed % 5, area_counts=counts)
    result = allocate(req)
    assert check_allocation(req, result) == []
    assert by_area(result) == counts  # met exactly, never exceeded
    unused = slots(req) - sum(counts.values())
    assert (
        f"spare auditor capacity: {unused} of {slots(req)} slots unused (monthly area counts met)"
        in (result.shortfalls)
    )
    # Bedford: with spare capacity nobody gets a second case while a colleague has none.
    got = loads(result)
    assert max(got.values()) == 1
    for a in req.auditors:
        if got[a.staff_id] < a.quota:
            assert (
                f"auditor {a.staff_id}: {got[a.staff_id]} of {a.quota} cases allocated"
                in result.shortfalls
            )


@pytest.mark.parametrize("seed", range(100))
def test_more_reaudits_and_tight_counts(seed: int) -> None:
    auditors, cases = council(seed % 3, reaudit_rate=0.08)
    counts = {
        "early_help": 3,
        "child_protection": 12,
        "children_in_care": 9,
    }  # care_leavers not counted
    req = AllocationRequest(JUNE, seed, auditors, cases, area_counts=counts)
    result = allocate(req)
    assert check_allocation(req, result) == []
    assert "care_leavers" not in by_area(result)


@pytest.mark.parametrize("seed", range(100))
def test_team_spread_is_proportional(seed: int) -> None:
    req = request(seed, data_seed=seed % 5, area_counts=LAMBETH)
    result = allocate(req)
    cases = {c.case_ref: c for c in req.cases}
    last, start = month_last_day(JUNE), repeat_window_start(JUNE, 6)
    eligible = Counter(
        (c.area, c.team)
        for c in req.cases
        if not (c.reaudit_due_on and c.reaudit_due_on <= last)
        and not (c.last_audited_on and c.last_audited_on >= start)
    )
    drawn = Counter(
        (cases[al.case_ref].area, cases[al.case_ref].team)
        for al in result.allocations
        if al.reason == "random"
    )
    for area in AREAS:
        pool = sum(n for (a, _), n in eligible.items() if a == area)
        total = sum(n for (a, _), n in drawn.items() if a == area)
        for (a, team), n in eligible.items():
            if a == area:
                share = Fraction(total * n, pool)
                assert abs(drawn[(area, team)] - share) < 1, (
                    area,
                    team,
                    drawn[(area, team)],
                    share,
                )


# ---------------------------------------------------------------------------------------------
# Determinism and randomness


def test_same_request_same_result_whatever_the_input_order() -> None:
    req = request(1234, area_counts=LAMBETH)
    shuffled = list(req.cases)
    random.Random(5).shuffle(shuffled)
    auditors = list(req.auditors)[::-1]
    counts = dict(reversed(list(LAMBETH.items())))
    again = dataclasses.replace(
        req, cases=tuple(shuffled), auditors=tuple(auditors), area_counts=counts
    )
    assert allocate(req) == allocate(again) == allocate(req)


def test_different_seeds_pick_different_cases() -> None:
    picks = {frozenset(al.case_ref for al in allocate(request(s)).allocations) for s in range(50)}
    assert len(picks) == 50


def test_cases_are_drawn_uniformly_within_a_team() -> None:
    cases = [case(f"A{i}", "T1") for i in range(10)] + [case(f"B{i}", "T2") for i in range(10)]
    auditors = [Auditor("X1", "T3"), Auditor("X2", "T3")]
    hits: Counter[str] = Counter()
    for seed in range(400):
        result = allocate(AllocationRequest(JUNE, seed, auditors, cases))
        teams = sorted(al.case_ref[0] for al in result.allocations)
        assert teams == ["A", "B"]  # one from each team: shares are 1 and 1
        hits.update(al.case_ref for al in result.allocations)
    assert set(hits) == {c.case_ref for c in cases}
    assert all(15 <= n <= 70 for n in hits.values()), hits  # binomial(400, 0.1): mean 40


def test_new_seed_is_a_63_bit_int() -> None:
    seeds = {new_seed() for _ in range(20)}
    assert len(seeds) == 20
    assert all(0 <= s < 2**63 for s in seeds)


# ---------------------------------------------------------------------------------------------
# Blackout, quotas, own team and caseload


@pytest.mark.parametrize("month", [date(2026, 8, 1), date(2026, 12, 1)])
def test_blackout_month_allocates_nothing(month: date) -> None:
    req = request(3, month=month, blackout_months=frozenset({8, 12}))
    result = allocate(req)
    assert result.blackout and result.allocations == ()
    assert result.shortfalls == (f"{month:%Y-%m} is a blackout month: no cases allocated",)
    assert check_allocation(req, result) == []


def test_not_blackout_outside_those_months() -> None:
    req = request(3, blackout_months=frozenset({8, 12}))
    result = allocate(req)
    assert not result.blackout and result.allocations
    assert check_allocation(req, result) == []


def test_quota_zero_gets_nothing_and_quota_two_gets_two() -> None:
    auditors = [Auditor("Z", "T1", 0), Auditor("ONE", "T1", 1), Auditor("TWO", "T2", 2)]
    cases = [case(f"C{i}", "T9") for i in range(10)]
    result = allocate(AllocationRequest(JUNE, 1, auditors, cases))
    assert loads(result) == {"ONE": 1, "TWO": 2}
    assert result.shortfalls == ()


@pytest.mark.parametrize("seed", range(50))
def test_never_own_team_or_own_caseload(seed: int) -> None:
    auditors = [Auditor("M1", "T1"), Auditor("M2", "T2"), Auditor("M3", "T3")]
    cases = [
        case("OWN1", "T1"),
        case("OWN2", "T2"),
        case("HELD1", "T2", worker="M1"),  # M1 is the allocated worker on another team's case
        case("HELD3", "T1", worker="M3"),
        case("FREE", "T9"),
    ]
    result = allocate(AllocationRequest(JUNE, seed, auditors, cases))
    pairs = {(al.auditor_id, al.case_ref) for al in result.allocations}
    assert not pairs & {("M1", "OWN1"), ("M2", "OWN2"), ("M1", "HELD1"), ("M3", "HELD3")}
    assert len(pairs) == 3
    assert check_allocation(AllocationRequest(JUNE, seed, auditors, cases), result) == []


def test_everyone_in_one_team_allocates_nothing_and_says_who() -> None:
    auditors = [Auditor("M1", "T1"), Auditor("M2", "T1", 2)]
    cases = [case(f"C{i}", "T1") for i in range(5)]
    req = AllocationRequest(JUNE, 9, auditors, cases)
    result = allocate(req)
    assert result.allocations == ()
    assert result.shortfalls == (
        "spare auditor capacity: 3 of 3 slots unused (the cases left are in the auditors' own "
        "teams, teams they manage or their caseloads)",
        "auditor M1: 0 of 1 cases allocated",
        "auditor M2: 0 of 2 cases allocated",
    )
    assert check_allocation(req, result) == []


def test_too_few_cases() -> None:
    auditors = [Auditor(f"M{i}", "T1") for i in range(4)]
    cases = [case("C1", "T2"), case("C2", "T3")]
    req = AllocationRequest(JUNE, 2, auditors, cases)
    result = allocate(req)
    assert len(result.allocations) == 2
    assert (
        result.shortfalls[0]
        == "spare auditor capacity: 2 of 4 slots unused (not enough eligible cases)"
    )
    assert len([line for line in result.shortfalls if line.startswith("auditor M")]) == 2
    assert check_allocation(req, result) == []


def test_no_auditors() -> None:
    req = AllocationRequest(
        JUNE, 2, [Auditor("M1", "T1", 0)], [case("C1", "T2")], area_counts={"cp": 3}
    )
    result = allocate(req)
    assert result.allocations == ()
    assert result.shortfalls == (
        "no auditor has a quota this month: nothing allocated",
        "cp: 3 wanted, 0 allocated (only 1 eligible case; not enough auditor capacity)",
    )
    assert check_allocation(req, result) == []


def test_no_cases_at_all() -> None:
    req = AllocationRequest(JUNE, 2, [Auditor("M1", "T1")], [])
    result = allocate(req)
    assert result.allocations == ()
    assert "auditor M1: 0 of 1 cases allocated" in result.shortfalls
    assert check_allocation(req, result) == []


# ---------------------------------------------------------------------------------------------
# Matching: a full assignment is found whenever one exists.


@pytest.mark.parametrize("seed", SEEDS)
def test_matching_does_not_strand_an_auditor(seed: int) -> None:
    # A1 (T1) can only take ANY; A2 (T2) can take ANY or MINE_T1. Greedy A2-first strands A1.
    auditors = [Auditor("A1", "T1"), Auditor("A2", "T2")]
    cases = [case("ANY", "T3"), case("MINE_T1", "T1")]
    result = allocate(AllocationRequest(JUNE, seed, auditors, cases))
    assert {(al.auditor_id, al.case_ref) for al in result.allocations} == {
        ("A1", "ANY"),
        ("A2", "MINE_T1"),
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_matching_with_caseload_constraints_has_one_solution(seed: int) -> None:
    auditors = [Auditor("A1", "X"), Auditor("A2", "X"), Auditor("A3", "Y")]
    cases = [
        case("C1", "Y", worker="A1"),  # only A2
        case("C2", "Y", worker="A2"),  # only A1
        case("C3", "Z"),  # anyone, but A3 has nothing else
    ]
    req = AllocationRequest(JUNE, seed, auditors, cases)
    result = allocate(req)
    assert {(al.auditor_id, al.case_ref) for al in result.allocations} == {
        ("A1", "C2"),
        ("A2", "C1"),
        ("A3", "C3"),
    }
    assert check_allocation(req, result) == []


@pytest.mark.parametrize("seed", range(50))
def test_sample_case_no_auditor_can_take_is_replaced_from_the_same_team(seed: int) -> None:
    # Most of T2's cases are on A1's caseload, and A1 is the only auditor outside T2: the allocator
    # must reach past them to OK, and B1 (T2) can only take T1's case.
    auditors = [Auditor("A1", "T1"), Auditor("B1", "T2")]
    cases = [case(f"H{i}", "T2", worker="A1") for i in range(5)] + [
        case("OK", "T2"),
        case("T1CASE", "T1"),
    ]
    req = AllocationRequest(JUNE, seed, auditors, cases)
    result = allocate(req)
    assert {(al.auditor_id, al.case_ref) for al in result.allocations} == {
        ("A1", "OK"),
        ("B1", "T1CASE"),
    }
    assert check_allocation(req, result) == []


# ---------------------------------------------------------------------------------------------
# Repeat window and re-audits (R9)


@pytest.mark.parametrize(
    ("last_audited", "eligible"),
    [
        (None, True),
        (date(2025, 12, 31), True),  # just before the 6-month window that starts 1 Jan 2026
        (date(2026, 1, 1), False),
        (date(2026, 6, 30), False),
        (date(2026, 7, 2), False),  # audited this month already
    ],
)
def test_repeat_window_boundary(last_audited: date | None, eligible: bool) -> None:
    month = date(2026, 7, 1)
    assert repeat_window_start(month, 6) == date(2026, 1, 1)
    req = AllocationRequest(
        month, 1, [Auditor("M", "T1")], [case("C", "T2", last_audited_on=last_audited)]
    )
    result = allocate(req)
    assert bool(result.allocations) is eligible
    assert check_allocation(req, result) == []


@pytest.mark.parametrize(
    ("due", "allocated"),
    [
        (date(2026, 6, 30), True),  # due on the month's last day
        (date(2026, 3, 1), True),  # overdue
        (date(2026, 7, 1), False),  # due next month: still inside the repeat window
    ],
)
def test_reaudit_due_overrides_the_window(due: date, allocated: bool) -> None:
    c = case("RE", "T2", last_audited_on=date(2026, 2, 1), reaudit_due_on=due)
    req = AllocationRequest(JUNE, 1, [Auditor("M", "T1")], [c])
    result = allocate(req)
    if allocated:
        assert result.allocations == (Allocation("RE", "M", "cp", "reaudit"),)
    else:
        assert result.allocations == ()
    assert check_allocation(req, result) == []


@pytest.mark.parametrize("seed", range(50))
def test_reaudits_first_oldest_first_and_count_toward_the_area(seed: int) -> None:
    reaudits = [
        case("NEWEST", "T2", last_audited_on=date(2025, 10, 1), reaudit_due_on=date(2026, 6, 1)),
        case("OLDEST", "T2", last_audited_on=date(2025, 1, 1), reaudit_due_on=date(2025, 9, 1)),
        case("MIDDLE", "T2", last_audited_on=date(2025, 5, 1), reaudit_due_on=date(2026, 1, 1)),
    ]
    randoms = [case(f"R{i}", "T3") for i in range(20)]
    auditors = [Auditor(f"M{i}", "T1") for i in range(4)]
    req = AllocationRequest(JUNE, seed, auditors, reaudits + randoms, area_counts={"cp": 2})
    result = allocate(req)
    assert {al.case_ref for al in result.allocations} == {"OLDEST", "MIDDLE"}
    assert {al.reason for al in result.allocations} == {"reaudit"}
    assert (
        "re-audit NEWEST (due 2026-06-01) not allocated: the cp count of 2 is already filled"
        in result.shortfalls
    )
    assert check_allocation(req, result) == []


def test_reaudit_in_an_uncounted_area_is_reported() -> None:
    c = case(
        "RE",
        "T2",
        area="care_leavers",
        last_audited_on=date(2025, 1, 1),
        reaudit_due_on=date(2026, 1, 1),
    )
    req = AllocationRequest(
        JUNE, 1, [Auditor("M", "T1")], [c, case("X", "T2")], area_counts={"cp": 1}
    )
    result = allocate(req)
    assert [al.case_ref for al in result.allocations] == ["X"]
    assert result.shortfalls == (
        "re-audit RE (due 2026-01-01) not allocated: area care_leavers has no audit count this month",
    )
    assert check_allocation(req, result) == []


def test_reaudit_only_its_own_team_could_take_is_reported() -> None:
    c = case("RE", "T1", last_audited_on=date(2025, 1, 1), reaudit_due_on=date(2026, 1, 1))
    req = AllocationRequest(JUNE, 1, [Auditor("M", "T1")], [c, case("X", "T2")])
    result = allocate(req)
    assert [al.case_ref for al in result.allocations] == ["X"]
    assert result.shortfalls == (
        "re-audit RE (due 2026-01-01) not allocated: every auditor is in the case's team, manages it or holds the case",
    )
    assert check_allocation(req, result) == []


def test_already_allocated_cases_are_left_alone() -> None:
    cases = [case("THEMATIC", "T2"), case("OTHER", "T2")]
    req = AllocationRequest(
        JUNE, 1, [Auditor("M", "T1", 2)], cases, already_allocated=frozenset({"THEMATIC"})
    )
    result = allocate(req)
    assert [al.case_ref for al in result.allocations] == ["OTHER"]
    assert check_allocation(req, result) == []


# ---------------------------------------------------------------------------------------------
# Area targets


def test_lambeth_counts_scaled_to_40_slots_by_largest_remainder() -> None:
    auditors, cases = council(0)
    ones = tuple(dataclasses.replace(a, quota=1) for a in auditors)  # 40 auditors, one case each
    plain = tuple(dataclasses.replace(c, reaudit_due_on=None) for c in cases)
    rounded_up: Counter[str] = Counter()
    for seed in range(30):
        req = AllocationRequest(JUNE, seed, ones, plain, area_counts=LAMBETH)
        result = allocate(req)
        got = by_area(result)
        # Exact shares 6.67, 11.67, 10 and 11.67: floors 6, 11, 10, 11; two of the .67s round up.
        assert got["children_in_care"] == 10
        assert got["early_help"] in (6, 7)
        assert got["child_protection"] in (11, 12) and got["care_leavers"] in (11, 12)
        assert sum(got.values()) == 40
        rounded_up.update(a for a, n in got.items() if n in (7, 12))
        assert (
            "children_in_care: 60 wanted, 10 allocated (not enough auditor capacity)"
            in result.shortfalls
        )
        assert check_allocation(req, result) == []
    assert set(rounded_up) == {
        "early_help",
        "child_protection",
        "care_leavers",
    }  # ties broken by seed


def test_area_with_too_few_cases_is_reported_and_capacity_moves_on() -> None:
    auditors = [Auditor(f"M{i}", "T1") for i in range(10)]
    cases = [case(f"E{i}", "T2", area="early_help") for i in range(2)] + [
        case(f"P{i}", "T2", area="cp") for i in range(30)
    ]
    req = AllocationRequest(JUNE, 4, auditors, cases, area_counts={"early_help": 5, "cp": 5})
    result = allocate(req)
    assert by_area(result) == {"early_help": 2, "cp": 5}
    assert result.shortfalls[0] == "early_help: 5 wanted, 2 allocated (only 2 eligible cases)"
    assert (
        result.shortfalls[1]
        == "spare auditor capacity: 3 of 10 slots unused (not enough eligible cases)"
    )
    assert check_allocation(req, result) == []

    # With capacity short, the area that cannot use its share passes it on to the others.
    tight = dataclasses.replace(
        req, auditors=auditors[:6], area_counts={"early_help": 10, "cp": 10}
    )
    result = allocate(tight)
    assert by_area(result) == {"early_help": 2, "cp": 4}
    assert check_allocation(tight, result) == []


@pytest.mark.parametrize("seed", range(50))
def test_constraint_moves_an_areas_share_and_team_spread_follows(seed: int) -> None:
    # Area "a" cases are all in T1, the only auditors' team: its share (1 of 6) moves to "b", and
    # b's 6 cases must still split 3/3 between T2 and T3.
    auditors = [Auditor(f"M{i}", "T1") for i in range(6)]
    cases = [case(f"A{i}", "T1", area="a") for i in range(10)] + [
        case(f"B{i}", team, area="b") for i, team in enumerate(["T2", "T3"] * 6)
    ]
    team_of = {c.case_ref: c.team for c in cases}
    req = AllocationRequest(JUNE, seed, auditors, cases, area_counts={"a": 3, "b": 10})
    result = allocate(req)
    assert by_area(result) == {"b": 6}
    assert Counter(team_of[al.case_ref] for al in result.allocations) == {"T2": 3, "T3": 3}
    assert result.shortfalls[:2] == (
        "a: 3 wanted, 0 allocated (not enough auditor capacity; "
        "1 could not go to an auditor outside the case's team, the teams they manage and their "
        "caseload)",
        "b: 10 wanted, 6 allocated (not enough auditor capacity)",
    )
    assert check_allocation(req, result) == []


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"month": date(2026, 6, 2)}, "first day"),
        ({"repeat_window_months": -1}, "negative"),
        ({"auditors": (Auditor("A", "T"), Auditor("A", "U"))}, "more than once: A"),
        ({"cases": (case("C", "T"), case("C", "U"))}, "more than once: C"),
        ({"auditors": (Auditor("A", "T", -1),)}, "negative quota"),
        ({"area_counts": {"cp": -2}}, "negative count"),
    ],
)
def test_bad_requests_are_refused(changes: dict[str, object], message: str) -> None:
    req = dataclasses.replace(AllocationRequest(JUNE, 1, [], []), **changes)
    with pytest.raises(ValueError, match=message):
        allocate(req)


# ---------------------------------------------------------------------------------------------
# The checker itself catches broken results


def _good() -> tuple[AllocationRequest, AllocationResult]:
    auditors = [Auditor("M1", "T1"), Auditor("M2", "T2")]
    cases = [
        case("C1", "T2"),
        case("C2", "T1"),
        case("C3", "T3", worker="M1"),
        case("OLD", "T3", last_audited_on=date(2026, 3, 1)),
        case("RE", "T3", last_audited_on=date(2025, 3, 1), reaudit_due_on=date(2026, 1, 1)),
    ]
    req = AllocationRequest(JUNE, 1, auditors, cases, area_counts={"cp": 2})
    result = allocate(req)
    assert check_allocation(req, result) == []
    return req, result


def _with(
    result: AllocationResult, *allocations: Allocation, shortfalls: tuple[str, ...] | None = None
) -> AllocationResult:
    return dataclasses.replace(
        result,
        allocations=allocations,
        shortfalls=result.shortfalls if shortfalls is None else shortfalls,
    )


@pytest.mark.parametrize(
    ("allocations", "expected"),
    [
        (
            (Allocation("C2", "M1", "cp", "random"), Allocation("RE", "M2", "cp", "reaudit")),
            "own team",
        ),
        (
            (Allocation("C3", "M1", "cp", "random"), Allocation("RE", "M2", "cp", "reaudit")),
            "own caseload",
        ),
        (
            (Allocation("OLD", "M1", "cp", "random"), Allocation("RE", "M2", "cp", "reaudit")),
            "window",
        ),
        (
            (Allocation("RE", "M1", "cp", "reaudit"), Allocation("RE", "M2", "cp", "reaudit")),
            "more than once",
        ),
        (
            (Allocation("C1", "M1", "cp", "reaudit"), Allocation("RE", "M2", "cp", "reaudit")),
            "none is due",
        ),
        (
            (Allocation("RE", "M1", "cp", "random"), Allocation("C2", "M2", "cp", "random")),
            "marked random",
        ),
        (
            (Allocation("C1", "M1", "cp", "random"), Allocation("C2", "M2", "cp", "random")),
            "left out while random",
        ),
        ((Allocation("RE", "M2", "cp", "reaudit"),), "not named in shortfalls"),
        (
            (Allocation("C1", "M1", "xx", "random"), Allocation("RE", "M2", "cp", "reaudit")),
            "area 'xx'",
        ),
    ],
)
def test_checker_catches(allocations: tuple[Allocation, ...], expected: str) -> None:
    req, result = _good()
    problems = check_allocation(req, _with(result, *allocations))
    assert any(expected in p for p in problems), problems


def test_checker_catches_over_quota_over_count_and_blackout_flag() -> None:
    req, result = _good()
    extra = (
        Allocation("C1", "M1", "cp", "random"),
        Allocation("RE", "M1", "cp", "reaudit"),
        Allocation("C2", "M2", "cp", "random"),
    )
    problems = check_allocation(req, _with(result, *extra))
    assert any("quota 1" in p for p in problems)
    assert any("more than its count" in p for p in problems)
    assert any(
        "blackout flag" in p
        for p in check_allocation(req, dataclasses.replace(result, blackout=True))
    )


def test_checker_catches_an_unused_auditor_and_unfair_team_spread() -> None:
    auditors = [Auditor("M1", "T1"), Auditor("M2", "T1")]
    cases = [case(f"A{i}", "T2") for i in range(5)] + [case(f"B{i}", "T3") for i in range(5)]
    req = AllocationRequest(JUNE, 1, auditors, cases)
    result = allocate(req)
    assert check_allocation(req, result) == []
    lopsided = _with(
        result, Allocation("A0", "M1", "cp", "random"), Allocation("A1", "M2", "cp", "random")
    )
    assert any("team T2 over its share" in p for p in check_allocation(req, lopsided))
    idle = _with(result, result.allocations[0], shortfalls=("auditor M2: 0 of 1 cases allocated",))
    assert any("could take a free case" in p for p in check_allocation(req, idle))


def test_checker_catches_unbalanced_loads_and_unproportional_areas() -> None:
    auditors = [Auditor("M1", "T1", 2), Auditor("M2", "T1", 2)]
    cases = [
        case("A", "T2", area="a"),
        case("B", "T2", area="b"),
        case("A2", "T2", area="a"),
        case("B2", "T3", area="b"),
    ]
    req = AllocationRequest(JUNE, 1, auditors, cases, area_counts={"a": 1, "b": 1})
    result = allocate(req)
    assert check_allocation(req, result) == []
    assert sorted(loads(result).values()) == [1, 1]
    unbalanced = _with(
        result, Allocation("A", "M1", "a", "random"), Allocation("B", "M1", "b", "random")
    )
    assert any("has 2 while M2 has 0" in p for p in check_allocation(req, unbalanced))
    tilted = dataclasses.replace(
        req, area_counts={"a": 2, "b": 2}, auditors=[Auditor("M1", "T1", 2)]
    )
    bad = _with(result, Allocation("A", "M1", "a", "random"), Allocation("A2", "M1", "a", "random"))
    assert any("above its share" in p for p in check_allocation(tilted, bad))


# ---------------------------------------------------------------------------------------------
# The line of management (issue 12): never a case from a team below the auditor.


def _hierarchy_request(seed: int) -> AllocationRequest:
    """A service manager over T1-T2, a head of service over T1-T4 and two team managers."""
    auditors = [
        Auditor("SM", "-", 1, frozenset({"T1", "T2"})),
        Auditor("HOS", "-", 2, frozenset({"T1", "T2", "T3", "T4"})),
        Auditor("TM1", "T1", 1, frozenset({"T1"})),
        Auditor("TM5", "T5", 1, frozenset({"T5"})),
    ]
    cases = [case(f"C{t}{i}", f"T{t}") for t in range(1, 7) for i in range(6)]
    return AllocationRequest(JUNE, seed, auditors, cases)


@pytest.mark.parametrize("seed", range(60))
def test_service_manager_and_head_of_service_never_get_a_case_from_below(seed: int) -> None:
    req = _hierarchy_request(seed)
    result = allocate(req)
    team_of = {c.case_ref: c.team for c in req.cases}
    got = {a: sorted(team_of[al.case_ref] for al in result.allocations if al.auditor_id == a)
           for a in ("SM", "HOS", "TM1", "TM5")}
    assert not {"T1", "T2"} & set(got["SM"])
    assert not {"T1", "T2", "T3", "T4"} & set(got["HOS"])
    assert "T1" not in got["TM1"] and "T5" not in got["TM5"]
    assert loads(result) == {"SM": 1, "HOS": 2, "TM1": 1, "TM5": 1}  # room for everyone
    assert check_allocation(req, result) == []


def test_a_head_of_service_over_every_team_gets_nothing_and_it_is_said() -> None:
    auditors = [Auditor("HOS", "-", 1, frozenset({"T1", "T2"})), Auditor("TM", "T1")]
    cases = [case("A", "T1"), case("B", "T2")]
    req = AllocationRequest(JUNE, 3, auditors, cases)
    result = allocate(req)
    assert [(al.auditor_id, al.case_ref) for al in result.allocations] == [("TM", "B")]
    assert "auditor HOS: 0 of 1 cases allocated" in result.shortfalls
    assert check_allocation(req, result) == []


def test_the_dry_run_says_which_rule_excluded_what() -> None:
    from qa.allocation import (
        RULE_ALREADY_ALLOCATED,
        RULE_MANAGED_TEAMS,
        RULE_NO_AREA_COUNT,
        RULE_OWN_CASELOAD,
        RULE_OWN_TEAM,
        RULE_REPEAT_WINDOW,
        Exclusion,
    )

    auditors = [Auditor("SM", "-", 1, frozenset({"T1", "T2"})), Auditor("TM3", "T3")]
    cases = [
        case("A1", "T1"), case("A2", "T1"), case("B1", "T2"), case("C1", "T3"),
        case("D1", "T4", worker="TM3"),  # held by TM3 in another team
        case("E1", "T4"),
        case("OLD", "T4", last_audited_on=date(2026, 3, 1)),  # inside the 6-month window
        case("TAKEN", "T4"),
        case("EH", "T4", area="early_help"),  # area with no count
    ]
    req = AllocationRequest(JUNE, 5, auditors, cases, area_counts={"cp": 5, "early_help": 0},
                            already_allocated=frozenset({"TAKEN"}))
    result = allocate(req)
    assert set(result.exclusions) == {
        Exclusion(RULE_ALREADY_ALLOCATED, 1),
        Exclusion(RULE_REPEAT_WINDOW, 1),
        Exclusion(RULE_NO_AREA_COUNT, 1),
        Exclusion(RULE_MANAGED_TEAMS, 3, "SM", ("T1", "T2")),
        Exclusion(RULE_OWN_TEAM, 1, "TM3", ("T3",)),
        Exclusion(RULE_OWN_CASELOAD, 1, "TM3"),
    }
    assert check_allocation(req, result) == []


@pytest.mark.parametrize("seed", range(0, 200, 10))
def test_managers_over_generated_teams_satisfy_every_rule(seed: int) -> None:
    """The generated council with a few auditors managing groups of teams."""
    auditors, cases = council()
    teams = sorted({c.team for c in cases})
    managed = [frozenset(teams[i:i + 3]) for i in range(0, 12, 3)]
    auditors = tuple(dataclasses.replace(a, managed_teams=managed[n % 4] | {a.team})
                     if n % 5 == 0 else a for n, a in enumerate(auditors))
    req = AllocationRequest(JUNE, seed, auditors, cases, area_counts=LAMBETH)
    result = allocate(req)
    by_id = {a.staff_id: a for a in auditors}
    team_of = {c.case_ref: c.team for c in cases}
    for al in result.allocations:
        assert team_of[al.case_ref] not in by_id[al.auditor_id].managed_teams
    assert check_allocation(req, result) == []
