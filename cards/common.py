"""Shared pieces for cards: build with adaptive-cards-py, emit plain dicts, validate.

Cards are pure functions from a view-model to a dict (no I/O, no SDK imports), so a
card can be snapshot-tested and validated against the Teams target in tests.
"""

from __future__ import annotations

import json
from typing import Any

from adaptive_cards.card import AdaptiveCard
from adaptive_cards.validation import CardValidatorFactory

SCHEMA_VERSION = "1.5"


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


def notice_card(text: str) -> dict[str, Any]:
    """A one-message card, shown in place of a clicked card when nothing else fits."""
    return {
        "type": "AdaptiveCard",
        "version": SCHEMA_VERSION,
        "body": [{"type": "TextBlock", "text": text, "wrap": True}],
    }
