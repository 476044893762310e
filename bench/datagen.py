"""Deterministic synthetic council data: staff, teams and open cases (SPEC R2 shapes).

Tests and benchmarks need a realistic council without real data: about 150 staff in a
management chain over about 12 social work teams plus a safeguarding and QA unit, and
2,000 open cases over the areas of planning. Everything is derived from one seed, so a
failing test names the seed and anyone can rebuild the exact same council.

Case references are pseudonymous ("C-000123") and no child is named anywhere (R2). The
CSV text matches the columns of ``store.imports`` so the importer can be benchmarked on
it; :func:`load_council` inserts the rows directly for speed.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.models import Case, Staff, Team

__all__ = [
    "LAMBETH_AREAS",
    "QA_UNIT",
    "THEMES",
    "CaseRow",
    "Council",
    "StaffRow",
    "cases_csv",
    "generate",
    "load_council",
    "staff_csv",
]

LAMBETH_AREAS: tuple[str, ...] = (
    "early_help", "help_and_protection", "children_in_care", "care_leavers",
)  # fmt: skip
THEMES: tuple[str, ...] = (
    "domestic_abuse", "neglect", "parental_mental_health", "substance_misuse",
    "criminal_exploitation", "sexual_exploitation", "disability", "unaccompanied",
    "private_fostering", "missing_from_home",
)  # fmt: skip
QA_UNIT = "Safeguarding and Quality Assurance"

# Twelve casework teams, each serving one area of planning (by index into the areas given):
# a Lambeth-like service with more teams where there are more children.
_TEAMS: tuple[tuple[str, int], ...] = (
    ("Early Help North", 0),
    ("Early Help South", 0),
    ("Assessment and Intervention 1", 1),
    ("Assessment and Intervention 2", 1),
    ("Child Protection North", 1),
    ("Child Protection South", 1),
    ("Children Looked After 1", 2),
    ("Children Looked After 2", 2),
    ("Permanence", 2),
    ("Leaving Care East", 3),
    ("Leaving Care West", 3),
    ("Disabled Children", 1),
)
_AREA_WEIGHTS = (0.2, 0.35, 0.3, 0.15)

_FIRST = (
    "Amara", "Ben", "Chloe", "Dev", "Efua", "Farah", "George", "Hannah", "Imran", "Jade",
    "Kwame", "Laura", "Mohammed", "Niamh", "Oliver", "Priya", "Rhys", "Sade", "Tom", "Uche",
    "Vikram", "Wendy", "Yusuf", "Zara", "Aisha", "Callum", "Deborah", "Emeka", "Fiona", "Grace",
)  # fmt: skip
_LAST = (
    "Adeyemi", "Brown", "Campbell", "Davies", "Evans", "Francis", "Green", "Hussain", "Islam",
    "Johnson", "Khan", "Lewis", "Mensah", "Nowak", "Okafor", "Patel", "Quinn", "Roberts",
    "Smith", "Taylor", "Usman", "Vaughan", "Williams", "Young", "Ali", "Clarke", "Osei",
)  # fmt: skip


@dataclass(frozen=True)
class StaffRow:
    """One member of staff as the HR/case system export would list them."""

    staff_id: str
    name: str
    email: str
    roles: tuple[str, ...]
    team: str | None
    manager_id: str | None


@dataclass(frozen=True)
class CaseRow:
    """One open case: a pseudonymous reference, never a child's name."""

    case_ref: str
    team: str
    social_worker_id: str | None
    area: str
    opened_on: date
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Council:
    """A generated council: ``teams`` lists every team name staff or cases refer to."""

    seed: int
    teams: tuple[str, ...]
    staff: tuple[StaffRow, ...]
    cases: tuple[CaseRow, ...]

    def staff_by_role(self, role: str) -> list[StaffRow]:
        return [s for s in self.staff if role in s.roles]


class _Names:
    """Unique, plausible staff names and emails from a seeded generator."""

    def __init__(self, rng: random.Random, domain: str) -> None:
        self._rng = rng
        self._domain = domain
        self._used: set[str] = set()

    def next(self) -> tuple[str, str]:
        while True:
            name = f"{self._rng.choice(_FIRST)} {self._rng.choice(_LAST)}"
            if name not in self._used:
                break
            name = f"{name} {len(self._used)}"  # rare clash: keep it unique and readable
            if name not in self._used:
                break
        self._used.add(name)
        local = name.lower().replace(" ", ".")
        return name, f"{local}@{self._domain}"


def generate(
    seed: int = 0,
    *,
    n_staff: int = 150,
    n_cases: int = 2000,
    areas: Sequence[str] = LAMBETH_AREAS,
    as_of: date = date(2026, 1, 1),
    domain: str = "council.example",
) -> Council:
    """Build a council deterministically from ``seed``.

    Structure: a director, an assistant director, three heads of service, four service
    managers (three teams each), a team manager and an advanced practitioner per team, IROs,
    CP chairs, a QA lead and a principal social worker in the QA unit; social workers fill
    the rest. Cases open in the three years before ``as_of``; about 3% are unallocated and
    about 1% are held by a team manager or advanced practitioner of another team (cover), and
    the rest by a social worker or advanced practitioner of the case's team.
    """
    if not areas:
        raise ValueError("at least one area of planning is needed")
    rng = random.Random(seed)
    names = _Names(rng, domain)
    staff: list[StaffRow] = []
    counter = 0

    def add(roles: Iterable[str], team: str | None, manager: str | None) -> str:
        nonlocal counter
        counter += 1
        sid = f"S{counter:04d}"
        name, email = names.next()
        staff.append(StaffRow(sid, name, email, tuple(roles), team, manager))
        return sid

    team_names = [t for t, _ in _TEAMS]
    director = add(["director"], None, None)
    ad = add(["assistant_director"], None, director)
    heads = [add(["head_of_service"], None, ad) for _ in range(3)]
    service_managers = [add(["service_manager"], None, heads[i % 3]) for i in range(4)]
    team_manager: dict[str, str] = {}
    for i, team in enumerate(team_names):
        team_manager[team] = add(["team_manager"], team, service_managers[i // 3])
    qa_lead = add(["qa_lead"], QA_UNIT, heads[0])
    add(["principal_social_worker"], QA_UNIT, ad)
    for _ in range(5):
        add(["iro"], QA_UNIT, qa_lead)
    for _ in range(4):
        add(["cp_chair"], QA_UNIT, qa_lead)
    case_holders: dict[str, list[str]] = {t: [] for t in team_names}
    for team in team_names:
        case_holders[team].append(add(["advanced_practitioner"], team, team_manager[team]))
    i = 0
    while len(staff) < n_staff:
        team = team_names[i % len(team_names)]
        case_holders[team].append(add(["social_worker"], team, team_manager[team]))
        i += 1

    by_area: dict[int, list[str]] = {}
    for team, index in _TEAMS:
        by_area.setdefault(index % len(areas), []).append(team)
    weights = list(_AREA_WEIGHTS[: len(areas)]) + [0.25] * max(0, len(areas) - 4)
    area_indexes = [i for i in range(len(areas)) if i in by_area]
    cases: list[CaseRow] = []
    for n in range(1, n_cases + 1):
        ai = rng.choices(area_indexes, weights=[weights[i] for i in area_indexes])[0]
        team = rng.choice(by_area[ai])
        roll = rng.random()
        if roll < 0.03:
            worker = None  # awaiting allocation
        elif roll < 0.04:
            # Cover across teams: a manager or practitioner of another team holds it, which
            # is what makes "never from the auditor's own caseload" bite beyond the team rule.
            other = rng.choice([t for t in team_names if t != team])
            worker = rng.choice([team_manager[other], case_holders[other][0]])
        else:
            worker = rng.choice(case_holders[team])
        opened = as_of - timedelta(days=rng.randint(1, 3 * 365))
        tags = tuple(sorted(rng.sample(THEMES, rng.choices([0, 1, 2, 3], [3, 4, 2, 1])[0])))
        cases.append(CaseRow(f"C-{n:06d}", team, worker, areas[ai], opened, tags))
    return Council(seed, (*team_names, QA_UNIT), tuple(staff), tuple(cases))


def staff_csv(council: Council) -> str:
    """The staff as the CSV export ``qabot import staff`` reads (roles joined by ';')."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("staff_id", "name", "email", "roles", "team", "manager_id"))
    for s in council.staff:
        writer.writerow((s.staff_id, s.name, s.email, ";".join(s.roles), s.team or "",
                         s.manager_id or ""))
    return out.getvalue()


def cases_csv(council: Council) -> str:
    """The open cases as the CSV export ``qabot import cases`` reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("case_ref", "team", "social_worker_id", "area_of_planning", "opened_on",
                     "status", "tags"))
    for c in council.cases:
        writer.writerow((c.case_ref, c.team, c.social_worker_id or "", c.area,
                         c.opened_on.isoformat(), "open", ";".join(c.tags)))
    return out.getvalue()


async def load_council(
    sessions: async_sessionmaker[AsyncSession],
    council: Council,
    *,
    teams_ids: dict[str, str] | None = None,
) -> dict[str, int]:
    """Insert the council's teams, staff and cases directly; returns team name -> id.

    ``teams_ids`` maps staff ids to Teams user ids for the staff who should count as linked
    to Teams (everyone else is left unlinked, as after an import before ``teams sync``).
    Direct inserts skip the importer's checks and audit log on purpose: this is fixture
    data, loaded in well under a second so tests can use many councils.
    """
    teams_ids = teams_ids or {}
    async with sessions.begin() as session:
        teams = [Team(name=name) for name in council.teams]
        session.add_all(teams)
        await session.flush()
        team_id = {t.name: t.id for t in teams}
        session.add_all(
            Staff(staff_id=s.staff_id, name=s.name, email=s.email, roles=list(s.roles),
                  team_id=team_id[s.team] if s.team else None, manager_id=s.manager_id,
                  active=True, teams_user_id=teams_ids.get(s.staff_id))
            for s in council.staff
        )
        await session.flush()
        session.add_all(
            Case(case_ref=c.case_ref, team_id=team_id[c.team], social_worker_id=c.social_worker_id,
                 area=c.area, opened_on=c.opened_on, status="open", tags=list(c.tags))
            for c in council.cases
        )
    return team_id
