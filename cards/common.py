"""Shared pieces for cards: build with adaptive-cards-py, emit plain dicts, validate.

Cards are pure functions from a view-model to a dict (no I/O, no SDK imports), so a
card can be snapshot-tested and validated against the Teams target in tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Final

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


#: Chart elements Teams and the Agents Playground render (Adaptive Card charts). The typed
#: model of adaptive-cards-py predates them, so :func:`teams_findings` checks their shape
#: here and validates the rest of the card with each chart replaced by its fallback.
CHART_TYPES: Final = frozenset({
    "Chart.Donut", "Chart.Pie", "Chart.Gauge", "Chart.HorizontalBar",
    "Chart.HorizontalBar.Stacked", "Chart.Line", "Chart.VerticalBar",
    "Chart.VerticalBar.Grouped",
})
CHART_COLOURS: Final = frozenset({
    "good", "warning", "attention", "neutral", "categoricalRed", "categoricalPurple",
    "categoricalLavender", "categoricalBlue", "categoricalLightBlue", "categoricalTeal",
    "categoricalGreen", "categoricalLime", "categoricalMarigold",
})
#: Teams refuses a message over about 28 KB; the card JSON must stay under it.
TEAMS_CARD_BYTES: Final = 28 * 1024
_MAX_CHART_SETS: Final = 4


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _chart_findings(element: dict[str, Any]) -> list[str]:
    """The shape the renderers read (data sets, legends, values, well-known colours)."""
    kind, out = element["type"], []
    if "fallback" not in element:
        out.append(f"{kind}: no fallback for clients without charts")
    title = element.get("title")
    if title is not None and not isinstance(title, str):
        out.append(f"{kind}: title must be text")
    data = element.get("data")
    if not isinstance(data, list) or not data:
        return [*out, f"{kind}: data must be a non-empty list"]

    def point(p: Any, keys: tuple[str, str]) -> None:
        label, value = keys
        if not isinstance(p, dict) or not isinstance(p.get(label), str | int | float):
            out.append(f"{kind}: a data point has no {label}")
        elif not _number(p.get(value)):
            out.append(f"{kind}: {p.get(label)!r} needs a {value} of 0 or more")
        elif p.get("color") is not None and p["color"] not in CHART_COLOURS:
            out.append(f"{kind}: unknown colour {p['color']!r}")

    if kind == "Chart.HorizontalBar.Stacked":
        if len(data) > _MAX_CHART_SETS:
            out.append(f"{kind}: at most {_MAX_CHART_SETS} data sets")
        for series in data:
            if not isinstance(series, dict) or not isinstance(series.get("data"), list):
                out.append(f"{kind}: each data set needs a title and a data list")
                continue
            for p in series["data"]:
                point(p, ("legend", "value"))
    elif kind in ("Chart.Donut", "Chart.Pie"):
        for p in data:
            point(p, ("legend", "value"))
    elif kind in ("Chart.HorizontalBar", "Chart.VerticalBar"):
        if len(data) > _MAX_CHART_SETS:
            out.append(f"{kind}: at most {_MAX_CHART_SETS} bars")
        for p in data:
            point(p, ("x", "y"))
    elif kind in ("Chart.Line", "Chart.VerticalBar.Grouped"):
        for series in data:
            for p in (series.get("values") or []) if isinstance(series, dict) else [None]:
                point(p, ("x", "y"))
    return out


def _without_charts(node: Any, findings: list[str]) -> Any:
    """A copy of the card with each chart element replaced by its fallback."""
    if isinstance(node, list):
        out = [_without_charts(item, findings) for item in node]
        return [item for item in out if item is not None]
    if not isinstance(node, dict):
        return node
    if node.get("type") in CHART_TYPES:
        findings.extend(_chart_findings(node))
        fallback = node.get("fallback")
        return _without_charts(fallback, findings) if isinstance(fallback, dict) else None
    return {k: _without_charts(v, findings) for k, v in node.items()}


def teams_findings(card: dict[str, Any]) -> list[str]:
    """What the Microsoft Teams target (schema 1.5, 28 KB) finds wrong with a card.

    Chart elements are checked against the shape the clients render, and the rest of the
    card, with each chart replaced by its fallback, against the Teams schema.
    """
    findings: list[str] = []
    size = len(json.dumps(card, separators=(",", ":")).encode("utf-8"))
    if size > TEAMS_CARD_BYTES:
        findings.append(f"the card is {size:,} bytes; Teams takes at most {TEAMS_CARD_BYTES:,}")
    card = _without_charts(card, findings)
    try:
        model = AdaptiveCard.from_json(json.dumps(card)).create()
    except Exception as exc:  # the typed model refuses it outright
        return [*findings, f"not a valid Adaptive Card: {exc}"]
    validator = CardValidatorFactory.create_validator_microsoft_teams()
    result = validator.validate(model, debug=False)
    if result.is_ok():
        return findings
    return [*findings, *(f"{f.failure.value}: {f.message}" for f in validator.details())]


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
