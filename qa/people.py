"""The line of management: who is above whom, and who is told at each step (pure).

One answer to "who manages this person", "who manages this case" and "who is on the next
rung of the escalation ladder", worked out from each person's ``manager_id`` and roles.
Every flow that tells a manager something asks here; nothing else walks ``manager_id``.

The hierarchy comes from a council's HR export, so it has holes: a manager who left, a
``manager_id`` naming nobody, a chain that loops back on itself. The staff import reports
loops and dangling managers with their line numbers (:func:`manager_loops`); at run time a
missing rung is skipped and logged (ids only), never a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MANAGEMENT_ROLES",
    "OWNER",
    "LineOfManagement",
    "Person",
    "Rung",
    "is_manager",
    "leader_roles",
    "manager_loops",
]

log = logging.getLogger(__name__)

#: Ladder step meaning "the person who owns the item" rather than a role.
OWNER: Final = "owner"

#: Roles that manage people, lowest first: the rungs a ladder can name.
MANAGEMENT_ROLES: Final = (
    "team_manager", "service_manager", "head_of_service", "assistant_director", "director",
)  # fmt: skip

#: The longest chain followed: far above any council's depth, it only bounds a bad file.
_MAX_DEPTH: Final = 50


#: Leaders start above this rung: service managers run teams; heads of service and up lead.
LEADER_ABOVE: Final = "service_manager"


def leader_roles(remedial_roles: Iterable[str]) -> frozenset[str]:
    """Who counts as a leader (for case-level drill-down of the leadership digest).

    The framework's remedial roles (told of Inadequate and Requires Improvement audits, by
    default the director and assistant director) and every management role above the
    service manager (head of service, assistant director, director).
    """
    above = MANAGEMENT_ROLES[MANAGEMENT_ROLES.index(LEADER_ABOVE) + 1:]
    return frozenset(remedial_roles) | frozenset(above)


def is_manager(roles: Iterable[str]) -> bool:
    """Whether someone with these roles manages people (and so is told about their staff)."""
    return not set(MANAGEMENT_ROLES).isdisjoint(roles)


@dataclass(frozen=True)
class Person:
    """A member of staff as the hierarchy sees them."""

    staff_id: str
    name: str
    roles: frozenset[str] = frozenset()
    team_id: int | None = None
    manager_id: str | None = None
    active: bool = True

    def has(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class Rung:
    """One step of a ladder: the step's name and who holds it (None: nobody, skipped)."""

    step: str
    person: Person | None


class LineOfManagement:
    """Answers questions about the hierarchy of the people it is given.

    People not given are unknown: a ``manager_id`` naming someone absent is a gap, and a
    caller that loaded only part of the staff (the people around one case, say) gets
    answers about that part.
    """

    def __init__(self, people: Iterable[Person]) -> None:
        self._people: dict[str, Person] = {p.staff_id: p for p in people}
        self._below: dict[str, set[str]] | None = None

    def __contains__(self, staff_id: object) -> bool:
        return staff_id in self._people

    def person(self, staff_id: str | None) -> Person | None:
        return self._people.get(staff_id) if staff_id else None

    @property
    def people(self) -> Mapping[str, Person]:
        return self._people

    # ---------------------------------------------------------------- upward

    def chain(self, staff_id: str) -> list[Person]:
        """The active managers above someone, nearest first.

        A manager who has left (inactive) is stepped over to their own manager; the walk
        stops at a ``manager_id`` naming nobody, or where the chain comes back on itself.
        Both are logged with ids, since escalations then stop short.
        """
        out: list[Person] = []
        seen = {staff_id}
        current = self._people.get(staff_id)
        while current is not None and current.manager_id:
            nxt = self._people.get(current.manager_id)
            if nxt is None:
                log.warning("line of management: manager not found",
                            extra={"staff_id": current.staff_id,
                                   "manager_id": current.manager_id})
                break
            if nxt.staff_id in seen or len(seen) > _MAX_DEPTH:
                log.warning("line of management: loop", extra={"staff_id": staff_id,
                                                               "at": nxt.staff_id})
                break
            seen.add(nxt.staff_id)
            if nxt.active:
                out.append(nxt)
            current = nxt
        return out

    def manager_of(self, staff_id: str) -> Person | None:
        """The nearest active manager above someone, or None."""
        chain = self.chain(staff_id)
        return chain[0] if chain else None

    def team_managers(self, team_id: int | None) -> list[Person]:
        """The active team managers of a team, by name."""
        if team_id is None:
            return []
        return sorted((p for p in self._people.values()
                       if p.active and p.team_id == team_id and p.has("team_manager")),
                      key=lambda p: (p.name, p.staff_id))

    def case_managers(self, team_id: int | None, social_worker_id: str | None) -> list[Person]:
        """Who manages a case: the social worker's line manager, then the team's managers."""
        found: dict[str, Person] = {}
        worker = self.person(social_worker_id)
        if worker is not None and worker.active:
            manager = self.manager_of(worker.staff_id)
            if manager is not None:
                found[manager.staff_id] = manager
        for p in self.team_managers(team_id):
            found.setdefault(p.staff_id, p)
        return list(found.values())

    def next_rung(self, people: Iterable[Person]) -> list[Person]:
        """The managers of these people who are not among them (the next rung up)."""
        given = {p.staff_id for p in people}
        out: dict[str, Person] = {}
        for staff_id in sorted(given):
            above = self.manager_of(staff_id)
            if above is not None and above.staff_id not in given:
                out.setdefault(above.staff_id, above)
        return sorted(out.values(), key=lambda p: p.staff_id)

    def ladder(self, owner_id: str, steps: Sequence[str]) -> list[Rung]:
        """The framework's escalation ladder for one owner, each step resolved to a person.

        ``owner`` is the owner; a role is the nearest person above the owner holding it
        (for ``team_manager``, failing that, a team manager of the owner's own team). A
        step nobody holds is returned with ``person`` None (and logged) so callers skip it;
        a person is never named on two steps.
        """
        owner = self.person(owner_id)
        chain = self.chain(owner_id)
        rungs: list[Rung] = []
        used: set[str] = set()
        for step in steps:
            holder: Person | None = None
            if step == OWNER:
                holder = owner if owner is not None and owner.active else None
            else:
                holder = next((p for p in chain if p.has(step) and p.staff_id not in used), None)
                if holder is None and step == "team_manager" and owner is not None:
                    holder = next((p for p in self.team_managers(owner.team_id)
                                   if p.staff_id not in used and p.staff_id != owner_id), None)
            if holder is not None and holder.staff_id in used:
                holder = None
            if holder is None:
                log.info("line of management: rung not held", extra={"staff_id": owner_id,
                                                                     "step": step})
            else:
                used.add(holder.staff_id)
            rungs.append(Rung(step, holder))
        return rungs

    # ---------------------------------------------------------------- downward

    def below(self, staff_id: str) -> list[Person]:
        """Everyone whose line of management reaches this person (all levels down)."""
        return [self._people[i] for i in sorted(self._reports().get(staff_id, ()))]

    def teams_below(self, staff_id: str) -> frozenset[int]:
        """The teams of everyone this person manages, at any depth, and their own team if
        they are its team manager: the teams an auditor must never be given a case from."""
        teams = {self._people[i].team_id for i in self._reports().get(staff_id, ())}
        me = self.person(staff_id)
        if me is not None and me.has("team_manager"):
            teams.add(me.team_id)
        return frozenset(t for t in teams if t is not None)

    def _reports(self) -> dict[str, set[str]]:
        """Manager id -> everyone below them (inactive managers kept: they still sit above)."""
        if self._below is None:
            below: dict[str, set[str]] = {}
            for person in self._people.values():
                seen = {person.staff_id}
                current = person
                while current.manager_id and len(seen) <= _MAX_DEPTH:
                    nxt = self._people.get(current.manager_id)
                    if nxt is None or nxt.staff_id in seen:
                        break
                    seen.add(nxt.staff_id)
                    below.setdefault(nxt.staff_id, set()).add(person.staff_id)
                    current = nxt
            self._below = below
        return self._below


def manager_loops(managers: Mapping[str, str | None]) -> list[list[str]]:
    """Every loop in a ``staff_id -> manager_id`` map, each as its members in chain order.

    A loop (A reports to B, B to A) would send an escalation round in circles and never
    reach a director: the staff import refuses the rows in one, naming their lines.
    """
    loops: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(managers):
        if state.get(start):
            continue
        path: list[str] = []
        node: str | None = start
        while node is not None and node in managers and not state.get(node):
            state[node] = 1
            path.append(node)
            node = managers[node]
        if node is not None and state.get(node) == 1:
            loops.append(path[path.index(node):])
        for member in path:
            state[member] = 2
    return loops
