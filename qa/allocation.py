"""Monthly random allocation of open cases to auditors (SPEC R3 and R9).

Sources: Hillingdon 4.1.1 (cases picked at random each month and shared among auditors, six-month
look-back), Bedford 4.1 (every manager audits at least one case a month, never one they are
responsible for), Lambeth (monthly counts per area of planning; Inadequate and Requires Improvement
cases re-audited within 8 and 12 months), Leicester (no audits in blackout months).

How a month is allocated, in order of priority:

0. Who may audit what. An auditor is never given a case from their own team, from any team
   below them in the line of management (``Auditor.managed_teams``: a service manager's teams,
   a head of service's service, an assistant director's division), or from their own caseload.
1. Eligibility. A case is out if another process already took it this month
   (``already_allocated``), or if it was audited inside the repeat window, unless a re-audit is due
   by the month's last day. With ``area_counts``, only areas with a positive count take part.
2. Re-audits first, oldest due date first; they count toward their area's target.
3. As many cases as auditor capacity and the area counts allow (never more than a count).
4. Area targets: the slots are split across areas in proportion to the counts (or to eligible
   cases when there are no counts), by largest remainder, never above what an area can supply.
5. Balance: nobody gets a second case while a colleague who could take it has none (Bedford).
6. Fair spread: within an area, each team's cases are drawn in proportion to its eligible cases.
7. Randomness: inside each (area, team) group the cases are ordered by a hash of the seed and the
   case reference; the first ones are the sample, later ones only replace a case that no auditor
   can take.

Steps 2-7 are solved together as one min-cost flow with lexicographic costs on a small network
(auditor classes -> case pools -> (area, team) groups -> areas), so a full assignment is found
whenever one exists (a greedy pass can strand an auditor whose only possible cases went to someone
else). Auditors of one team are interchangeable, so they share a node; an auditor who holds cases in
another team's caseload gets a node of their own. That keeps the network to a few hundred edges for
thousands of cases. If the own-team and own-caseload rules push cases from one area to another, the
team shares are recomputed for what each area actually got and the flow is solved once more.

Everything is pure and deterministic for a given request, whatever the input order; only
``new_seed`` touches randomness, so callers can store the seed and re-run or preview a month.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Final, TypeVar

from qa.periods import month_last_day, shift_month

__all__ = [
    "REASON_RANDOM",
    "REASON_REAUDIT",
    "Allocation",
    "AllocationRequest",
    "AllocationResult",
    "Auditor",
    "CaseInfo",
    "Exclusion",
    "allocate",
    "new_seed",
    "repeat_window_start",
]

REASON_RANDOM: Final = "random"
REASON_REAUDIT: Final = "reaudit"

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Auditor:
    """Someone who audits this month; ``quota`` is how many cases they should get (R3 default 1).

    ``managed_teams`` are the teams below the auditor in the line of management (a service
    manager's teams, a head of service's service, an assistant director's division): like
    their own ``team``, the auditor is never given a case from any of them.
    """

    staff_id: str
    team: str
    quota: int = 1
    managed_teams: frozenset[str] = frozenset()

    def may_audit(self, case: CaseInfo) -> bool:
        """Whether the rules let this auditor audit the case (whatever their load)."""
        return (case.team != self.team and case.team not in self.managed_teams
                and case.social_worker_id != self.staff_id)


@dataclass(frozen=True)
class CaseInfo:
    """An open case as the allocator sees it: a pseudonymous reference, never a child's name."""

    case_ref: str
    team: str
    social_worker_id: str | None
    area: str
    opened_on: date
    last_audited_on: date | None = None
    reaudit_due_on: date | None = None
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AllocationRequest:
    """Everything one month's allocation depends on, so the same request gives the same result."""

    month: date  # first day of the month
    seed: int
    auditors: Sequence[Auditor]
    cases: Sequence[CaseInfo]  # open cases only
    area_counts: Mapping[str, int] | None = None  # audits wanted per area; None = no targets
    repeat_window_months: int = 6
    blackout_months: frozenset[int] = frozenset()
    already_allocated: frozenset[str] = frozenset()  # case refs taken elsewhere this month


@dataclass(frozen=True)
class Allocation:
    """One case for one auditor; ``reason`` is ``"random"`` or ``"reaudit"``."""

    case_ref: str
    auditor_id: str
    area: str
    reason: str


RULE_ALREADY_ALLOCATED: Final = "already_allocated"
RULE_REPEAT_WINDOW: Final = "repeat_window"
RULE_NO_AREA_COUNT: Final = "no_area_count"
RULE_OWN_TEAM: Final = "own_team"
RULE_MANAGED_TEAMS: Final = "managed_teams"
RULE_OWN_CASELOAD: Final = "own_caseload"


@dataclass(frozen=True)
class Exclusion:
    """What one rule kept out of the month, for the dry run: ids and counts, no sentences.

    ``rule`` is one of the ``RULE_*`` keys. Case rules (already allocated, repeat window, no
    area count) set ``cases``; auditor rules set ``auditor_id`` and, for the line of
    management, the ``teams`` below that auditor, with ``cases`` the open eligible cases
    the rule kept from them.
    """

    rule: str
    cases: int
    auditor_id: str | None = None
    teams: tuple[str, ...] = ()


@dataclass(frozen=True)
class AllocationResult:
    """The month's allocations plus a plain-English line for everything that could not be done."""

    month: date
    seed: int
    allocations: tuple[Allocation, ...]
    shortfalls: tuple[str, ...]
    blackout: bool
    #: Which rule excluded what (the dry run shows it); empty for a blackout month.
    exclusions: tuple[Exclusion, ...] = ()


def new_seed() -> int:
    """A fresh random 63-bit seed; the caller stores it so the month can be reproduced."""
    return secrets.randbits(63)


# --------------------------------------------------------------------------------------------
# Dates and ordering helpers


def repeat_window_start(month: date, window_months: int) -> date:
    """First day of the repeat window: a case audited on or after it is not picked again."""
    return shift_month(month, -window_months)


def _rank(seed: int, *parts: str) -> bytes:
    """Seeded, platform-independent sort key: stable across Python versions and input order."""
    digest = hashlib.sha256(str(seed).encode())
    for part in parts:
        digest.update(b"\x00" + part.encode())
    return digest.digest()


def _is_due(case: CaseInfo, last_day: date) -> bool:
    return case.reaudit_due_on is not None and case.reaudit_due_on <= last_day


def _recently_audited(case: CaseInfo, window_start: date) -> bool:
    return case.last_audited_on is not None and case.last_audited_on >= window_start


def _apportion(
    total: int,
    weights: Mapping[K, int],
    lo: Mapping[K, int],
    hi: Mapping[K, int],
    tiebreak: Callable[[K], bytes],
) -> dict[K, int]:
    """Split ``total`` in proportion to ``weights``, each part within ``[lo, hi]``, largest remainder.

    Exact (fractions): finds ``x`` with ``sum(clamp(x * w, lo, hi)) == total``, then rounds the
    clamped shares by largest remainder, ties broken by ``tiebreak``. Needs
    ``sum(lo) <= total <= sum(hi)`` and ``lo <= hi``.
    """
    keys = list(weights)
    if not keys:
        return {}
    low, high = sum(lo[k] for k in keys), sum(hi[k] for k in keys)
    if not low <= total <= high:
        raise ValueError(f"cannot split {total} within bounds {low}..{high}")

    def clamped(x: Fraction, k: K) -> Fraction:
        return min(Fraction(hi[k]), max(Fraction(lo[k]), x * weights[k]))

    def filled(x: Fraction) -> Fraction:
        return sum((clamped(x, k) for k in keys), Fraction(0))

    points = {Fraction(0)}
    for k in keys:
        if weights[k] > 0:
            points.add(Fraction(lo[k], weights[k]))
            points.add(Fraction(hi[k], weights[k]))
    ordered = sorted(points)
    x = ordered[-1]
    if filled(x) > total:
        below = ordered[0]
        for point in ordered:
            if filled(point) <= total:
                below = point
                continue
            # filled() is linear on [below, point]: solve for total.
            x = below + (total - filled(below)) * (point - below) / (filled(point) - filled(below))
            break
        else:  # pragma: no cover - the last point always overshoots here
            x = below
    shares = {k: clamped(x, k) for k in keys}
    if total == high:
        shares = {k: Fraction(hi[k]) for k in keys}
    parts = {k: math.floor(shares[k]) for k in keys}
    left = total - sum(parts.values())
    by_remainder = sorted(keys, key=lambda k: (-(shares[k] - parts[k]), tiebreak(k)))
    for k in by_remainder[:left]:
        parts[k] += 1
    return parts


# --------------------------------------------------------------------------------------------
# Min-cost flow


class _Network:
    """Residual graph with paired edges: edge ``e`` and its reverse ``e ^ 1``."""

    __slots__ = ("adj", "cap", "cost", "to")

    def __init__(self) -> None:
        self.to: list[int] = []
        self.cap: list[int] = []
        self.cost: list[int] = []
        self.adj: list[list[int]] = []

    def node(self) -> int:
        self.adj.append([])
        return len(self.adj) - 1

    def edge(self, u: int, v: int, cap: int, cost: int) -> int | None:
        if cap <= 0:
            return None
        e = len(self.to)
        self.to += [v, u]
        self.cap += [cap, 0]
        self.cost += [cost, -cost]
        self.adj[u].append(e)
        self.adj[v].append(e + 1)
        return e

    def flow(self, e: int | None) -> int:
        return 0 if e is None else self.cap[e ^ 1]

    def min_cost_flow(self, source: int, sink: int) -> None:
        """Successive shortest paths (Dijkstra with potentials) until no path has negative cost.

        Nodes must have been created in topological order with ``source`` first: the initial
        potentials come from one pass over that order, which handles the negative costs.
        """
        n = len(self.adj)
        to, cap, cost, adj = self.to, self.cap, self.cost, self.adj
        dist0: list[int | None] = [None] * n
        dist0[source] = 0
        for u in range(n):
            du = dist0[u]
            if du is None:
                continue
            for e in adj[u]:
                if cap[e] > 0:
                    v, nd = to[e], du + cost[e]
                    dv = dist0[v]
                    if dv is None or nd < dv:
                        dist0[v] = nd
        potential = [d if d is not None else 0 for d in dist0]
        while True:
            dist: list[int | None] = [None] * n
            via = [-1] * n
            dist[source] = 0
            heap = [(0, source)]
            while heap:
                d, u = heapq.heappop(heap)
                if d != dist[u]:
                    continue
                pu = potential[u]
                for e in adj[u]:
                    if cap[e] > 0:
                        v = to[e]
                        nd = d + cost[e] + pu - potential[v]
                        dv = dist[v]
                        if dv is None or nd < dv:
                            dist[v] = nd
                            via[v] = e
                            heapq.heappush(heap, (nd, v))
            if dist[sink] is None:
                return
            for v in range(n):
                dv = dist[v]
                if dv is not None:
                    potential[v] += dv
            if potential[sink] - potential[source] >= 0:
                return  # no path improves the objective any more
            push, v = None, sink
            while v != source:
                e = via[v]
                push = cap[e] if push is None else min(push, cap[e])
                v = to[e ^ 1]
            assert push is not None
            v = sink
            while v != source:
                e = via[v]
                cap[e] -= push
                cap[e ^ 1] += push
                v = to[e ^ 1]


def _level_weights(units: int, maxima: Sequence[int]) -> list[int]:
    """Weights making per-unit costs lexicographic: level i outweighs all lower levels together."""
    weights, total, weight = [], 0, 1
    for most in maxima:
        weights.append(weight)
        total += most * weight
        weight = (units + 1) * total + 1
    return weights


# --------------------------------------------------------------------------------------------
# The allocator


@dataclass(frozen=True)
class _Class:
    """Auditors interchangeable for every eligible case, so the network needs one node for them.

    That is one team's auditors, except that an auditor who is the allocated worker on an
    eligible case in another team gets a class of their own.
    """

    team: str
    members: tuple[Auditor, ...]
    managed: frozenset[str] = frozenset()  # the teams below every member (they share them)

    def can_take(self, case: CaseInfo) -> bool:
        return (case.team != self.team and case.team not in self.managed
                and all(m.staff_id != case.social_worker_id for m in self.members))

    def can_take_pool(self, pool: _Pool) -> bool:
        # A pool without a holder has no case on any auditor's caseload outside their own team.
        return (pool.team != self.team and pool.team not in self.managed
                and all(m.staff_id != pool.holder for m in self.members))


@dataclass(frozen=True)
class _Pool:
    """Cases of one (area, team) group that every class treats alike; ``holder`` is a special SW."""

    area: str
    team: str
    holder: str | None
    cases: tuple[CaseInfo, ...]  # in the group's seeded order
    in_sample: int  # how many of them are in the group's sample


def _validate(req: AllocationRequest) -> None:
    if req.month.day != 1:
        raise ValueError(f"month must be the first day of a month, got {req.month.isoformat()}")
    if req.repeat_window_months < 0:
        raise ValueError("repeat_window_months cannot be negative")
    ids = Counter(a.staff_id for a in req.auditors)
    if dupes := sorted(i for i, n in ids.items() if n > 1):
        raise ValueError(f"auditor listed more than once: {', '.join(dupes)}")
    refs = Counter(c.case_ref for c in req.cases)
    if dupes := sorted(r for r, n in refs.items() if n > 1):
        raise ValueError(f"case listed more than once: {', '.join(dupes)}")
    if bad := sorted(a.staff_id for a in req.auditors if a.quota < 0):
        raise ValueError(f"negative quota for auditor: {', '.join(bad)}")
    if req.area_counts is not None and (
        bad := sorted(a for a, n in req.area_counts.items() if n < 0)
    ):
        raise ValueError(f"negative count for area: {', '.join(bad)}")


def _team_shares(
    groups: Mapping[tuple[str, str], Sequence[CaseInfo]],
    random_by_area: Mapping[str, int],
    seed: int,
) -> dict[tuple[str, str], int]:
    """Cases to draw from each (area, team): proportional to its eligible cases, largest remainder."""
    shares: dict[tuple[str, str], int] = {}
    by_area: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    for key, cases in groups.items():
        by_area[key[0]][key] = len(cases)
    for area, sizes in by_area.items():
        shares.update(
            _apportion(
                random_by_area.get(area, 0),
                sizes,
                dict.fromkeys(sizes, 0),
                sizes,
                lambda key: _rank(seed, "team", *key),
            )
        )
    return shares


def _solve(
    *,
    seed: int,
    classes: Sequence[_Class],
    groups: Mapping[tuple[str, str], Sequence[CaseInfo]],
    shares: Mapping[tuple[str, str], int],
    specials: Mapping[str, str],
    reaudits: Sequence[CaseInfo],
    area_target: Mapping[str, int],
    area_cap: Mapping[str, int],
    slots: int,
) -> dict[_Class, list[tuple[CaseInfo, str]]]:
    """One min-cost flow; returns the cases (with reason) each class of auditors receives."""
    top_quota = max((m.quota for c in classes for m in c.members), default=1)
    w_pref, w_team, w_balance, w_area, w_unit, w_age, w_reaudit = _level_weights(
        slots, [1, 1, top_quota - 1, 1, 1, len(reaudits), 1]
    )

    pools: list[_Pool] = []
    for key in sorted(groups, key=lambda k: _rank(seed, "group", *k)):
        cases = groups[key]
        sample = {c.case_ref for c in cases[: shares.get(key, 0)]}
        split: dict[str | None, list[CaseInfo]] = defaultdict(list)
        for case in cases:
            sw = case.social_worker_id
            split[sw if sw in specials and specials[sw] != case.team else None].append(case)
        for holder, members in split.items():
            in_sample = sum(c.case_ref in sample for c in members)
            pools.append(_Pool(key[0], key[1], holder, tuple(members), in_sample))

    net = _Network()
    source = net.node()
    class_node = {c: net.node() for c in classes}
    pool_node = {id(p): net.node() for p in pools}
    # Seeded order, not due order, so that "oldest first" rests on the costs alone.
    reaudit_node = {
        i: net.node()
        for i in sorted(range(len(reaudits)), key=lambda i: _rank(seed, "re", reaudits[i].case_ref))
    }
    group_node = {key: net.node() for key in sorted(groups, key=lambda k: _rank(seed, "group", *k))}
    area_node = {a: net.node() for a in sorted(area_target, key=lambda a: _rank(seed, "area", a))}
    sink = net.node()

    class_in: dict[_Class, list[int | None]] = {}
    class_to_pool: list[tuple[_Class, _Pool, int | None]] = []
    class_to_reaudit: list[tuple[_Class, int, int | None]] = []
    for cls in classes:
        node = class_node[cls]
        class_in[cls] = [
            net.edge(source, node, sum(m.quota > level for m in cls.members), level * w_balance)
            for level in range(top_quota)
        ]
        for pool in pools:
            if cls.can_take_pool(pool):
                class_to_pool.append((cls, pool, net.edge(node, pool_node[id(pool)], slots, 0)))
        for i, case in enumerate(reaudits):
            if cls.can_take(case):
                class_to_reaudit.append((cls, i, net.edge(node, reaudit_node[i], 1, 0)))
    for pool in pools:
        node, group = pool_node[id(pool)], group_node[(pool.area, pool.team)]
        net.edge(node, group, pool.in_sample, 0)
        net.edge(node, group, len(pool.cases) - pool.in_sample, w_pref)
    for i, case in enumerate(reaudits):
        reward = w_unit + w_reaudit + (len(reaudits) - i) * w_age
        net.edge(reaudit_node[i], area_node[case.area], 1, -reward)
    for key, node in group_node.items():
        share = shares.get(key, 0)
        net.edge(node, area_node[key[0]], share, -w_unit)
        net.edge(node, area_node[key[0]], len(groups[key]) - share, w_team - w_unit)
    for area, node in area_node.items():
        net.edge(node, sink, area_target[area], 0)
        net.edge(node, sink, area_cap[area] - area_target[area], w_area)

    net.min_cost_flow(source, sink)

    received: dict[_Class, list[tuple[CaseInfo, str]]] = {c: [] for c in classes}
    taken_from_pool: Counter[int] = Counter()
    for cls, pool, e in class_to_pool:
        n = net.flow(e)
        start = taken_from_pool[id(pool)]
        received[cls].extend((c, REASON_RANDOM) for c in pool.cases[start : start + n])
        taken_from_pool[id(pool)] += n
    for cls, i, e in class_to_reaudit:
        if net.flow(e):
            received[cls].append((reaudits[i], REASON_REAUDIT))
    for cls in classes:
        assert sum(net.flow(e) for e in class_in[cls]) == len(received[cls])
    return received


def _spread(cls: _Class, items: list[tuple[CaseInfo, str]], seed: int) -> list[Allocation]:
    """Hand a class's cases to its members one round at a time, so loads differ by at most one."""
    members = sorted(cls.members, key=lambda m: _rank(seed, "auditor", m.staff_id))
    turns: list[Auditor] = []
    level = 0
    while len(turns) < len(items):
        for member in members:
            if member.quota > level and len(turns) < len(items):
                turns.append(member)
        level += 1
    items = sorted(items, key=lambda item: _rank(seed, "pair", item[0].case_ref))
    return [
        Allocation(case.case_ref, member.staff_id, case.area, reason)
        for (case, reason), member in zip(items, turns, strict=True)
    ]


def allocate(req: AllocationRequest) -> AllocationResult:
    """Allocate one month's audits (see the module docstring for the rules and their order)."""
    _validate(req)
    if req.month.month in req.blackout_months:
        line = f"{req.month:%Y-%m} is a blackout month: no cases allocated"
        return AllocationResult(req.month, req.seed, (), (line,), True)

    seed = req.seed
    last_day = month_last_day(req.month)
    window_start = repeat_window_start(req.month, req.repeat_window_months)
    counts = req.area_counts
    auditors = sorted((a for a in req.auditors if a.quota > 0), key=lambda a: a.staff_id)
    slots = sum(a.quota for a in auditors)

    due: list[CaseInfo] = []
    unsorted_groups: dict[tuple[str, str], list[CaseInfo]] = defaultdict(list)
    for case in sorted(req.cases, key=lambda c: c.case_ref):
        if case.case_ref in req.already_allocated:
            continue
        if _is_due(case, last_day):
            due.append(case)
        elif not _recently_audited(case, window_start) and (
            counts is None or counts.get(case.area, 0) > 0
        ):
            unsorted_groups[(case.area, case.team)].append(case)
    due.sort(key=lambda c: (c.reaudit_due_on, _rank(seed, "reaudit", c.case_ref)))
    exclusions = _exclusions(req, auditors, due, unsorted_groups, last_day, window_start)
    groups = {
        key: sorted(cases, key=lambda c: _rank(seed, "case", c.case_ref))
        for key, cases in unsorted_groups.items()
    }

    # Area targets (re-audits included) and the re-audits expected to fill them first.
    eligible: Counter[str] = Counter(c.area for c in due)
    for (area, _team), cases in groups.items():
        eligible[area] += len(cases)
    if counts is None:
        wanted = {a: n for a, n in eligible.items() if n > 0}
    else:
        wanted = {a: n for a, n in counts.items() if n > 0}
    areas = sorted(wanted)
    most = {a: min(wanted[a], eligible[a]) for a in areas}
    expected_reaudits: Counter[str] = Counter()
    for case in due:
        if case.area in most and expected_reaudits[case.area] < most[case.area]:
            if expected_reaudits.total() < slots:
                expected_reaudits[case.area] += 1
    target = _apportion(
        min(slots, sum(most.values())),
        wanted,
        {a: expected_reaudits[a] for a in areas},
        most,
        lambda a: _rank(seed, "area", a),
    )

    team_of = {a.staff_id: a.team for a in auditors}
    specials = {
        c.social_worker_id: team_of[c.social_worker_id]
        for c in [*due, *(c for cases in groups.values() for c in cases)]
        if c.social_worker_id in team_of and team_of[c.social_worker_id] != c.team
    }
    # Auditors sharing a team and the teams below them are interchangeable (one node).
    by_class: dict[tuple[str, str, tuple[str, ...]], list[Auditor]] = defaultdict(list)
    for a in auditors:
        managed = tuple(sorted(a.managed_teams - {a.team}))
        by_class[(a.team, a.staff_id if a.staff_id in specials else "", managed)].append(a)
    classes = [
        _Class(team, tuple(members), frozenset(managed))
        for (team, _special, managed), members in sorted(
            by_class.items(), key=lambda kv: _rank(seed, "class", kv[0][0], kv[0][1], *kv[0][2])
        )
    ]
    reaudits = [c for c in due if c.area in target]

    planned_random = {a: target[a] - expected_reaudits[a] for a in areas}
    received = _solve(
        seed=seed,
        classes=classes,
        groups=groups,
        shares=_team_shares(groups, planned_random, seed),
        specials=specials,
        reaudits=reaudits,
        area_target=target,
        area_cap=most,
        slots=slots,
    )
    got_area: Counter[str] = Counter()
    got_random: Counter[str] = Counter()
    chosen_reaudits: set[str] = set()
    for items in received.values():
        for case, reason in items:
            got_area[case.area] += 1
            if reason == REASON_RANDOM:
                got_random[case.area] += 1
            else:
                chosen_reaudits.add(case.case_ref)
    if any(got_random[a] != planned_random[a] for a in areas):
        # Constraints moved cases between areas: redo the team spread for what each area really got.
        settled = {a: got_area[a] for a in areas}
        received = _solve(
            seed=seed,
            classes=classes,
            groups=groups,
            shares=_team_shares(groups, {a: got_random[a] for a in areas}, seed),
            specials=specials,
            reaudits=[c for c in reaudits if c.case_ref in chosen_reaudits],
            area_target=settled,
            area_cap=settled,
            slots=slots,
        )

    allocations = sorted(
        (al for cls, items in received.items() for al in _spread(cls, items, seed)),
        key=lambda al: (al.auditor_id, al.case_ref),
    )
    shortfalls = _shortfalls(
        counts=counts,
        auditors=auditors,
        slots=slots,
        wanted=wanted,
        eligible=eligible,
        target=target,
        most=most,
        due=due,
        allocations=allocations,
    )
    return AllocationResult(req.month, seed, tuple(allocations), tuple(shortfalls), False,
                            exclusions)


def _exclusions(
    req: AllocationRequest,
    auditors: Sequence[Auditor],
    due: Sequence[CaseInfo],
    groups: Mapping[tuple[str, str], Sequence[CaseInfo]],
    last_day: date,
    window_start: date,
) -> tuple[Exclusion, ...]:
    """Which rule kept what out: cases left out of the month, and per auditor the eligible
    cases their own team, the teams below them and their own caseload kept from them."""
    taken = recent = uncounted = 0
    counts = req.area_counts
    for case in req.cases:
        if case.case_ref in req.already_allocated:
            taken += 1
        elif _is_due(case, last_day):
            continue
        elif _recently_audited(case, window_start):
            recent += 1
        elif counts is not None and counts.get(case.area, 0) <= 0:
            uncounted += 1
    out = [Exclusion(rule, n) for rule, n in ((RULE_ALREADY_ALLOCATED, taken),
                                              (RULE_REPEAT_WINDOW, recent),
                                              (RULE_NO_AREA_COUNT, uncounted)) if n]
    eligible = [*due, *(c for cases in groups.values() for c in cases)]
    per_team = Counter(c.team for c in eligible)
    for a in auditors:
        if per_team[a.team]:
            out.append(Exclusion(RULE_OWN_TEAM, per_team[a.team], a.staff_id, (a.team,)))
        managed = tuple(sorted(a.managed_teams - {a.team}))
        if managed:
            out.append(Exclusion(RULE_MANAGED_TEAMS, sum(per_team[t] for t in managed),
                                 a.staff_id, managed))
        held = sum(1 for c in eligible if c.social_worker_id == a.staff_id
                   and c.team != a.team and c.team not in a.managed_teams)
        if held:
            out.append(Exclusion(RULE_OWN_CASELOAD, held, a.staff_id))
    return tuple(out)


def _shortfalls(
    *,
    counts: Mapping[str, int] | None,
    auditors: Sequence[Auditor],
    slots: int,
    wanted: Mapping[str, int],
    eligible: Mapping[str, int],
    target: Mapping[str, int],
    most: Mapping[str, int],
    due: Sequence[CaseInfo],
    allocations: Sequence[Allocation],
) -> list[str]:
    """One human-readable line per thing not done; names areas, auditors and case refs only."""
    lines: list[str] = []
    if not auditors:
        lines.append("no auditor has a quota this month: nothing allocated")
    got_area = Counter(al.area for al in allocations)
    if counts is not None:
        for area in sorted(wanted):
            got = got_area[area]
            if got >= wanted[area]:
                continue
            reasons = []
            if (n := eligible.get(area, 0)) < wanted[area]:
                reasons.append(f"only {n} eligible case{'' if n == 1 else 's'}")
            if target[area] < most[area]:
                reasons.append("not enough auditor capacity")
            if got < target[area]:
                reasons.append(
                    f"{target[area] - got} could not go to an auditor outside the case's team, "
                    "the teams they manage and their caseload"
                )
            lines.append(f"{area}: {wanted[area]} wanted, {got} allocated ({'; '.join(reasons)})")

    allocated = {al.case_ref for al in allocations}
    for case in due:
        if case.case_ref in allocated:
            continue
        if case.area not in wanted:
            why = f"area {case.area} has no audit count this month"
        elif not any(a.may_audit(case) for a in auditors):
            why = "every auditor is in the case's team, manages it or holds the case"
        elif got_area[case.area] >= wanted[case.area]:
            why = f"the {case.area} count of {wanted[case.area]} is already filled"
        elif len(allocations) >= slots:
            why = "all auditor capacity is used"
        else:
            why = ("the auditors with capacity left are in the case's team, manage it or hold "
                   "the case")
        assert case.reaudit_due_on is not None
        lines.append(
            f"re-audit {case.case_ref} (due {case.reaudit_due_on.isoformat()}) not allocated: {why}"
        )

    if auditors and len(allocations) < slots:
        if counts is not None and all(got_area[a] >= wanted[a] for a in wanted):
            why = "monthly area counts met"
        elif len(allocations) >= sum(most.values()):
            why = "not enough eligible cases"
        else:
            why = ("the cases left are in the auditors' own teams, teams they manage or their "
                   "caseloads")
        lines.append(
            f"spare auditor capacity: {slots - len(allocations)} of {slots} slots unused ({why})"
        )
        load = Counter(al.auditor_id for al in allocations)
        for a in auditors:
            if load[a.staff_id] < a.quota:
                lines.append(
                    f"auditor {a.staff_id}: {load[a.staff_id]} of {a.quota} cases allocated"
                )
    return lines
