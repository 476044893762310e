"""Shared pieces for cards: build with adaptive-cards-py, emit plain dicts, validate.

Cards are pure functions from a view-model to a dict (no I/O, no SDK imports), so a
card can be snapshot-tested and validated against the Teams target in tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from adaptive_cards.card import AdaptiveCard
from adaptive_cards.validation import CardValidatorFactory

SCHEMA_VERSION = "1.5"


def fmt_date(d: date) -> str:
    """``7 Dec 2026``: unambiguous for British readers, short on a card."""
    return f"{d.day} {d:%b %Y}"


def long_date(d: date) -> str:
    """'Tuesday 22 December 2026': unambiguous for UK readers, no locale needed."""
    return f"{d:%A} {d.day} {d:%B %Y}"


def fmt_datetime(dt: datetime) -> str:
    """``7 Dec 2026 14:32`` (the caller converts to the framework's timezone first)."""
    return f"{fmt_date(dt.date())} {dt:%H:%M}"


def to_dict(card: AdaptiveCard) -> dict[str, Any]:
    """The card as the JSON dict Teams receives (None fields dropped)."""
    return json.loads(card.to_json())


def teams_findings(card: dict[str, Any]) -> list[str]:
    """What the Microsoft Teams target (schema 1.5, 28 KB) finds wrong with a card."""
    try:
        model = AdaptiveCard.from_json(json.dumps(card)).create()
    except Exception as exc:  # the typed model refuses it outright
        return [f"not a valid Adaptive Card: {exc}"]
    validator = CardValidatorFactory.create_validator_microsoft_teams()
    result = validator.validate(model, debug=False)
    if result.is_ok():
        return []
    return [f"{f.failure.value}: {f.message}" for f in validator.details()]


# ---------------------------------------------------------------------------- building blocks
# Cards are plain dicts built from these (the audit form uses adaptive-cards-py's typed
# elements for its many inputs; both end as the same JSON, checked by teams_findings).


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None
         ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": SCHEMA_VERSION,
        "body": body,
    }
    if actions:
        out["actions"] = actions
    return out


def heading(text: str, size: str = "Large") -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "size": size, "weight": "Bolder", "wrap": True}


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": value, "wrap": True, **extra}


def facts(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in pairs]}


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def execute(title: str, verb: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An Action.Execute button carrying a packed payload (cards/payloads.py)."""
    return {"type": "Action.Execute", "title": title, "verb": verb, "data": data, **extra}


def notice_card(text: str) -> dict[str, Any]:
    """A one-message card shown in place of the card clicked: a refusal (nothing was
    changed) or a notice when nothing else fits."""
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": SCHEMA_VERSION,
        "body": [{"type": "TextBlock", "text": text, "wrap": True}],
    }
