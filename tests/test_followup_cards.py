"""The cards that follow an audit stay valid for Teams and under its size limit when full."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from cards.common import teams_findings
from cards.followups import (
    MAX_ITEMS,
    MAX_TRACKED,
    ActionItem,
    AlertView,
    DecisionItem,
    FindingAction,
    FindingsView,
    PartBAsk,
    PartBItem,
    PlanItem,
    RemedialView,
    TodoView,
    TrackedItem,
    alert_card,
    findings_card,
    remedial_card,
    todo_card,
)

TEAMS_LIMIT = 28 * 1024
LONG = "Write the contingency plan with the carers and the school, and share it " * 3
DAY = date(2027, 1, 4)


def _size(card: dict) -> int:
    return len(json.dumps(card).encode())


def test_the_fullest_to_do_list_fits() -> None:
    n = MAX_ITEMS + 5
    view = TodoView(
        "Tia Manager", DAY,
        own=tuple(ActionItem(i, f"C-{i:06d}", LONG[:250], "Tia Manager", DAY, "overdue", 12)
                  for i in range(n)),
        escalated=tuple(ActionItem(100 + i, f"C-{i:06d}", LONG[:250], "Sam Worker", DAY,
                                   "overdue", 30) for i in range(n)),
        decisions=tuple(DecisionItem(200 + i, f"C-{i:06d}", LONG[:250], "Sam Worker", DAY,
                                     date(2027, 2, 1), LONG[:1000]) for i in range(n)),
        part_bs=tuple(PartBItem(300 + i, f"C-{i:06d}", "team manager", DAY, True)
                      for i in range(n)),
        others_part_bs=tuple(PartBItem(400 + i, f"C-{i:06d}", "social worker", DAY, True,
                                       "Sam Worker", 9) for i in range(n)),
        plans=tuple(PlanItem(500 + i, f"C-{i:06d}", "Inadequate", DAY, True) for i in range(n)),
        tracked=tuple(TrackedItem(f"C-{i:06d}", "Inadequate", DAY, False, date(2027, 9, 4))
                      for i in range(MAX_TRACKED + 5)),
        confirmation="Done: something (case C-000001). Recorded.")
    card = todo_card(view)
    assert teams_findings(card) == []
    assert _size(card) < TEAMS_LIMIT, _size(card)
    assert "more: type **my actions** to see them all" in json.dumps(card)  # shrunk to fit


def test_findings_alert_and_remedial_cards_are_valid() -> None:
    findings = FindingsView(
        7, "C-000001", "Early help", "Alex Auditor", datetime(2027, 1, 4, 10, tzinfo=UTC),
        "Requires Improvement", "On the way to being met",
        tuple((f"Domain {i}", "Good") for i in range(10)), "s" * 1800, "w" * 1800, "b" * 1800,
        "c" * 800, tuple(FindingAction(LONG[:250], "Sam Worker", DAY, "High") for _ in range(5)),
        PartBAsk("social worker", DAY, {}, {"partb.7.agrees": "Please say."}))
    for card in (findings_card(findings),
                 alert_card(AlertView(1, "C-000001", "Alex", datetime(2027, 1, 4, tzinfo=UTC),
                                      "d" * 800, 4)),
                 remedial_card(RemedialView(1, "C-000001", "Inadequate", "Early help", "Team",
                                            DAY, DAY, "b" * 1800))):
        assert teams_findings(card) == [] and _size(card) < TEAMS_LIMIT
