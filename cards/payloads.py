"""Typed card-action payloads: one small model per verb (EXAMPLES habit 4).

The card builder packs a payload into an Action.Execute (``verb`` + ``data``); the router
parses it into its model before the handler runs, so a handler only ever sees well-formed
values and a tampered or stale button gets one clear refusal with nothing changed.

Field types a payload may use, and what parsing accepts for each:

* ``int``: a record id, 1 to 2^31-1 (PostgreSQL's integer), as a number or digits;
* ``str``: text, at most :data:`TEXT_MAX` characters, no control or unpaired surrogate
  characters (they cannot be stored or shown);
* ``date``: an ISO date ``YYYY-MM-DD``;
* ``bool``: true/false, or the strings Teams sends for a toggle (``"true"``/``"false"``);
* ``Literal[...]``: one of the listed choices;
* ``tuple[str, ...]``: a list of texts, or one comma-separated string (a multi-select);
* ``X | None``: the field may be missing, null or empty.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, fields
from datetime import date
from functools import cache
from typing import Any, ClassVar, Literal, TypeVar

from cards.messages import payload_problem
from qa.errors import Code, Refused

__all__ = ["ID_MAX", "TEXT_MAX", "AcknowledgeAlert", "ActionDone", "AgreeModeration",
           "AskMoreTime", "DecideMoreTime", "DigestDetails", "OpenAudit", "OpenModeration",
           "Payload", "PayloadError", "RecordPlan", "RegradeModeration", "ReturnModeration",
           "SaveDraft", "ShowMyActions", "SubmitAudit", "SubmitPartB"]

P = TypeVar("P", bound="Payload")

ID_MAX = 2**31 - 1
TEXT_MAX = 2000
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


class PayloadError(Refused):
    """The button's data is not what its verb expects."""

    def __init__(self, field: str, *, missing: bool = False) -> None:
        super().__init__(Code.BAD_PAYLOAD, problem=payload_problem(field, missing))
        self.field = field


def _parse_value(name: str, hint: Any, raw: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if raw is None or raw == "":
            return None
        return _parse_value(name, inner[0], raw)
    if origin is Literal:
        if raw in args:
            return raw
        raise PayloadError(name)
    if origin is tuple:
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple):
            raise PayloadError(name)
        return tuple(_parse_value(name, args[0], item.strip() if isinstance(item, str) else item)
                     for item in items if item != "")
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if raw in ("true", "false"):
            return raw == "true"
        raise PayloadError(name)
    if hint is int:
        if isinstance(raw, bool):
            raise PayloadError(name)
        # ASCII digits only: str.isdigit() also accepts "²" and other scripts' digits.
        if (isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit()
                and len(raw.strip()) <= 10):
            raw = int(raw.strip())
        if isinstance(raw, int) and 1 <= raw <= ID_MAX:
            return raw
        raise PayloadError(name)
    if hint is str:
        if isinstance(raw, str) and len(raw) <= TEXT_MAX and not _BAD_CHARS.search(raw):
            return raw.strip()
        raise PayloadError(name)
    if hint is date:
        if isinstance(raw, str) and _ISO_DATE.match(raw):
            try:
                return date.fromisoformat(raw)
            except ValueError:
                pass
        raise PayloadError(name)
    raise TypeError(f"payload field {name!r} has a type parsing does not know: {hint!r}")


def _optional(hint: Any) -> bool:
    return (typing.get_origin(hint) in (typing.Union, types.UnionType)
            and type(None) in typing.get_args(hint))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _pack_value(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_pack_value(v) for v in value]
    return value


@dataclass(frozen=True)
class Payload:
    verb: ClassVar[str]

    def pack(self) -> dict[str, Any]:
        """The ``data`` object of the Action.Execute (JSON: dates as ISO text)."""
        return {f.name: _pack_value(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def parse(cls: type[P], data: Any) -> P:
        """Read the packed fields back into the model; PayloadError names the bad field.

        Other keys (the card's inputs, which Teams merges into the same object) are left
        for the handler.
        """
        if not isinstance(data, dict):
            raise PayloadError("data")
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            hint = hints[f.name]
            if f.name not in data:
                if _optional(hint):
                    values[f.name] = None
                    continue
                raise PayloadError(f.name, missing=True)
            values[f.name] = _parse_value(f.name, hint, data[f.name])
        return cls(**values)


@dataclass(frozen=True)
class OpenAudit(Payload):
    verb: ClassVar[str] = "audit.open"
    audit_id: int


@dataclass(frozen=True)
class SaveDraft(Payload):
    verb: ClassVar[str] = "audit.save_draft"
    audit_id: int


@dataclass(frozen=True)
class SubmitAudit(Payload):
    verb: ClassVar[str] = "audit.submit"
    audit_id: int


@dataclass(frozen=True)
class AcknowledgeAlert(Payload):
    verb: ClassVar[str] = "safeguarding.ack"
    alert_id: int


@dataclass(frozen=True)
class SubmitPartB(Payload):
    verb: ClassVar[str] = "partb.submit"
    audit_id: int
    where: Literal["todo"] | None = None  # clicked on the to-do list, not the findings


@dataclass(frozen=True)
class ActionDone(Payload):
    verb: ClassVar[str] = "action.done"
    action_id: int


@dataclass(frozen=True)
class AskMoreTime(Payload):
    verb: ClassVar[str] = "action.more_time"
    action_id: int


@dataclass(frozen=True)
class DecideMoreTime(Payload):
    verb: ClassVar[str] = "action.decide"
    action_id: int
    decision: Literal["approve", "refuse"]


@dataclass(frozen=True)
class RecordPlan(Payload):
    verb: ClassVar[str] = "remedial.plan"
    remedial_id: int
    where: Literal["todo"] | None = None


@dataclass(frozen=True)
class ShowMyActions(Payload):
    verb: ClassVar[str] = "actions.mine"


@dataclass(frozen=True)
class DigestDetails(Payload):
    """The digest card's Details button: case-level figures, sent 1:1 to whoever may see them."""

    verb: ClassVar[str] = "digest.details"
    period: str


@dataclass(frozen=True)
class OpenModeration(Payload):
    verb: ClassVar[str] = "moderation.open"
    moderation_id: int


@dataclass(frozen=True)
class AgreeModeration(Payload):
    verb: ClassVar[str] = "moderation.agree"
    moderation_id: int


@dataclass(frozen=True)
class RegradeModeration(Payload):
    verb: ClassVar[str] = "moderation.regrade"
    moderation_id: int


@dataclass(frozen=True)
class ReturnModeration(Payload):
    verb: ClassVar[str] = "moderation.return"
    moderation_id: int
