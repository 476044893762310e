"""Moderation's rules (SPEC R10), with no I/O: which audits are sampled, who moderates each,
what a regrade must carry, and how auditors calibrate against moderators.

* The sample: every audit whose overall grade is in ``moderation.always``, then a seeded
  random draw of the others until the sample reaches ``ceil(rate x submitted)``. The same
  seed and the same audits give the same sample (a replay, or the QA team checking).
* Moderators: never the audit's auditor (nor whoever submitted it), nobody in the case's
  team, nobody who manages the case (its social worker's line manager and the team's
  managers) and never the case's social worker. Among those allowed, the one with the
  fewest moderations so far in this run, ties broken by the seeded order, so the work is
  spread evenly. An audit nobody may moderate is reported, never forced on someone.
* Calibration: per auditor and domain (and overall), the share of moderated grades the
  moderator agreed with and whether the auditor's grades tend to sit above or below the
  moderator's; fewer than :data:`CALIBRATION_MIN` moderated audits is too few to judge
  (the counts are made by the database, ``store/moderation.calibration``).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CALIBRATION_MIN",
    "OVERALL",
    "Assignment",
    "Calibration",
    "Candidate",
    "assign",
    "sample",
    "sample_size",
]

#: Fewer moderated audits than this and an auditor's agreement is "too few to judge".
CALIBRATION_MIN: Final = 5
#: The pseudo-domain calibration uses for the overall grade.
OVERALL: Final = "overall"


@dataclass(frozen=True)
class Candidate:
    """A submitted audit that may be moderated, with who may not moderate it."""

    audit_id: int
    overall: str
    excluded: frozenset[str]  # staff ids who may not moderate it


@dataclass(frozen=True)
class Assignment:
    """A run's outcome: audit id -> moderator id, and the audits nobody could take."""

    moderators: Mapping[int, str]
    unassigned: tuple[int, ...]


def sample_size(rate: float, submitted: int) -> int:
    """How many audits of ``submitted`` the rate asks for: rounded up, so any audits at all
    with a rate above 0 means at least one is moderated."""
    return min(submitted, math.ceil(round(rate * submitted, 9)))


def sample(candidates: Sequence[Candidate], *, rate: float, always: frozenset[str],
           seed: int) -> list[Candidate]:
    """Every ``always`` grade, then a seeded draw of the rest up to the rate's size."""
    ordered = sorted(candidates, key=lambda c: c.audit_id)
    must = [c for c in ordered if c.overall in always]
    rest = [c for c in ordered if c.overall not in always]
    want = max(0, sample_size(rate, len(ordered)) - len(must))
    drawn = random.Random(seed).sample(rest, min(want, len(rest)))
    return must + sorted(drawn, key=lambda c: c.audit_id)


def assign(chosen: Sequence[Candidate], moderators: Iterable[str], *, seed: int,
           load: Mapping[str, int] | None = None) -> Assignment:
    """Give each chosen audit to an allowed moderator, spreading them evenly.

    The most constrained audits (fewest allowed moderators) go first, so an audit with one
    possible moderator is not left without because others took them. ``load`` is work the
    moderators already have (an earlier round), counted in the balance.
    """
    pool = sorted(set(moderators))
    random.Random(seed).shuffle(pool)
    rank = {m: i for i, m in enumerate(pool)}
    counts: Counter[str] = Counter(load or {})
    out: dict[int, str] = {}
    unassigned: list[int] = []
    allowed = {c.audit_id: [m for m in pool if m not in c.excluded] for c in chosen}
    for c in sorted(chosen, key=lambda c: (len(allowed[c.audit_id]), c.audit_id)):
        options = allowed[c.audit_id]
        if not options:
            unassigned.append(c.audit_id)
            continue
        pick = min(options, key=lambda m: (counts[m], rank[m]))
        counts[pick] += 1
        out[c.audit_id] = pick
    return Assignment(out, tuple(sorted(unassigned)))


# ---------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """One auditor and domain: how many grades were moderated, on how many audits, how
    many the moderator agreed with, and how many the auditor graded higher (better) or
    lower than the moderator."""

    auditor_id: str
    domain: str
    audits: int
    grades: int
    agreed: int
    higher: int
    lower: int

    @property
    def enough(self) -> bool:
        return self.audits >= CALIBRATION_MIN

    @property
    def agreement(self) -> float:
        return self.agreed / self.grades if self.grades else 0.0

    @property
    def tendency(self) -> str:
        """``higher``, ``lower`` or ``even``: which way the auditor's grades lean."""
        if self.higher > self.lower:
            return "higher"
        if self.lower > self.higher:
            return "lower"
        return "even"
