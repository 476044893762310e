"""Typed card-action payloads: one small model per verb (EXAMPLES habit 4).

The card builder packs a payload into an Action.Execute (``verb`` + ``data``); the
handler parses it before doing anything, so a tampered or stale button is rejected with
a clear message instead of reaching the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

P = TypeVar("P", bound="Payload")


class PayloadError(ValueError):
    """The button's data is not what its verb expects."""


@dataclass(frozen=True)
class Payload:
    verb: ClassVar[str]

    def pack(self) -> dict[str, Any]:
        """The ``data`` object of the Action.Execute."""
        return asdict(self)

    @classmethod
    def parse(cls: type[P], data: dict[str, Any]) -> P:
        """Read the packed fields back (inputs of the card are ignored here)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                raise PayloadError(f"this button is missing {f.name!r}; open the card again")
            raw = data[f.name]
            want = f.type if isinstance(f.type, type) else {"int": int, "str": str}.get(str(f.type))
            try:
                values[f.name] = want(raw) if want in (int, str) else raw
            except (TypeError, ValueError):
                raise PayloadError(f"this button has a bad {f.name!r}") from None
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
