"""Scan what the bot posted in channels and group chats: nothing there may identify a child.

Used by the ``fake_connector`` fixture on EVERY test (tests/fakes/fixtures.py): after the
test, each activity the fake connector accepted for a non-personal conversation is read
(text, and every string and number inside its cards) and must hold:

* no case reference: none of the references the test's database knew (registered by the
  ``service`` fixture) and nothing shaped like one (``C-000123``, ``BC000123``, ``CR-1001``);
* no staff name next to a grade: a line, table row, fact or chart point naming a member
  of staff (registered likewise) and a grade label together;
* no count from 1 to 4: a bare whole number 1-4 is allowed only where it is not a count
  (a date, a time, a percentage, percentage points, a number of months or days, a version).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

GRADE_WORDS = ("Outstanding", "Good", "Requires Improvement", "Inadequate")
CASE_REF_RE = re.compile(r"\b(?:[A-Z]{1,3}-\d{3,}|BC\d{6}|CR-\d{4})\b")
_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|"
           "December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec")
#: A small whole number that is not a count: part of a date, a time, a share, a duration.
_NOT_A_COUNT = re.compile(
    r"(?:\d[\d,]*\.\d+)"  # decimals (shares, points)
    rf"|(?:\b\d{{1,2}} (?:{_MONTHS})\b)"  # 1 April
    rf"|(?:\b(?:{_MONTHS}) \d{{1,2}}\b)"  # April 1
    r"|(?:\b\d{4}-\d{2}(?:-\d{2})?\b)"  # ISO dates and months
    r"|(?:\b\d{1,2}:\d{2}\b)"  # times
    r"|(?:[+\-±]\d+(?:\.\d+)? pts\b)|(?:\b\d+(?:\.\d+)? pts\b)"  # percentage points
    r"|(?:\b\d+(?:\.\d+)?%)"  # percentages
    r"|(?:\b\d+ (?:months?|days?|working days?|years?|hours?)\b)"  # durations
    r"|(?:\bQ[1-4]\b)|(?:\b1:1\b)|(?:\b\d+ a (?:month|week|year)\b)",  # quarters, 1:1
)
_SMALL = re.compile(r"(?<![\w.,])([1-4])(?![\w.%]|,\d{3})")


@dataclass
class Known:
    """Case references and staff names a test's database held."""

    case_refs: set[str] = field(default_factory=set)
    staff_names: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)  # team names etc.: digits in them are no count


def _units(node: Any) -> Iterator[str]:
    """The readable units of an activity or card: lines, table rows, facts, chart points."""
    if isinstance(node, str):
        yield from (line for line in node.splitlines() if line.strip())
    elif isinstance(node, list):
        for item in node:
            yield from _units(item)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind == "TableRow":
            yield " | ".join(_flat(node.get("cells")))
            return
        if "title" in node and "value" in node and kind is None:  # a fact or a chart point
            yield f"{node['title']}: {node['value']}"
            return
        if "legend" in node and "value" in node:
            yield f"{node['legend']}: {node['value']}"
            return
        for key, value in node.items():
            if key in ("type", "version", "$schema", "verb", "color", "style", "weight",
                       "size", "spacing", "width", "gridStyle", "contentType", "id"):
                continue
            yield from _units(value)
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield str(node)


def _flat(node: Any) -> list[str]:
    return [u for u in _units(node)]


def problems_in(activity: dict[str, Any], known: Known) -> list[str]:
    """What is wrong with one channel activity (empty when it is clean)."""
    found: list[str] = []
    payload = [activity.get("text") or "", [a.get("content") for a in activity.get("attachments")
                                            or []]]
    for unit in _units(payload):
        for ref in known.case_refs:
            if ref and ref in unit:
                found.append(f"case reference {ref!r} in {unit!r}")
        if m := CASE_REF_RE.search(unit):
            found.append(f"something like a case reference ({m.group()!r}) in {unit!r}")
        if any(g in unit for g in GRADE_WORDS):
            for name in known.staff_names:
                if name and name in unit:
                    found.append(f"staff name {name!r} next to a grade in {unit!r}")
        stripped = unit
        for label in sorted(known.labels, key=len, reverse=True):
            stripped = stripped.replace(label, " ")
        stripped = _NOT_A_COUNT.sub(" ", stripped)
        if m := _SMALL.search(stripped):
            found.append(f"a count from 1 to 4 ({m.group(1)}) in {unit!r}")
    return found


def scan(deliveries: Iterable[Any], known: Known) -> list[str]:
    """Problems in every delivery to a channel or group chat (``19:`` conversations)."""
    found: list[str] = []
    for d in deliveries:
        conversation = (d.activity.get("conversation") or {}).get("conversationType")
        if conversation == "personal" or (conversation is None
                                          and not d.conversation_id.startswith("19:")):
            continue
        found += [f"{d.conversation_id}: {p}" for p in problems_in(d.activity, known)]
    return found
