"""Thematic and ad hoc audits (SPEC R4: Hillingdon 4.2-4.3, Haringey 3.2, Lambeth thematic).

``qabot theme launch NAME --tags ... --area ... --team ... --opened-from ... --opened-to ...
--cases N [--tool TOOL] [--dry-run]`` chooses open cases by those criteria and runs them
through the same path as the monthly allocation: the pure allocator (``qa.allocation.
allocate``, so nobody audits their own team's or caseload's cases, the load is balanced and
the draw is seeded and reproducible), the same audit rows, cards, form and reports. The
audits carry ``reason = "thematic"`` and a run of ``kind = "thematic"``; the digest and the
monthly report show each theme apart from the monthly sample.

How N is reached: the allocator draws from areas in proportion to their counts, so N is
split across the areas the matching cases are in, in proportion to how many match in each
(largest remainder). Cases already taken this month, or audited inside the repeat window,
are not chosen; a case due a re-audit is chosen like any other (the monthly allocation
schedules re-audits). Launching the same name twice in a month is refused by the run key.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from bot.router import Router
from cards.allocation import AllocatedCase, AllocationView, allocation_card
from flows.allocation import NO_TEAM, case_info
from flows.base import today, unit_of_work
from qa.allocation import AllocationRequest, Auditor, allocate, new_seed
from qa.periods import add_months, first_of_month, month_key, working_deadline
from store import allocations as stored
from store.allocations import NewAudit
from store.outbox import Message

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()  # launched from the command line by the QA team
jobs = ()


class LaunchRefused(ValueError):
    """The criteria cannot be used as given (an unknown area, team, tool, or no match)."""


@dataclass(frozen=True)
class Criteria:
    name: str
    cases: int
    tags: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    opened_from: date | None = None
    opened_to: date | None = None
    tool: str | None = None


@dataclass(frozen=True)
class ThemeOutcome:
    status: str  # "launched" | "dry_run" | "already"
    key: str
    matching: int
    allocated: tuple[tuple[str, str, str], ...]  # (case ref, auditor id, area)
    shortfalls: tuple[str, ...]
    seed: int
    deadline: date | None
    queued: int = 0

    def report(self) -> list[str]:
        verb = {"launched": "allocated", "dry_run": "would allocate",
                "already": "was already launched:"}[self.status]
        lines = [f"{self.key}: {self.matching} open case(s) match; {verb} "
                 f"{len(self.allocated)} audit(s), seed {self.seed}"
                 + (f", deadline {self.deadline.isoformat()}" if self.deadline else "")
                 + (f", {self.queued} message(s) queued" if self.status == "launched" else "")]
        per_area = Counter(a for _, _, a in self.allocated)
        lines += [f"  {area}: {n}" for area, n in sorted(per_area.items())]
        lines += [f"  - {s}" for s in self.shortfalls]
        if self.status == "dry_run":
            lines.append("Dry run: nothing was written.")
        return lines


def run_key(name: str, month: date) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "theme"
    return f"thematic:{month_key(month)}:{slug[:80]}"


def _split(total: int, weights: dict[str, int]) -> dict[str, int]:
    """``total`` split in proportion to ``weights`` by largest remainder, capped by them."""
    whole = sum(weights.values())
    total = min(total, whole)
    if not whole:
        return {}
    shares = {k: total * w / whole for k, w in weights.items()}
    out = {k: int(v) for k, v in shares.items()}
    for k in sorted(shares, key=lambda k: (-(shares[k] - out[k]), k)):
        if sum(out.values()) >= total:
            break
        if out[k] < weights[k]:
            out[k] += 1
    return out


async def launch_theme(services: Services, criteria: Criteria, *, at: datetime, actor: str,
                       dry_run: bool = False, seed: int | None = None) -> ThemeOutcome:
    fw = services.framework
    if criteria.cases < 1:
        raise LaunchRefused("--cases must be at least 1")
    unknown = [a for a in criteria.areas if a not in fw.areas]
    if unknown:
        raise LaunchRefused(f"unknown area(s) {', '.join(unknown)}; known: {', '.join(fw.areas)}")
    if criteria.tool is not None and criteria.tool not in fw.tools:
        raise LaunchRefused(f"unknown tool {criteria.tool!r}; known: {', '.join(fw.tools)}")
    day = today(services, at)
    month = first_of_month(day)
    key = run_key(criteria.name, month)
    async with services.sessions() as session:
        existing = await stored.run_by_key(session, key)
        inputs = await stored.allocation_inputs(session, month_key(month))
    if existing is not None:
        return ThemeOutcome("already", key, 0, (), (), existing.seed, existing.deadline)
    team_ids = {name.lower(): tid for tid, name in inputs.team_names.items()}
    missing = [t for t in criteria.teams if t.lower() not in team_ids]
    if missing:
        raise LaunchRefused(f"unknown team(s) {', '.join(missing)}")
    wanted_teams = {team_ids[t.lower()] for t in criteria.teams}
    tags = {t.lower() for t in criteria.tags}
    matching = [
        c for c in inputs.cases
        if c.area in fw.areas
        and (not criteria.areas or c.area in criteria.areas)
        and (not wanted_teams or c.team_id in wanted_teams)
        and (not tags or tags.intersection(t.lower() for t in c.tags))
        and (criteria.opened_from is None or c.opened_on >= criteria.opened_from)
        and (criteria.opened_to is None or c.opened_on <= criteria.opened_to)
    ]
    if not matching:
        raise LaunchRefused("no open case matches those criteria")
    cases = [replace(case_info(fw, c), reaudit_due_on=None) for c in matching]
    auditors = [Auditor(s.staff_id, str(s.team_id) if s.team_id is not None else NO_TEAM, q)
                for s in inputs.staff if (q := fw.quota_for_roles(s.roles)) > 0]
    request = AllocationRequest(
        month=month, seed=new_seed() if seed is None else seed, auditors=auditors,
        cases=cases, area_counts=_split(criteria.cases, Counter(c.area for c in matching)),
        repeat_window_months=fw.repeat_window_months, already_allocated=inputs.taken)
    result = allocate(request)
    deadline = working_deadline(services.calendar, day, fw.deadline_working_days)
    allocated = tuple((a.case_ref, a.auditor_id, a.area) for a in result.allocations)
    outcome = ThemeOutcome("dry_run", key, len(matching), allocated, result.shortfalls,
                           request.seed, deadline)
    if dry_run:
        return outcome
    case_team = {c.case_ref: c.team_id for c in matching}
    look_back = (add_months(day, -fw.look_back_months), day)
    try:
        async with unit_of_work(services, at=at, actor=actor) as work:
            run = await stored.insert_run(
                work.session, key=key, kind="thematic", month=month_key(month),
                seed=request.seed, at=at, actor=actor, deadline=deadline,
                summary={"criteria": _criteria_summary(criteria), "matching": len(matching),
                         "allocated": len(allocated), "shortfalls": list(result.shortfalls)})
            run.theme = criteria.name
            new = [NewAudit(ref, auditor, case_team[ref], area,
                            criteria.tool or fw.areas[area].tool, "thematic")
                   for ref, auditor, area in allocated]
            ids = await stored.insert_audits(work.session, run, new, at=at, look_back=look_back)
            work.log("allocation.created", "allocation_run", key,
                     after={"run_id": run.id, "kind": "thematic", "seed": request.seed,
                            "audits": len(new), "deadline": deadline.isoformat()})
            names = {s.staff_id: s.name for s in inputs.staff}
            by_auditor: dict[str, list[AllocatedCase]] = {}
            for a in new:
                work.log("audit.allocated", "audit", str(ids[a.case_ref]),
                         after={"run_id": run.id, "case_ref": a.case_ref,
                                "auditor_id": a.auditor_id, "reason": "thematic"})
                by_auditor.setdefault(a.auditor_id, []).append(AllocatedCase(
                    ids[a.case_ref], a.case_ref, fw.areas[a.area].label, "thematic",
                    look_back[0], look_back[1], deadline))
            for sid, items in sorted(by_auditor.items()):
                view = AllocationView(fw.authority, names.get(sid, ""), month, tuple(items))
                await work.tell(Message(allocation_card(view), staff_id=sid,
                                        dedupe_key=f"{key}:{sid}"))
            queued = work.queued
    except IntegrityError:
        async with services.sessions() as session:
            existing = await stored.run_by_key(session, key)
        if existing is None:
            raise
        return ThemeOutcome("already", key, 0, (), (), existing.seed, existing.deadline)
    log.info("thematic audit launched", extra={"key": key, "audits": len(allocated)})
    return replace(outcome, status="launched", queued=queued)


def _criteria_summary(c: Criteria) -> dict[str, object]:
    return {"tags": list(c.tags), "areas": list(c.areas), "teams": list(c.teams),
            "opened_from": c.opened_from.isoformat() if c.opened_from else None,
            "opened_to": c.opened_to.isoformat() if c.opened_to else None,
            "cases": c.cases, "tool": c.tool}
