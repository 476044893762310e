"""Moderation's pure rules (qa/moderation.py): the sample, who moderates, calibration."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from qa.moderation import (
    CALIBRATION_MIN,
    OVERALL,
    Calibration,
    Candidate,
    assign,
    sample,
    sample_size,
)


def _audits(n: int, *, inadequate: int = 0, excluded: frozenset[str] = frozenset()
            ) -> list[Candidate]:
    return [Candidate(i, "inadequate" if i <= inadequate else "good", excluded)
            for i in range(1, n + 1)]


def test_the_sample_is_the_rate_rounded_up_with_every_always_grade() -> None:
    assert sample_size(0.10, 0) == 0
    assert sample_size(0.10, 1) == 1
    assert sample_size(0.10, 30) == 3
    assert sample_size(0.10, 31) == 4
    assert sample_size(0.0, 50) == 0
    chosen = sample(_audits(40, inadequate=6), rate=0.10, always=frozenset({"inadequate"}),
                    seed=7)
    # six Inadequate audits exceed the 10% (4): all six, and no more
    assert sorted(c.audit_id for c in chosen) == [1, 2, 3, 4, 5, 6]
    chosen = sample(_audits(40, inadequate=1), rate=0.10, always=frozenset({"inadequate"}),
                    seed=7)
    assert len(chosen) == 4 and chosen[0].audit_id == 1
    assert sample(_audits(40), rate=0.0, always=frozenset({"inadequate"}), seed=1) == []


def test_the_same_seed_gives_the_same_sample_and_another_seed_another() -> None:
    audits = _audits(200)
    one = sample(audits, rate=0.10, always=frozenset(), seed=11)
    assert one == sample(list(reversed(audits)), rate=0.10, always=frozenset(), seed=11)
    assert {c.audit_id for c in one} != {c.audit_id for c in sample(
        audits, rate=0.10, always=frozenset(), seed=12)}


def test_moderators_are_never_excluded_people_and_share_the_work_evenly() -> None:
    audits = [Candidate(i, "good", frozenset({"M1"}) if i % 2 else frozenset())
              for i in range(1, 13)]
    got = assign(audits, ["M1", "M2", "M3"], seed=3)
    assert not got.unassigned
    assert all(got.moderators[a.audit_id] not in a.excluded for a in audits)
    assert sorted(Counter(got.moderators.values()).values()) == [4, 4, 4]


def test_an_audit_nobody_may_moderate_is_reported_not_forced() -> None:
    got = assign([Candidate(1, "good", frozenset({"M1"})), Candidate(2, "good", frozenset())],
                 ["M1"], seed=1)
    assert got.moderators == {2: "M1"} and got.unassigned == (1,)


def test_the_most_constrained_audit_is_served_first() -> None:
    # Audit 2 can only go to M1; audit 1 can go to either. Both must be placed.
    got = assign([Candidate(1, "good", frozenset()), Candidate(2, "good", frozenset({"M2"}))],
                 ["M1", "M2"], seed=5, load={"M1": 0, "M2": 0})
    assert got.moderators[2] == "M1" and got.moderators[1] == "M2"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.frozensets(st.sampled_from(["A", "B", "C", "D"]), max_size=4), max_size=30),
       st.integers(0, 2**32))
def test_assignment_respects_exclusions_and_balance_whatever_the_input(excl, seed) -> None:
    audits = [Candidate(i, "good", e) for i, e in enumerate(excl, start=1)]
    got = assign(audits, ["A", "B", "C", "D"], seed=seed)
    for a in audits:
        if a.audit_id in got.unassigned:
            assert a.excluded == {"A", "B", "C", "D"}
        else:
            assert got.moderators[a.audit_id] not in a.excluded
    open_audits = [a for a in audits if not a.excluded]
    if len(open_audits) == len(audits):  # nobody excluded anywhere: perfectly even
        counts = Counter(got.moderators.values())
        assert max(counts.values(), default=0) - min(
            [counts.get(m, 0) for m in "ABCD"], default=0) <= 1


def test_calibration_says_which_way_an_auditor_leans_and_when_there_are_too_few() -> None:
    c = Calibration("AUD", OVERALL, audits=5, grades=5, agreed=2, higher=3, lower=0)
    assert c.agreement == 0.4 and c.tendency == "higher" and c.enough
    assert Calibration("AUD", "voice", 4, 8, 8, 0, 0).tendency == "even"
    low = Calibration("B", OVERALL, 4, 4, 1, 0, 3)
    assert low.tendency == "lower" and not low.enough and CALIBRATION_MIN == 5
    assert Calibration("C", OVERALL, 0, 0, 0, 0, 0).agreement == 0.0
