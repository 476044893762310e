"""Tests for the framework file (SPEC R1): bundled examples, defaults, and bad-file errors."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import date, time
from pathlib import Path

import pytest

from qa.framework import DEFAULT_ROLES, Framework, Grade
from qa.framework_file import (
    CALENDAR_REGIONS,
    FrameworkError,
    bundled_framework_path,
    describe,
    load_framework,
    parse_framework,
)

MARK = "# <-- error"

# A small but realistic multi-line file; each bad-file case edits one line of it.
BASE = """\
# Testshire framework used by the tests
authority = "Testshire County Council"

[grades]
good_or_better = ["outstanding", "good"]

[auditing]
look_back_months = 6
blackout_months = [8]

[auditing.quotas]
team_manager = 1
iro = 2

[areas.children_in_need]
label = "Children in need"
tool = "core"
monthly_count = 10

[areas.children_in_care]
label = "Children in care"
tool = "core"

[tools.core]
label = "Core audit"

[[tools.core.domains]]
key = "assessment"
title = "Assessment"
questions = ["Is the assessment up to date?"]

[[tools.core.domains]]
key = "planning"
title = "Planning"
questions = [
    "Is there a plan?",
    "Is the plan reviewed?",
]

[escalation]
ladder = ["owner", "team_manager"]
step_days = 7

[escalation.remedial_days]
inadequate = 7

[moderation]
rate = 0.1

[calendar]
extra_closures = ["2025-12-24"]

[schedule]
daily_time = "09:30"
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    """Replace exactly one occurrence, so a test cannot silently edit the wrong line."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def marked_line(text: str) -> int:
    """1-based line number of the line carrying MARK."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if MARK in line]
    assert len(hits) == 1
    return hits[0]


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """1-based line number of the n-th line containing fragment."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if fragment in line]
    return hits[occurrence - 1]


def raises(text: str) -> FrameworkError:
    with pytest.raises(FrameworkError) as info:
        parse_framework(text, "testshire.toml")
    return info.value


# --------------------------------------------------------------------------- examples


@pytest.fixture(scope="module")
def lambeth() -> Framework:
    return load_framework(bundled_framework_path("lambeth_like"))


@pytest.fixture(scope="module")
def bedford() -> Framework:
    return load_framework(bundled_framework_path("bedford_like"))


def test_lambeth_like_areas_counts_and_tool(lambeth: Framework) -> None:
    counts = {key: area.monthly_count for key, area in lambeth.areas.items()}
    assert counts == {
        "early_help": 40,
        "help_and_protection": 70,
        "children_in_care": 60,
        "care_leavers": 70,
    }
    for key in counts:
        tool = lambeth.tool_for_area(key)
        assert len(tool.domains) == 7
        assert all(d.questions and all(q.strip() for q in d.questions) for d in tool.domains)
    keys = [d.key for d in lambeth.tool_for_area("early_help").domains]
    assert len(set(keys)) == 7 and keys[0] == "referrals_and_decisions"


def test_lambeth_like_rules(lambeth: Framework) -> None:
    assert lambeth.timezone == "Europe/London"
    assert [g.key for g in lambeth.grades] == [
        "outstanding",
        "good",
        "requires_improvement",
        "inadequate",
    ]
    assert [g.rank for g in lambeth.grades] == [0, 1, 2, 3]
    assert "drift and delay" in lambeth.grade("inadequate").description
    assert lambeth.good_or_better == {"outstanding", "good"}
    assert lambeth.actions_required == {"requires_improvement", "inadequate"}
    assert dict(lambeth.escalation.remedial_days) == {"inadequate": 7, "requires_improvement": 14}
    assert dict(lambeth.reaudit_months) == {"inadequate": 8, "requires_improvement": 12}
    assert lambeth.escalation.ladder[0] == "owner"
    assert lambeth.escalation.step_days == 7
    assert lambeth.escalation.remedial_roles == ("director", "assistant_director")
    assert lambeth.moderation.rate == pytest.approx(0.10)
    assert lambeth.moderation.always == {"inadequate"}
    assert lambeth.blackout_months == frozenset()
    assert lambeth.look_back_months == 6 and lambeth.repeat_window_months == 6
    assert lambeth.deadline_working_days == 15 and lambeth.reminder_working_days_before == 3
    assert lambeth.max_actions == 5
    assert lambeth.calendar.region == "england-and-wales"
    assert lambeth.calendar.extra_closures == (date(2025, 12, 24), date(2026, 12, 24))
    assert lambeth.schedule.allocation_time == time(9, 0)
    assert lambeth.schedule.daily_time == time(9, 30)
    assert lambeth.schedule.quarterly_digest is True
    # Added roles sit alongside the standard ones.
    assert lambeth.roles["cin_reviewing_officer"] == "Child in need reviewing officer"
    assert set(DEFAULT_ROLES) <= set(lambeth.roles)
    assert "practice_assurance_lead" in lambeth.qa_roles


def test_bedford_like_ten_standards(bedford: Framework) -> None:
    tool = bedford.tool_for_area("child_protection")
    assert len(tool.domains) == 10
    assert all(3 <= len(d.questions) <= 4 for d in tool.domains)
    assert sum(len(d.questions) == 4 for d in tool.domains) == 1
    assert all(a.monthly_count is None for a in bedford.areas.values())
    assert {a.tool for a in bedford.areas.values()} == {"practice_standards"}
    # Defaults fill what the file leaves out.
    assert [g.label for g in bedford.grades] == [
        "Outstanding",
        "Good",
        "Requires Improvement",
        "Inadequate",
    ]
    assert dict(bedford.reaudit_months) == {"inadequate": 8, "requires_improvement": 12}
    assert bedford.roles["qa_lead"] == "Lead auditor"
    assert bedford.roles["team_manager"] == "Team manager"
    assert bedford.schedule.quarterly_digest is False


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ([], 0),
        (["social_worker"], 0),
        (["team_manager"], 1),
        (["social_worker", "iro"], 1),
        (["not_a_role"], 0),
    ],
)
def test_quota_for_roles_bedford(bedford: Framework, roles: list[str], expected: int) -> None:
    assert bedford.quota_for_roles(roles) == expected


def test_quota_for_roles_takes_max_not_sum() -> None:
    fw = parse_framework(BASE)
    assert fw.quota_for_roles(["team_manager", "iro"]) == 2
    assert fw.quota_for_roles(iter(["team_manager"])) == 1


def test_describe_lambeth(lambeth: Framework) -> None:
    text = describe(lambeth)
    assert "Lambeth-like" in text
    for key, count in [
        ("early_help", 40),
        ("help_and_protection", 70),
        ("children_in_care", 60),
        ("care_leavers", 70),
    ]:
        assert f"{key}: " in text
        line = next(ln for ln in text.splitlines() if f"{key}: " in ln)
        assert "(7 domains)" in line and f"{count} a month" in line
    assert "Outstanding [good or better]" in text
    assert "Inadequate [needs actions]" in text
    assert "Blackout months: none" in text
    assert "Child in need reviewing officer 1" in text
    assert "Inadequate 7 days" in text and "Requires Improvement within 12 months" in text
    assert "10% sample" in text


def test_describe_bedford(bedford: Framework) -> None:
    text = describe(bedford)
    assert "(10 domains)" in text
    assert "practice_standards: Practice standards case audit, 10 domains, 31 questions" in text
    assert text.count("no fixed count") == 4
    assert "Head of service 1" in text and "Conference chair 1" in text
    assert "quarterly digest off" in text


def test_describe_lists_blackout_month_names() -> None:
    fw = parse_framework(edit("blackout_months = [8]", "blackout_months = [12, 8]"))
    assert fw.blackout_months == {8, 12}
    assert "Blackout months: August, December" in describe(fw)


# --------------------------------------------------------------------------- API


def test_grade_lookup(lambeth: Framework) -> None:
    assert lambeth.grade("good") == Grade("good", "Good", 1, lambeth.grade("good").description)
    assert lambeth.is_good_or_better("good") and not lambeth.is_good_or_better("inadequate")
    assert lambeth.needs_actions("requires_improvement") and not lambeth.needs_actions("good")
    with pytest.raises(KeyError, match="unknown grade 'great'"):
        lambeth.grade("great")


def test_tool_for_unknown_area(lambeth: Framework) -> None:
    with pytest.raises(KeyError, match="youth_justice"):
        lambeth.tool_for_area("youth_justice")


def test_framework_is_immutable(lambeth: Framework) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        lambeth.max_actions = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        lambeth.areas["x"] = lambeth.areas["early_help"]  # type: ignore[index]
    with pytest.raises(TypeError):
        lambeth.escalation.remedial_days["good"] = 1  # type: ignore[index]


def test_calendar_regions_match_working_calendar() -> None:
    from qa.calendar import REGIONS

    assert set(REGIONS) == CALENDAR_REGIONS


def test_zone_is_tzinfo(lambeth: Framework) -> None:
    assert str(lambeth.zone) == "Europe/London"


def test_bundled_framework_path_variants() -> None:
    assert bundled_framework_path() == bundled_framework_path("lambeth_like.toml")
    assert bundled_framework_path("bedford_like").name == "bedford_like.toml"
    with pytest.raises(FileNotFoundError, match="bedford_like"):
        bundled_framework_path("haringey_like")
    for bad in ("../pyproject", "sub/dir", "", ".hidden"):
        with pytest.raises(ValueError):
            bundled_framework_path(bad)


def test_minimal_file_uses_defaults(tmp_path: Path) -> None:
    text = """\
authority = "Minimal Borough"
[areas.all]
label = "All cases"
tool = "t"
[tools.t]
label = "Tool"
domains = [{ key = "d", title = "Domain", questions = ["Q?"] }]
"""
    fw = parse_framework(text)
    assert fw.source == "<string>"
    assert fw.timezone == "Europe/London"
    assert [g.key for g in fw.grades][0] == "outstanding" and len(fw.grades) == 4
    assert dict(fw.roles) == dict(DEFAULT_ROLES)
    assert dict(fw.auditor_quotas) == {
        "team_manager": 1,
        "advanced_practitioner": 1,
        "head_of_service": 1,
        "iro": 1,
        "cp_chair": 1,
    }
    assert fw.qa_roles == {"qa_lead", "principal_social_worker"}
    assert fw.escalation.ladder == (
        "owner",
        "team_manager",
        "service_manager",
        "assistant_director",
    )
    assert fw.escalation.safeguarding_ack_hours == 4
    assert fw.escalation.action_reminder_working_days == 2
    assert fw.moderation.always == {"inadequate"}
    assert fw.schedule.digest_day == 1 and fw.schedule.allocation_working_day == 1
    assert fw.calendar.extra_closures == ()
    assert fw.areas["all"].monthly_count is None


def test_custom_scale_and_toml_native_times() -> None:
    text = edit(
        '[grades]\ngood_or_better = ["outstanding", "good"]\n',
        """[grades]
good_or_better = ["strong"]
actions_required = ["weak"]
scale = [
  { key = "strong", label = "Strong" },
  { key = "adequate", label = "Adequate" },
  { key = "weak", label = "Weak" },
]
""",
    )
    text = edit(
        "[escalation.remedial_days]\ninadequate = 7\n",
        "[escalation.remedial_days]\nweak = 10\n",
        text,
    )
    text = edit("rate = 0.1\n", 'rate = 0\nalways = ["weak"]\n', text)
    text = edit('daily_time = "09:30"', "daily_time = 07:45:00", text)
    text += "\n[reaudit_months]\nweak = 6\n"
    fw = parse_framework(text)
    assert [(g.key, g.rank) for g in fw.grades] == [("strong", 0), ("adequate", 1), ("weak", 2)]
    assert fw.good_or_better == {"strong"}
    assert fw.moderation.rate == 0.0
    assert fw.schedule.daily_time == time(7, 45)


def test_custom_scale_without_reaudit_must_say_so() -> None:
    text = edit(
        '[grades]\ngood_or_better = ["outstanding", "good"]\n',
        '[grades]\ngood_or_better = ["a"]\nactions_required = ["b"]\n'
        '[[grades.scale]]\nkey = "a"\nlabel = "A"\n[[grades.scale]]\nkey = "b"\nlabel = "B"\n',
    )
    text = edit("inadequate = 7", "b = 7", text)
    err = raises(text)
    assert err.key == "reaudit_months"
    assert "required" in err.reason and "inadequate" in err.reason


# --------------------------------------------------------------------------- errors


def test_error_str_format() -> None:
    err = FrameworkError("fw.toml", 12, "areas.x.tool", "bad")
    assert str(err) == "fw.toml:12: areas.x.tool: bad"
    assert str(FrameworkError("fw.toml", None, "file", "gone")) == "fw.toml: file: gone"
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.file, copy.line, copy.key, copy.reason) == ("fw.toml", 12, "areas.x.tool", "bad")


def test_base_is_valid() -> None:
    fw = parse_framework(BASE, "testshire.toml")
    assert fw.blackout_months == {8}
    assert fw.calendar.extra_closures == (date(2025, 12, 24),)
    assert fw.source == "testshire.toml"


# (old line, new line with MARK, expected key, fragment of the reason)
BAD_EDITS = [
    pytest.param("look_back_months = 6", f"look_back_month = 6  {MARK}",
                 "auditing.look_back_month", "did you mean 'look_back_months'", id="typo-key"),
    pytest.param("blackout_months = [8]", f"blackout_month = [8]  {MARK}",
                 "auditing.blackout_month", "did you mean 'blackout_months'", id="typo-blackout"),
    pytest.param("blackout_months = [8]", f"blackout_months = [8, 13]  {MARK}",
                 "auditing.blackout_months[1]", "not a month", id="month-13"),
    pytest.param("blackout_months = [8]", f"blackout_months = [0]  {MARK}",
                 "auditing.blackout_months[0]", "not a month", id="month-0"),
    pytest.param("blackout_months = [8]", f"blackout_months = [8, 8]  {MARK}",
                 "auditing.blackout_months[1]", "twice", id="month-twice"),
    pytest.param("blackout_months = [8]", f'blackout_months = ["August"]  {MARK}',
                 "auditing.blackout_months[0]", "expected a month number", id="month-text"),
    pytest.param("blackout_months = [8]", f"blackout_months = [1,2,3,4,5,6,7,8,9,10,11,12]  {MARK}",
                 "auditing.blackout_months", "every month", id="all-months"),
    pytest.param("look_back_months = 6", f'look_back_months = "six"  {MARK}',
                 "auditing.look_back_months", "expected a whole number, got text ('six')", id="wrong-type"),
    pytest.param("look_back_months = 6", f"look_back_months = 6.5  {MARK}",
                 "auditing.look_back_months", "expected a whole number", id="float-int"),
    pytest.param("look_back_months = 6", f"look_back_months = true  {MARK}",
                 "auditing.look_back_months", "expected a whole number, got true/false", id="bool-int"),
    pytest.param("look_back_months = 6", f"look_back_months = 0  {MARK}",
                 "auditing.look_back_months", "at least 1", id="zero-look-back"),
    pytest.param("monthly_count = 10", f"monthly_count = -1  {MARK}",
                 "areas.children_in_need.monthly_count", "negative", id="negative-count"),
    pytest.param("iro = 2", f"iro = -2  {MARK}",
                 "auditing.quotas.iro", "negative", id="negative-quota"),
    pytest.param("iro = 2", f"chief_executive = 1  {MARK}",
                 "auditing.quotas.chief_executive", "not a known role", id="quota-unknown-role"),
    pytest.param("iro = 2", f"ir0 = 1  {MARK}",
                 "auditing.quotas.ir0", "did you mean 'iro'", id="quota-role-typo"),
    pytest.param('tool = "core"\nmonthly_count', f'tool = "cor"  {MARK}\nmonthly_count',
                 "areas.children_in_need.tool", "'cor' is not a known tool; did you mean 'core'", id="unknown-tool"),
    pytest.param('label = "Children in care"', f'labl = "Children in care"  {MARK}',
                 "areas.children_in_care.labl", "did you mean 'label'", id="area-typo"),
    pytest.param('title = "Planning"', f"title = 42  {MARK}",
                 "tools.core.domains[1].title", "expected text", id="domain-title-type"),
    pytest.param('    "Is the plan reviewed?",', f'    "",  {MARK}',
                 "tools.core.domains[1].questions[1]", "empty", id="empty-question"),
    pytest.param('questions = ["Is the assessment up to date?"]', f"questions = []  {MARK}",
                 "tools.core.domains[0].questions", "at least one", id="no-questions"),
    pytest.param('key = "planning"', f'key = "assessment"  {MARK}',
                 "tools.core.domains[1].key", "twice", id="duplicate-domain"),
    pytest.param('key = "planning"', f'key = "Planning!"  {MARK}',
                 "tools.core.domains[1].key", "not a valid domain key", id="bad-domain-key"),
    pytest.param('key = "planning"', f'kee = "planning"  {MARK}',
                 "tools.core.domains[1].kee", "did you mean 'key'", id="domain-typo"),
    pytest.param('ladder = ["owner", "team_manager"]', f'ladder = ["owner", "chief_exec"]  {MARK}',
                 "escalation.ladder[1]", "not a known role", id="ladder-unknown-role"),
    pytest.param('ladder = ["owner", "team_manager"]', f'ladder = ["owner", "owner"]  {MARK}',
                 "escalation.ladder[1]", "twice", id="ladder-twice"),
    pytest.param('ladder = ["owner", "team_manager"]', f"ladder = []  {MARK}",
                 "escalation.ladder", "at least one step", id="ladder-empty"),
    pytest.param("step_days = 7", f"step_days = 0  {MARK}",
                 "escalation.step_days", "at least 1", id="step-zero"),
    pytest.param("inadequate = 7", f"poor = 7  {MARK}",
                 "escalation.remedial_days.poor", "not a known grade", id="remedial-grade"),
    pytest.param("inadequate = 7", f"inadequate = -7  {MARK}",
                 "escalation.remedial_days.inadequate", "negative", id="remedial-negative"),
    pytest.param('good_or_better = ["outstanding", "good"]', f'good_or_better = ["outstanding", "great"]  {MARK}',
                 "grades.good_or_better[1]", "'great' is not a known grade", id="good-unknown"),
    pytest.param('good_or_better = ["outstanding", "good"]', f'good_or_better = ["good", "inadequate"]  {MARK}',
                 "grades.good_or_better", "best grades", id="good-not-top"),
    pytest.param('good_or_better = ["outstanding", "good"]', f'good_or_better = "good"  {MARK}',
                 "grades.good_or_better", "expected a list", id="good-not-list"),
    pytest.param('good_or_better = ["outstanding", "good"]', f'actions_required = ["bad"]  {MARK}',
                 "grades.actions_required[0]", "not a known grade", id="actions-unknown"),
    pytest.param("rate = 0.1", f"rate = 1.5  {MARK}",
                 "moderation.rate", "outside 0 to 1", id="rate-high"),
    pytest.param("rate = 0.1", f"rate = -0.1  {MARK}",
                 "moderation.rate", "outside 0 to 1", id="rate-negative"),
    pytest.param("rate = 0.1", f'rate = "10%"  {MARK}',
                 "moderation.rate", "expected a fraction", id="rate-text"),
    pytest.param("rate = 0.1", f'always = ["terrible"]  {MARK}',
                 "moderation.always[0]", "not a known grade", id="moderation-grade"),
    pytest.param('daily_time = "09:30"', f'daily_time = "25:00"  {MARK}',
                 "schedule.daily_time", "not a time of day", id="time-25"),
    pytest.param('daily_time = "09:30"', f'daily_time = "9.30am"  {MARK}',
                 "schedule.daily_time", "HH:MM", id="time-am"),
    pytest.param('daily_time = "09:30"', f"daily_time = 930  {MARK}",
                 "schedule.daily_time", "expected a time", id="time-number"),
    pytest.param('daily_time = "09:30"', f"digest_day = 31  {MARK}",
                 "schedule.digest_day", "at most 28", id="digest-day"),
    pytest.param('daily_time = "09:30"', f'quarterly_digest = "yes"  {MARK}',
                 "schedule.quarterly_digest", "expected true or false", id="bool-text"),
    pytest.param('extra_closures = ["2025-12-24"]', f'extra_closures = ["2025-02-30"]  {MARK}',
                 "calendar.extra_closures[0]", "not a valid date", id="bad-date"),
    pytest.param('extra_closures = ["2025-12-24"]', f'extra_closures = ["24/12/2025"]  {MARK}',
                 "calendar.extra_closures[0]", "YYYY-MM-DD", id="uk-date"),
    pytest.param('extra_closures = ["2025-12-24"]', f"extra_closures = [2025-12-24T09:00:00]  {MARK}",
                 "calendar.extra_closures[0]", "without a time", id="datetime"),
    pytest.param('extra_closures = ["2025-12-24"]', f"extra_closures = [2025-12-24, 2025-12-24]  {MARK}",
                 "calendar.extra_closures[1]", "twice", id="date-twice"),
    pytest.param('extra_closures = ["2025-12-24"]', f'region = "wales-and-england"  {MARK}',
                 "calendar.region", "not a known region", id="region"),
    pytest.param('authority = "Testshire County Council"', f'authority = ""  {MARK}',
                 "authority", "must not be empty", id="empty-authority"),
    pytest.param('authority = "Testshire County Council"',
                 f'authority = "Testshire"\ntimezone = "Europe/Lundon"  {MARK}',
                 "timezone", "not a known timezone", id="timezone"),
    pytest.param('authority = "Testshire County Council"',
                 f'authority = "Testshire"\ntimezone = "../../etc/passwd"  {MARK}',
                 "timezone", "not a known timezone", id="timezone-path"),
    pytest.param('authority = "Testshire County Council"',
                 f'authority = "Testshire"\nauthorty = "x"  {MARK}',
                 "authorty", "did you mean 'authority'", id="top-typo"),
    pytest.param("[moderation]", f"[moderaton]  {MARK}",
                 "moderaton", "did you mean 'moderation'", id="table-typo"),
    pytest.param("step_days = 7", f"step_days = 7\nsafeguarding_ack_hours = 0  {MARK}",
                 "escalation.safeguarding_ack_hours", "at least 1", id="ack-hours"),
    pytest.param("look_back_months = 6",
                 f"look_back_months = 6\ndeadline_working_days = 3\nreminder_working_days_before = 3  {MARK}",
                 "auditing.reminder_working_days_before", "before the deadline", id="reminder-after-deadline"),
    pytest.param("look_back_months = 6", f"max_actions = 0  {MARK}",
                 "auditing.max_actions", "at least 1", id="max-actions"),
    pytest.param("look_back_months = 6", f"qa_roles = []  {MARK}",
                 "auditing.qa_roles", "at least one QA role", id="no-qa-roles"),
    pytest.param("[auditing.quotas]\nteam_manager = 1\niro = 2", f"[auditing.quotas]  {MARK}\nteam_manager = 0\niro = 0",
                 "auditing.quotas", "no role audits", id="all-quotas-zero"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "key", "reason"), BAD_EDITS)
def test_bad_edit_reports_key_line_and_reason(old: str, new: str, key: str, reason: str) -> None:
    text = edit(old, new)
    err = raises(text)
    assert err.key == key
    assert reason in err.reason
    assert err.file == "testshire.toml"
    assert err.line == marked_line(text)
    assert str(err) == f"testshire.toml:{err.line}: {key}: {err.reason}"


# Errors whose position is a table header, an inline table or a dotted/quoted key.
# (old, new, expected key, reason fragment, fragment of the line the error must point at)
STRUCTURE_CASES = [
    pytest.param(
        'label = "Children in care"\ntool = "core"\n',
        'label = "Children in care"\n',
        "areas.children_in_care.tool", "required key is missing", "[areas.children_in_care]",
        id="missing-key-falls-back-to-header",
    ),
    pytest.param(
        "[auditing.quotas]\nteam_manager = 1\niro = 2\n",
        "[auditing.quotas]\nteam_manager = 1\niro = { count = 2 }\n",
        "auditing.quotas.iro", "expected a whole number, got a table", "iro = {",
        id="inline-table-value",
    ),
    pytest.param(
        "[auditing.quotas]\nteam_manager = 1\niro = 2\n",
        "quotas = { team_manager = 1, iro = -1 }\n",
        "auditing.quotas.iro", "negative", "quotas = {",
        id="inline-quotas",
    ),
    pytest.param(
        '[areas.children_in_care]\nlabel = "Children in care"\ntool = "core"\n',
        '[areas]\nchildren_in_care.label = "Children in care"\nchildren_in_care.tool = "missing"\n',
        "areas.children_in_care.tool", "not a known tool", "children_in_care.tool",
        id="dotted-key",
    ),
    pytest.param(
        'title = "Planning"',
        "'title' = 42",
        "tools.core.domains[1].title", "expected text", "'title' = 42",
        id="quoted-key",
    ),
    pytest.param(
        'title = "Planning"',
        "title = \"Planning\"\nnote = '''\nmulti [line] # text\n'''",
        "tools.core.domains[1].note", "unknown key", "note = '''",
        id="multiline-literal-string",
    ),
    pytest.param(
        '[[tools.core.domains]]\nkey = "planning"',
        '[[tools.core.domains]]\nkey = "planning"\n[tools.core.domains.extra]\nfoo = 1',
        "tools.core.domains[1].extra", "unknown key", "[tools.core.domains.extra]",
        id="subtable-of-array-item",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "key", "reason", "where"), STRUCTURE_CASES)
def test_structure_errors(old: str, new: str, key: str, reason: str, where: str) -> None:
    text = edit(old, new)
    err = raises(text)
    assert (err.key, err.line) == (key, line_of(text, where))
    assert reason in err.reason


def test_empty_tool() -> None:
    head = BASE[: BASE.index("[[tools.core.domains]]")]
    tail = BASE[BASE.index("[escalation]") :]
    text = head + "domains = []\n\n" + tail
    err = raises(text)
    assert (err.key, err.line) == ("tools.core.domains", line_of(text, "domains = []"))
    assert "tool is empty" in err.reason
    text = head + tail
    err = raises(text)
    assert (err.key, err.line) == ("tools.core.domains", line_of(text, "[tools.core]"))


def test_multiline_string_does_not_shift_later_lines() -> None:
    text = edit(
        'label = "Core audit"',
        'label = """Core\naudit\nwith [brackets] and # hashes\n"""',
    )
    text = edit('title = "Planning"', f"title = 7  {MARK}", text)
    err = raises(text)
    assert (err.key, err.line) == ("tools.core.domains[1].title", marked_line(text))


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('authority = "x"\nlook = \n', 2, "Invalid value"),
        ('authority = "x"\n[areas\n', 2, "table declaration"),
        ('authority = "x"\n\n\nauthority = "y"\n', 4, "overwrite"),
        ('authority = "x"\nq = [\n  "a",,\n]\n', 3, "Invalid value"),
        ('authority = "x"\nday = 2025-02-30\n', 2, "date"),
        ('authority = "x"\nname = "unterminated\n', 2, "illegal character"),
        ('a = 1\nb = """never closed\n\n', 3, "end of file"),
    ],
)
def test_syntax_errors_carry_line(text: str, line: int, fragment: str) -> None:
    err = raises(text)
    assert err.key == "syntax"
    assert err.line == line
    assert fragment.lower() in err.reason.lower()
    assert "(at line" not in err.reason
    assert str(err).startswith(f"testshire.toml:{line}: syntax: ")


@pytest.mark.parametrize(
    ("remove", "key"),
    [
        ('authority = "Testshire County Council"\n', "authority"),
        ("[tools.core]", "tools"),
        ("[areas.children_in_need]", "areas"),
    ],
)
def test_missing_required(remove: str, key: str) -> None:
    if remove.startswith("[tools"):
        text = BASE[: BASE.index("[tools.core]")] + BASE[BASE.index("[escalation]") :]
    elif remove.startswith("[areas"):
        text = BASE[: BASE.index("[areas.children_in_need]")] + BASE[BASE.index("[tools.core]") :]
    else:
        text = edit(remove, "")
    err = raises(text)
    assert err.key == key
    assert "required" in err.reason
    assert err.line is None
    assert str(err) == f"testshire.toml: {key}: {err.reason}"


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(FrameworkError) as info:
        load_framework(path)
    assert info.value.line is None and info.value.key == "file"
    assert str(info.value).startswith(f"{path}: file: cannot read")


def test_load_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'authority = "x"\nlabel = "Caf\xe9"\n')
    with pytest.raises(FrameworkError) as info:
        load_framework(path)
    assert (info.value.key, info.value.line) == ("file", 2)


# --------------------------------------------------------------------------- edited copies of the examples


EXAMPLE_EDITS = [
    pytest.param("lambeth_like", "blackout_months = []", "blackout_month = [8, 12]",
                 1, "auditing.blackout_month", id="lambeth-typo"),
    pytest.param("lambeth_like", "monthly_count = 60", 'monthly_count = "sixty"',
                 1, "areas.children_in_care.monthly_count", id="lambeth-count-text"),
    pytest.param("lambeth_like", 'tool = "case_audit"', 'tool = "case_audits"',
                 3, "areas.children_in_care.tool", id="lambeth-third-area-tool"),
    pytest.param("lambeth_like", '    "Is evidence gathered well?",', '    "   ",',
                 1, "tools.case_audit.domains[1].questions[2]", id="lambeth-empty-question"),
    pytest.param("lambeth_like", 'key = "planning"', 'key = "assessment"',
                 1, "tools.case_audit.domains[2].key", id="lambeth-duplicate-domain"),
    pytest.param("lambeth_like", "requires_improvement = 12", "requires_improvment = 12",
                 1, "reaudit_months.requires_improvment", id="lambeth-reaudit-grade"),
    pytest.param("lambeth_like", 'digest_time = "10:00"', 'digest_time = "25:00"',
                 1, "schedule.digest_time", id="lambeth-bad-time"),
    pytest.param("lambeth_like", "extra_closures = [2025-12-24, 2026-12-24]",
                 'extra_closures = [2025-12-24, "2026-13-01"]',
                 1, "calendar.extra_closures[1]", id="lambeth-bad-date"),
    pytest.param("lambeth_like", "rate = 0.10", "rate = 10",
                 1, "moderation.rate", id="lambeth-rate-percent"),
    pytest.param("lambeth_like", 'label = "Outstanding"', "label = 1",
                 1, "grades.scale[0].label", id="lambeth-grade-label"),
    pytest.param("bedford_like", 'ladder = ["owner", "team_manager", "head_of_service", "assistant_director"]',
                 'ladder = ["owner", "team_manager", "head_of_servce", "assistant_director"]',
                 1, "escalation.ladder[2]", id="bedford-ladder"),
    pytest.param("bedford_like", '    "Is there a clear contingency plan?",', "    3,",
                 1, "tools.practice_standards.domains[7].questions[2]", id="bedford-question-type"),
    pytest.param("bedford_like", "cp_chair = 1", "cp_chair = -1",
                 1, "auditing.quotas.cp_chair", id="bedford-negative-quota"),
    pytest.param("bedford_like", 'qa_lead = "Lead auditor"', 'owner = "Lead auditor"',
                 1, "roles.owner", id="bedford-reserved-role"),
]  # fmt: skip


@pytest.mark.parametrize(("example", "old", "new", "occurrence", "key"), EXAMPLE_EDITS)
def test_edited_example_fails_on_the_edited_line(
    tmp_path: Path, example: str, old: str, new: str, occurrence: int, key: str
) -> None:
    original = bundled_framework_path(example).read_text(encoding="utf-8")
    lines = original.splitlines(keepends=True)
    target = line_of(original, old, occurrence)
    assert lines[target - 1].rstrip("\n") == old
    lines[target - 1] = new + "\n"
    path = tmp_path / f"{example}.toml"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(FrameworkError) as info:
        load_framework(path)
    err = info.value
    assert (err.key, err.line) == (key, target)
    assert err.file == str(path)
    assert str(err).startswith(f"{path}:{target}: {key}: ")


def test_example_syntax_error_line(tmp_path: Path) -> None:
    original = bundled_framework_path("lambeth_like").read_text(encoding="utf-8")
    target = line_of(original, "step_days = 7")
    lines = original.splitlines(keepends=True)
    lines[target - 1] = "step_days = 7 days\n"
    path = tmp_path / "broken.toml"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(FrameworkError) as info:
        load_framework(path)
    assert (info.value.key, info.value.line) == ("syntax", target)
