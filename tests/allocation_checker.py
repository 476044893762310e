"""An independent checker of the monthly allocation rules, used by the tests only.

It re-checks every rule of ``qa.allocation.allocate`` on a result, by a different method (it
looks for one improving move the rules say the allocator should have made), so a test can
run many seeds and trust the answer without restating the algorithm.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from fractions import Fraction

from qa.allocation import (
    REASON_RANDOM,
    REASON_REAUDIT,
    AllocationRequest,
    AllocationResult,
    Auditor,
    CaseInfo,
    repeat_window_start,
)
from qa.periods import month_last_day


def _named(token: str, lines: Iterable[str]) -> bool:
    pattern = re.compile(rf"(?<![\w-]){re.escape(token)}(?![\w-])")
    return any(pattern.search(line) for line in lines)


def _ideal_split(
    total: int, weights: Mapping[str, int], lo: Mapping[str, int], hi: Mapping[str, int]
) -> dict[str, float]:
    """Proportional shares clamped to [lo, hi] summing to ``total``, by bisection (checker only)."""

    def filled(x: float) -> float:
        return sum(min(hi[k], max(lo[k], x * weights[k])) for k in weights)

    low, high = 0.0, 1.0
    while filled(high) < total and high < 1e12:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if filled(mid) < total else (low, mid)
    return {k: min(hi[k], max(lo[k], high * weights[k])) for k in weights}


def check_allocation(req: AllocationRequest, result: AllocationResult) -> list[str]:
    """Re-check every allocation rule on ``result``; returns the violations found (empty = fine).

    Hard rules are checked exactly. "As many as possible", "re-audits first, oldest first",
    "areas in proportion", "balanced loads" and "fair spread across teams" are checked by
    looking for a single improving move (an augmenting path or a swap) that the rules say the
    allocator should have made; finding none is what an optimal allocation guarantees.
    """
    problems: list[str] = []
    if result.month != req.month:
        problems.append(f"result is for {result.month}, request for {req.month}")
    if result.seed != req.seed:
        problems.append("result seed differs from request seed")
    is_blackout = req.month.month in req.blackout_months
    if result.blackout != is_blackout:
        problems.append(f"blackout flag is {result.blackout}, expected {is_blackout}")
    if is_blackout:
        if result.allocations:
            problems.append("cases allocated in a blackout month")
        if not any("blackout" in line for line in result.shortfalls):
            problems.append("blackout month not reported in shortfalls")
        return problems

    last_day = month_last_day(req.month)
    window_start = repeat_window_start(req.month, req.repeat_window_months)
    counts = req.area_counts
    auditors = {a.staff_id: a for a in req.auditors}
    cases = {c.case_ref: c for c in req.cases}

    def due(c: CaseInfo) -> bool:
        return c.reaudit_due_on is not None and c.reaudit_due_on <= last_day

    def counted(area: str) -> bool:
        return counts is None or counts.get(area, 0) > 0

    def eligible(c: CaseInfo) -> bool:
        recent = c.last_audited_on is not None and c.last_audited_on >= window_start
        return (
            c.case_ref not in req.already_allocated and counted(c.area) and (due(c) or not recent)
        )

    def can_take(a: Auditor, c: CaseInfo) -> bool:
        return (a.team != c.team and c.team not in a.managed_teams
                and a.staff_id != c.social_worker_id)

    holder: dict[str, Auditor] = {}
    reason_of: dict[str, str] = {}
    load: Counter[str] = Counter()
    got_area: Counter[str] = Counter()
    for al in result.allocations:
        c, a = cases.get(al.case_ref), auditors.get(al.auditor_id)
        if c is None or a is None:
            problems.append(f"{al.case_ref} -> {al.auditor_id}: unknown case or auditor")
            continue
        if al.case_ref in holder:
            problems.append(f"{al.case_ref}: allocated more than once")
            continue
        holder[al.case_ref], reason_of[al.case_ref] = a, al.reason
        load[a.staff_id] += 1
        got_area[c.area] += 1
        if al.area != c.area:
            problems.append(f"{al.case_ref}: area {al.area!r} but the case is in {c.area!r}")
        if al.case_ref in req.already_allocated:
            problems.append(f"{al.case_ref}: already allocated elsewhere this month")
        if a.team == c.team:
            problems.append(f"{al.case_ref}: from auditor {a.staff_id}'s own team")
        elif c.team in a.managed_teams:
            problems.append(f"{al.case_ref}: from a team below auditor {a.staff_id}")
        if a.staff_id == c.social_worker_id:
            problems.append(f"{al.case_ref}: on auditor {a.staff_id}'s own caseload")
        if not counted(c.area):
            problems.append(f"{al.case_ref}: area {c.area} has no count this month")
        if al.reason == REASON_REAUDIT:
            if not due(c):
                problems.append(f"{al.case_ref}: marked re-audit but none is due")
        elif al.reason == REASON_RANDOM:
            if due(c):
                problems.append(f"{al.case_ref}: a due re-audit marked random")
            elif not eligible(c):
                problems.append(
                    f"{al.case_ref}: audited inside the {req.repeat_window_months}-month window"
                )
        else:
            problems.append(f"{al.case_ref}: unknown reason {al.reason!r}")

    active = [a for a in req.auditors if a.quota > 0]
    for a in req.auditors:
        if load[a.staff_id] > a.quota:
            problems.append(f"auditor {a.staff_id}: {load[a.staff_id]} cases, quota {a.quota}")
        elif load[a.staff_id] < a.quota and not _named(a.staff_id, result.shortfalls):
            problems.append(f"auditor {a.staff_id} below quota but not named in shortfalls")
    if counts is not None:
        for area, n in sorted(got_area.items()):
            if n > counts.get(area, 0):
                problems.append(
                    f"{area}: {n} allocated, more than its count of {counts.get(area, 0)}"
                )
        for area, n in sorted(counts.items()):
            if got_area[area] < n and not _named(area, result.shortfalls):
                problems.append(f"{area}: short of its count but not named in shortfalls")

    def room(area: str) -> bool:
        return counts is None or got_area[area] < counts.get(area, 0)

    free = [c for ref, c in sorted(cases.items()) if ref not in holder and eligible(c)]
    free_due = [c for c in free if due(c)]
    for c in free_due:
        if not _named(c.case_ref, result.shortfalls):
            problems.append(f"re-audit {c.case_ref} due but neither allocated nor reported")
    held = [(cases[ref], a) for ref, a in sorted(holder.items())]

    # 1. Nobody below quota while an augmenting path reaches a free case in an area with room.
    takeable = [c for c in free if room(c.area)]
    per_team = Counter(c.team for c in takeable)
    own_elsewhere = Counter(
        c.social_worker_id
        for c in takeable
        if c.social_worker_id in auditors and auditors[c.social_worker_id].team != c.team
    )

    def takes_free(a: Auditor) -> bool:
        if not a.managed_teams:
            return len(takeable) - per_team[a.team] - own_elsewhere[a.staff_id] > 0
        return any(can_take(a, c) for c in takeable)

    under = [a for a in active if load[a.staff_id] < a.quota]
    seen = {a.staff_id for a in under}
    queue = deque(under)
    while queue:
        x = queue.popleft()
        if takes_free(x):
            problems.append(
                f"auditor capacity left unused although auditor {x.staff_id} could take a free case"
            )
            break
        for c, v in held:
            if v.staff_id not in seen and can_take(x, c):
                seen.add(v.staff_id)
                queue.append(v)

    # 2. Balance: no auditor two or more ahead of a colleague who could take one of their cases.
    for u in under:
        for c, v in held:
            if load[v.staff_id] >= load[u.staff_id] + 2 and can_take(u, c):
                problems.append(
                    f"auditor {v.staff_id} has {load[v.staff_id]} while {u.staff_id} has {load[u.staff_id]}"
                )
                break

    # 3. Re-audits first, oldest first.
    for c in free_due:
        for r, u in held:
            if not can_take(u, c) or not (r.area == c.area or room(c.area)):
                continue
            if reason_of[r.case_ref] == REASON_RANDOM:
                problems.append(
                    f"re-audit {c.case_ref} left out while random case {r.case_ref} was allocated"
                )
                break
            assert r.reaudit_due_on is not None and c.reaudit_due_on is not None
            if r.reaudit_due_on > c.reaudit_due_on:
                problems.append(f"re-audit {c.case_ref} left out for the later-due {r.case_ref}")
                break

    # 4. Areas in proportion to their counts (or eligible cases), when the plan was achievable.
    eligible_area = Counter(c.area for c in cases.values() if eligible(c))
    weights = dict(counts) if counts is not None else dict(eligible_area)
    weights = {a: n for a, n in weights.items() if n > 0}
    most = {a: min(n, eligible_area[a]) for a, n in weights.items()}
    total = len(holder)
    slots = sum(a.quota for a in active)
    if weights and not free_due and total == min(slots, sum(most.values())):
        lo = {
            a: sum(1 for c, _ in held if c.area == a and reason_of[c.case_ref] == REASON_REAUDIT)
            for a in weights
        }
        ideal = _ideal_split(total, weights, lo, most)
        over = [a for a in weights if got_area[a] > math.ceil(ideal[a] - 1e-9)]
        short = [a for a in weights if got_area[a] < math.floor(ideal[a] + 1e-9)]
        for b in over:
            for a_area in short:
                options = [c for c in free if c.area == a_area]
                if any(
                    c.area == b
                    and reason_of[c.case_ref] == REASON_RANDOM
                    and any(can_take(u, f) for f in options)
                    for c, u in held
                ):
                    problems.append(
                        f"area {b} is above its share while {a_area} is below and a swap was possible"
                    )

    # 5. Fair spread of random cases across teams within each area.
    random_eligible: Counter[tuple[str, str]] = Counter(
        (c.area, c.team) for c in cases.values() if eligible(c) and not due(c)
    )
    random_got: Counter[tuple[str, str]] = Counter(
        (c.area, c.team) for c, _ in held if reason_of[c.case_ref] == REASON_RANDOM
    )
    for area in sorted({area for area, _ in random_eligible}):
        teams = {team: n for (a, team), n in random_eligible.items() if a == area}
        pool_size = sum(teams.values())
        drawn = sum(random_got[(area, t)] for t in teams)
        share = {t: Fraction(drawn * n, pool_size) for t, n in teams.items()}
        heavy = [t for t in teams if random_got[(area, t)] - share[t] >= 1]
        light = [t for t in teams if share[t] - random_got[(area, t)] >= 1]
        for t_over in heavy:
            for t_under in light:
                options = [c for c in free if c.area == area and c.team == t_under and not due(c)]
                if any(
                    c.area == area
                    and c.team == t_over
                    and reason_of[c.case_ref] == REASON_RANDOM
                    and any(can_take(u, f) for f in options)
                    for c, u in held
                ):
                    problems.append(
                        f"{area}: team {t_over} over its share and {t_under} under, swap possible"
                    )
    return problems
