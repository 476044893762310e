"""Small-number protection for what a channel may show (pure, no I/O).

A leadership channel gets aggregates only, and any count from 1 to 4 is shown as "fewer
than 5" (``SMALL``). Hiding a cell is not enough when the reader can work it out again:

* **from a total**: a breakdown (grades, teams, areas) adds up to a total that is shown, so
  one hidden cell is the total minus the others. When a breakdown has exactly one hidden
  cell, or its hidden cells add up to 1-4, the smallest shown non-zero cell is withheld
  too (``WITHHELD``: not shown, and possibly 5 or more), and so on until nothing can be
  worked out (the usual secondary suppression of official statistics);
* **from a percentage**: a share is shown only when its part and its whole are both shown
  counts, so a percentage never gives back a hidden count (3 of 40 is 7.5%);
* **from a change**: a change on the previous period is shown only when both sides are
  shown, and never against a period with nothing in it (no "+100 pts" against no audits).

Derived figures that are not counts of cases in a category of practice (for example audits
still to be completed, allocated minus completed) are not protected: they say nothing about
a child. The words ("fewer than 5", "withheld") are in ``cards/``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["SMALL_MAX", "Figure", "Protector", "State", "is_small", "share"]

#: Counts from 1 up to this are never shown in a channel.
SMALL_MAX: Final = 4


def is_small(n: int) -> bool:
    return 1 <= n <= SMALL_MAX


class State(StrEnum):
    SHOWN = "shown"
    SMALL = "small"  # 1 to 4: shown as "fewer than 5"
    WITHHELD = "withheld"  # hidden so that a small count cannot be worked out from it


@dataclass(frozen=True)
class Figure:
    """A count and whether a channel may show it (``value`` is never rendered unless shown)."""

    value: int
    state: State = State.SHOWN

    @property
    def shown(self) -> bool:
        return self.state is State.SHOWN

    @classmethod
    def of(cls, n: int) -> Figure:
        """A lone count (no total it adds up to): only the small-number rule applies."""
        return cls(n, State.SMALL if is_small(n) else State.SHOWN)


def share(part: Figure | Sequence[Figure], whole: Figure) -> float | None:
    """The percentage (one decimal), or None when it must not be shown or has no base."""
    parts = [part] if isinstance(part, Figure) else list(part)
    if not whole.shown or whole.value == 0 or not all(p.shown for p in parts):
        return None
    return round(100.0 * sum(p.value for p in parts) / whole.value, 1)


class Protector:
    """Counts tied together by totals, protected together.

    ``add`` names each count once; ``total(total, parts)`` says that the parts add up to
    the total (both shown, or derivable, in the same place). ``protect`` applies the
    small-number rule, then withholds cells until no hidden count can be worked out from
    any total.
    """

    def __init__(self) -> None:
        self._values: dict[Hashable, int] = {}
        self._totals: list[tuple[Hashable, tuple[Hashable, ...]]] = []

    def add(self, key: Hashable, value: int) -> Hashable:
        if key in self._values:
            raise ValueError(f"count {key!r} added twice")
        if value < 0:
            raise ValueError(f"count {key!r} is negative")
        self._values[key] = value
        return key

    def total(self, total: Hashable, parts: Iterable[Hashable]) -> None:
        keys = tuple(parts)
        missing = [k for k in (total, *keys) if k not in self._values]
        if missing:
            raise KeyError(f"unknown counts {missing!r}")
        if sum(self._values[k] for k in keys) != self._values[total]:
            raise ValueError(f"the parts of {total!r} do not add up to it")
        self._totals.append((total, keys))

    def protect(self) -> dict[Hashable, Figure]:
        state = {k: (State.SMALL if is_small(v) else State.SHOWN) for k, v in self._values.items()}
        changed = True
        while changed:
            changed = False
            for total, parts in self._totals:
                if self._disclosed(total, parts, state):
                    victim = self._next_to_withhold(total, parts, state)
                    if victim is not None:
                        state[victim] = State.WITHHELD
                        changed = True
        return {k: Figure(v, state[k]) for k, v in self._values.items()}

    def _disclosed(self, total: Hashable, parts: Sequence[Hashable],
                   state: Mapping[Hashable, State]) -> bool:
        hidden = [k for k in (total, *parts) if state[k] is not State.SHOWN]
        if not hidden:
            return False
        if len(hidden) == 1:
            return True  # the one hidden cell is the total minus (or plus) the others
        if state[total] is State.SHOWN:
            return is_small(sum(self._values[k] for k in hidden))
        return False

    def _next_to_withhold(self, total: Hashable, parts: Sequence[Hashable],
                          state: Mapping[Hashable, State]) -> Hashable | None:
        candidates = [k for k in parts if state[k] is State.SHOWN and self._values[k] > 0]
        if candidates:
            return min(candidates, key=lambda k: (self._values[k], str(k)))
        return total if state[total] is State.SHOWN else None
