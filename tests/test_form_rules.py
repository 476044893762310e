"""The audit form's rules (qa/form_rules.py): pure, so many small parametrised cases."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from qa import form_rules as fr
from qa.framework import Framework, Tool
from qa.framework_file import bundled_framework_path, load_framework

TODAY = date(2026, 12, 7)
TOMORROW = TODAY + timedelta(days=1)
OWNERS = frozenset({"SW1", "TM1"})


@pytest.fixture(scope="module")
def bedford() -> Framework:
    return load_framework(bundled_framework_path("bedford_like"))


@pytest.fixture(scope="module")
def tool(framework: Framework) -> Tool:
    return framework.tool_for_area("early_help")


def valid(tool: Tool, **changes: str) -> dict[str, str]:
    """A complete, valid Good audit; keyword names use __ for the dot (action1__due)."""
    values = {fr.domain_id(d.key): "good" for d in tool.domains}
    values |= {
        fr.OVERALL: "good", fr.OUTCOMES: "met", fr.SW_TOOK_PART: "yes",
        fr.CHILD_CONTACTED: "under_12", fr.FAMILY_CONTACTED: "no", fr.SAFEGUARDING: "false",
        fr.STRENGTHS: "A steady, trusted worker.",
    }  # fmt: skip
    values |= {k.replace("__", "."): v for k, v in changes.items()}
    return values


def action(n: int = 1, *, what: str = "Update the plan", owner: str = "SW1",
           due: str = TOMORROW.isoformat(), priority: str = "high") -> dict[str, str]:
    return {fr.action_id(n, "what"): what, fr.action_id(n, "owner"): owner,
            fr.action_id(n, "due"): due, fr.action_id(n, "priority"): priority}


def check(values: dict[str, Any], tool: Tool, framework: Framework,
          today: date = TODAY) -> tuple[fr.Submission | None, dict[str, str]]:
    return fr.validate(values, tool=tool, framework=framework, today=today, owner_ids=OWNERS)


# ---------------------------------------------------------------------------- valid forms


def test_a_complete_form_is_parsed(tool: Tool, framework: Framework) -> None:
    submission, errors = check(valid(tool) | action(1), tool, framework)
    assert errors == {}
    assert submission is not None
    assert list(submission.domain_grades) == [d.key for d in tool.domains]
    assert submission.overall == "good" and submission.outcomes == "met"
    assert submission.sw_took_part is True and submission.family_contacted is False
    assert submission.child_contacted == "under_12"
    assert submission.actions == (fr.ActionEntry(1, "Update the plan", "SW1", TOMORROW, "high"),)
    assert submission.answers()[fr.STRENGTHS] == "A steady, trusted worker."


def test_actions_are_optional_for_good(tool: Tool, framework: Framework) -> None:
    submission, errors = check(valid(tool), tool, framework)
    assert errors == {} and submission is not None and submission.actions == ()


def test_empty_rows_are_ignored_and_actions_renumbered(tool: Tool, framework: Framework) -> None:
    values = valid(tool) | action(3, what="Third row only") | action(5, priority="low")
    submission, errors = check(values, tool, framework)
    assert errors == {} and submission is not None
    assert [(a.seq, a.what) for a in submission.actions] == [(1, "Third row only"),
                                                             (2, "Update the plan")]


def test_rows_beyond_max_actions_are_not_read(tool: Tool, framework: Framework) -> None:
    values = valid(tool) | action(framework.max_actions + 1, owner="nobody")
    submission, errors = check(values, tool, framework)
    assert errors == {} and submission is not None and submission.actions == ()


def test_surrounding_whitespace_is_trimmed(tool: Tool, framework: Framework) -> None:
    submission, _ = check(valid(tool, strengths="  kind  \n") | action(1, what=" Do it "),
                          tool, framework)
    assert submission is not None
    assert submission.strengths == "kind" and submission.actions[0].what == "Do it"


# ---------------------------------------------------------------------------- required answers


def test_every_domain_must_be_graded(tool: Tool, framework: Framework) -> None:
    values = {k: v for k, v in valid(tool).items() if not k.startswith("domain.")}
    submission, errors = check(values, tool, framework)
    assert submission is None
    assert {k for k in errors if k.startswith("domain.")} == {
        fr.domain_id(d.key) for d in tool.domains}


@pytest.mark.parametrize("domain", ["referrals_and_decisions", "assessment", "planning", "review",
                                    "intervention", "participation", "management_oversight"])
def test_one_missing_domain_is_named(tool: Tool, framework: Framework, domain: str) -> None:
    values = valid(tool)
    del values[fr.domain_id(domain)]
    _, errors = check(values, tool, framework)
    assert errors == {fr.domain_id(domain): "Please grade this domain."}


@pytest.mark.parametrize("value", ["", "   ", "excellent", "GOOD"])
def test_a_domain_grade_must_be_on_the_scale(tool: Tool, framework: Framework, value: str) -> None:
    key = fr.domain_id(tool.domains[0].key)
    _, errors = check(valid(tool) | {key: value}, tool, framework)
    assert list(errors) == [key]


def test_every_bedford_standard_must_be_graded(bedford: Framework) -> None:
    tool = bedford.tool_for_area("children_in_need")
    assert len(tool.domains) == 10
    _, errors = check({}, tool, bedford)
    assert sum(k.startswith("domain.") for k in errors) == 10


@pytest.mark.parametrize("key", [fr.OVERALL, fr.OUTCOMES, fr.SW_TOOK_PART, fr.CHILD_CONTACTED,
                                 fr.FAMILY_CONTACTED])
def test_required_choices(tool: Tool, framework: Framework, key: str) -> None:
    values = valid(tool)
    del values[key]
    _, errors = check(values, tool, framework)
    assert list(errors) == [key]


@pytest.mark.parametrize(("key", "value"), [
    (fr.OUTCOMES, "partly"), (fr.SW_TOOK_PART, "maybe"), (fr.CHILD_CONTACTED, "under_16"),
    (fr.FAMILY_CONTACTED, "true"), (fr.OVERALL, "superb"),
])
def test_choices_must_be_offered_values(tool: Tool, framework: Framework, key: str,
                                        value: str) -> None:
    _, errors = check(valid(tool) | {key: value}, tool, framework)
    assert list(errors) == [key]


def test_an_empty_form_names_every_required_field(tool: Tool, framework: Framework) -> None:
    submission, errors = check({}, tool, framework)
    assert submission is None
    assert set(errors) == ({fr.domain_id(d.key) for d in tool.domains}
                           | {fr.OVERALL, fr.OUTCOMES, fr.SW_TOOK_PART, fr.CHILD_CONTACTED,
                              fr.FAMILY_CONTACTED})


# ---------------------------------------------------------------------------- grade rules


@pytest.mark.parametrize("overall", ["outstanding", "good", "requires_improvement", "inadequate"])
@pytest.mark.parametrize("outcomes", ["met", "on_the_way", "not_met"])
def test_good_or_better_needs_outcomes_met_or_on_the_way(
        tool: Tool, framework: Framework, overall: str, outcomes: str) -> None:
    values = valid(tool, overall=overall, outcomes=outcomes) | action(1)
    submission, errors = check(values, tool, framework)
    blocked = overall in ("outstanding", "good") and outcomes == "not_met"
    if blocked:
        assert list(errors) == [fr.OVERALL]
        assert "not met" in errors[fr.OVERALL]
        assert framework.grade(overall).label in errors[fr.OVERALL]
    else:
        assert errors == {} and submission is not None


@pytest.mark.parametrize(("overall", "needs_action"), [
    ("outstanding", False), ("good", False), ("requires_improvement", True), ("inadequate", True),
])
def test_ri_or_inadequate_needs_an_action(tool: Tool, framework: Framework, overall: str,
                                          needs_action: bool) -> None:
    _, errors = check(valid(tool, overall=overall, outcomes="on_the_way"), tool, framework)
    if needs_action:
        assert list(errors) == [fr.action_id(1, "what")]
        assert "at least one action" in errors[fr.action_id(1, "what")]
    else:
        assert errors == {}


def test_a_half_filled_row_does_not_count_as_the_needed_action(
        tool: Tool, framework: Framework) -> None:
    values = valid(tool, overall="inadequate", outcomes="not_met") | {
        fr.action_id(2, "what"): "Strategy meeting"}
    _, errors = check(values, tool, framework)
    assert set(errors) == {fr.action_id(2, "owner"), fr.action_id(2, "due"),
                           fr.action_id(2, "priority")}


def test_ri_with_an_action_in_any_row_is_accepted(tool: Tool, framework: Framework) -> None:
    values = valid(tool, overall="requires_improvement", outcomes="not_met") | action(4)
    submission, errors = check(values, tool, framework)
    assert errors == {} and submission is not None and len(submission.actions) == 1


# ---------------------------------------------------------------------------- action rows


@pytest.mark.parametrize("present", [
    ("what",), ("owner",), ("due",), ("priority",), ("what", "owner"), ("what", "due", "priority"),
    ("owner", "due", "priority"),
])
def test_half_filled_row_errors_on_each_missing_field(
        tool: Tool, framework: Framework, present: tuple[str, ...]) -> None:
    row = {k: v for k, v in action(2).items() if k.split(".")[1] in present}
    _, errors = check(valid(tool) | row, tool, framework)
    missing = {fr.action_id(2, f) for f in fr.ACTION_FIELDS if f not in present}
    assert set(errors) == missing


@pytest.mark.parametrize(("due", "ok"), [
    (TOMORROW.isoformat(), True),
    ((TODAY + timedelta(days=200)).isoformat(), True),
    (TODAY.isoformat(), False),
    ((TODAY - timedelta(days=1)).isoformat(), False),
    ("2020-01-01", False),
    ("2026-02-30", False),
    ("07/12/2027", False),
    ("tomorrow", False),
    ("2027-1-5", False),
])
def test_due_dates_must_be_iso_dates_after_today(tool: Tool, framework: Framework, due: str,
                                                 ok: bool) -> None:
    _, errors = check(valid(tool) | action(1, due=due), tool, framework)
    assert (errors == {}) is ok
    if not ok:
        assert list(errors) == [fr.action_id(1, "due")]


def test_due_date_rule_follows_the_given_today(tool: Tool, framework: Framework) -> None:
    values = valid(tool) | action(1, due="2027-01-05")
    assert check(values, tool, framework, today=date(2027, 1, 4))[1] == {}
    assert list(check(values, tool, framework, today=date(2027, 1, 5))[1]) == ["action1.due"]


@pytest.mark.parametrize("owner", ["XX9", "sw1", "", " "])
def test_owner_must_be_one_of_the_cases_people(tool: Tool, framework: Framework,
                                               owner: str) -> None:
    values = valid(tool) | action(1, owner=owner)
    _, errors = check(values, tool, framework)
    assert list(errors) == [fr.action_id(1, "owner")]


@pytest.mark.parametrize("priority", ["urgent", "HIGH", "1"])
def test_priority_must_be_high_medium_or_low(tool: Tool, framework: Framework,
                                             priority: str) -> None:
    _, errors = check(valid(tool) | action(1, priority=priority), tool, framework)
    assert list(errors) == [fr.action_id(1, "priority")]


@pytest.mark.parametrize(("length", "ok"), [(fr.ACTION_MAX, True), (fr.ACTION_MAX + 1, False)])
def test_action_text_limit(tool: Tool, framework: Framework, length: int, ok: bool) -> None:
    _, errors = check(valid(tool) | action(1, what="a" * length), tool, framework)
    assert (errors == {}) is ok
    if not ok:
        assert f"{fr.ACTION_MAX:,} characters" in errors[fr.action_id(1, "what")]


# ---------------------------------------------------------------------------- narrative


@pytest.mark.parametrize("key", list(fr.TEXT_LIMITS))
def test_narrative_limits(tool: Tool, framework: Framework, key: str) -> None:
    limit = fr.TEXT_LIMITS[key]
    extra = {fr.SAFEGUARDING: "true"} if key == fr.SAFEGUARDING_DETAILS else {}
    assert check(valid(tool) | extra | {key: "w" * limit}, tool, framework)[1] == {}
    _, errors = check(valid(tool) | extra | {key: "w" * (limit + 1)}, tool, framework)
    assert list(errors) == [key]
    assert f"{limit:,} characters" in errors[key] and f"{limit + 1:,} now" in errors[key]


@pytest.mark.parametrize(("child", "family", "needs_feedback"), [
    ("yes", "no", True), ("no", "yes", True), ("yes", "yes", True), ("no", "no", False),
    ("under_12", "no", False), ("under_12", "yes", True),
])
def test_feedback_needed_when_child_or_family_contacted(
        tool: Tool, framework: Framework, child: str, family: str, needs_feedback: bool) -> None:
    values = valid(tool, child_contacted=child, family_contacted=family)
    _, errors = check(values, tool, framework)
    assert (fr.FEEDBACK in errors) is needs_feedback
    assert check(values | {fr.FEEDBACK: "Mum felt listened to."}, tool, framework)[1] == {}


@pytest.mark.parametrize(("flag", "details", "error_on"), [
    ("true", "", fr.SAFEGUARDING_DETAILS),
    ("true", "   ", fr.SAFEGUARDING_DETAILS),
    ("true", "Bruising seen, not followed up.", None),
    ("false", "", None),
    ("", "", None),
    ("yes", "", fr.SAFEGUARDING),
])
def test_safeguarding_flag_needs_details(tool: Tool, framework: Framework, flag: str,
                                         details: str, error_on: str | None) -> None:
    values = valid(tool, safeguarding=flag, safeguarding_details=details)
    submission, errors = check(values, tool, framework)
    assert list(errors) == ([error_on] if error_on else [])
    if submission is not None:
        assert submission.safeguarding is (flag == "true")


def test_details_are_dropped_when_the_flag_is_off(tool: Tool, framework: Framework) -> None:
    values = valid(tool, safeguarding="false", safeguarding_details="typed then unticked")
    submission, _ = check(values, tool, framework)
    assert submission is not None and submission.safeguarding_details == ""


def test_all_errors_are_reported_at_once(tool: Tool, framework: Framework) -> None:
    values = valid(tool, overall="good", outcomes="not_met", strengths="s" * 5000) | action(
        1, due="2000-01-01") | {fr.action_id(2, "owner"): "SW1"}
    _, errors = check(values, tool, framework)
    assert set(errors) == {fr.OVERALL, fr.STRENGTHS, "action1.due", "action2.what",
                           "action2.due", "action2.priority"}


def test_non_string_values_are_read_as_text(tool: Tool, framework: Framework) -> None:
    values: dict[str, Any] = valid(tool) | {fr.STRENGTHS: 12345, fr.WORRIES: None}
    submission, errors = check(values, tool, framework)
    assert errors == {} and submission is not None and submission.strengths == "12345"


# ---------------------------------------------------------------------------- input ids


def test_input_ids_cover_the_tool_and_action_rows(bedford: Framework) -> None:
    tool = bedford.tool_for_area("children_in_need")
    ids = fr.input_ids(tool, bedford.max_actions)
    assert len(ids) == len(set(ids)) == 10 + 12 + 4 * bedford.max_actions
    assert ids[0] == "domain.assessment" and ids[-1] == "action5.priority"
    assert all(fr.is_input_id(i) for i in ids)


@pytest.mark.parametrize(("key", "known"), [
    ("domain.assessment", True), ("overall", True), ("action1.what", True),
    ("action12.priority", True), ("safeguarding_details", True),
    ("audit_id", False), ("verb", False), ("action0.what", False), ("action1.notes", False),
    ("domain.", False), ("domain.Bad-Key", False), ("overall ", False),
])
def test_is_input_id(key: str, known: bool) -> None:
    assert fr.is_input_id(key) is known


def test_values_from_keeps_only_form_entries() -> None:
    data = {"audit_id": 7, "verb": "audit.submit", "domain.planning": "good",
            "overall": "good", "action1.due": "2027-01-01", "action1.owner": "SW1",
            "strengths": "kind", "notes": "dropped", "feedback": 42, "x.y": "z"}
    assert fr.values_from(data) == {"domain.planning": "good", "overall": "good",
                                    "action1.due": "2027-01-01", "action1.owner": "SW1",
                                    "strengths": "kind"}


def test_values_from_can_narrow_to_one_tool(tool: Tool, framework: Framework) -> None:
    known = fr.input_ids(tool, framework.max_actions)
    data = {"domain.planning": "good", "domain.not_in_tool": "good", "action9.what": "x"}
    assert fr.values_from(data, known) == {"domain.planning": "good"}


def test_values_from_caps_absurd_lengths() -> None:
    assert len(fr.values_from({"strengths": "x" * 1_000_000})["strengths"]) == 10_000


def test_label_for() -> None:
    assert fr.label_for(fr.OUTCOME_CHOICES, "on_the_way") == "On the way to being met"
    assert fr.label_for(fr.PRIORITY_CHOICES, "odd") == "odd"
    assert fr.label_for(fr.PRIORITY_CHOICES, None) == ""


@pytest.mark.parametrize(("overall", "flag", "asked"), [
    ("outstanding", "true", True), ("good", "true", True),
    ("requires_improvement", "true", False), ("good", "false", False),
])
def test_a_good_grade_with_a_serious_concern_is_asked_about_never_refused(
        tool: Tool, framework: Framework, overall: str, flag: str, asked: bool) -> None:
    values = valid(tool, overall=overall, safeguarding=flag,
                   safeguarding_details="Bruising seen." if flag == "true" else "")
    if overall == "requires_improvement":
        values |= action()
    submission, errors = check(values, tool, framework)
    assert errors == {} and submission is not None  # valid: a warning at most
    assert fr.needs_confirmation(submission, framework) is asked
