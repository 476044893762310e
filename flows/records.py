"""Records (SPEC R13): reading the audit log, and retention (purge) per the framework file.

* ``qabot log --since DATE [--case REF | --staff ID]``: the audit log, for the QA team and
  operators (ids, actions and the recorded before/after; never message content).
* ``qabot purge --dry-run`` lists what would go; ``qabot purge`` removes it and writes ONE
  audit-log entry with the counts (never what was removed). What goes, by
  ``[retention]`` in the framework file (docs/data-protection.md says why):

  - a case closed ``closed_case_years`` whole years ago or more, with everything hanging
    off it: its audits (answers, drafts), domain grades, actions, the log entries about
    them, and any allocation run left with no audit; open cases are never purged, however
    old, and a case with no closing date is treated as open;
  - log entries older than ``audit_log_years`` about anything else (staff, conversations,
    allocation runs, digests), except the purge entries themselves;
  - the content of messages delivered more than ``outbox_content_days`` ago (also done
    daily by the ``outbox_content_purge`` job): the row and its dedupe key stay, so a
    replayed job still sends nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.router import Router
from flows.base import today, unit_of_work
from qa.periods import add_months, local_midnight_utc
from scheduler.jobs import Job
from store import retention as stored
from store.models import AuditLogEntry

if TYPE_CHECKING:
    from qabot.services import Services

log = logging.getLogger(__name__)
router = Router()


async def read_log(services: Services, *, since: datetime, until: datetime | None = None,
                   case_ref: str | None = None, staff_id: str | None = None,
                   limit: int = 5000) -> list[AuditLogEntry]:
    async with services.sessions() as session:
        return await stored.log_entries(session, since=since, until=until, case_ref=case_ref,
                                        staff_id=staff_id, limit=limit)


def log_line(entry: AuditLogEntry, services: Services) -> str:
    """One entry as a line: when (local), who, what, which record, what changed (ids)."""
    when = entry.at.astimezone(services.framework.zone).strftime("%Y-%m-%d %H:%M")
    change = []
    if entry.before:
        change.append(f"before {_compact(entry.before)}")
    if entry.after:
        change.append(f"after {_compact(entry.after)}")
    return (f"{when}  {entry.actor:<24} {entry.action:<28} {entry.entity}#{entry.entity_id}"
            + (f"  {'; '.join(change)}" if change else ""))


def _compact(values: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))


@dataclass(frozen=True)
class PurgeOutcome:
    dry_run: bool
    closed_before: str
    counts: dict[str, int]
    cases: list[tuple[str, str]]  # (case ref, closed on), for the dry-run listing

    def report(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"Retention: cases closed before {self.closed_before}; {verb}: "
                 + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in self.counts.items())]
        if self.dry_run:
            lines += [f"  {ref} (closed {closed})" for ref, closed in self.cases]
            lines.append("Dry run: nothing was removed.")
        return lines


async def purge_records(services: Services, *, at: datetime, actor: str,
                        dry_run: bool) -> PurgeOutcome:
    r = services.framework.retention
    day = today(services, at)
    closed_before = add_months(day, -12 * r.closed_case_years)
    log_before = local_midnight_utc(add_months(day, -12 * r.audit_log_years),
                                    services.framework.zone)
    sent_before = at - timedelta(days=r.outbox_content_days)
    async with unit_of_work(services, at=at, actor=actor) as work:
        plan = await stored.plan_purge(work.session, closed_before=closed_before,
                                       log_before=log_before)
        cleared = await stored.clear_sent_content(work.session, sent_before=sent_before,
                                                  dry_run=True)
        counts = {**plan.counts(), "message_contents": cleared}
        if not dry_run:
            await stored.purge(work.session, plan, log_before=log_before)
            await stored.clear_sent_content(work.session, sent_before=sent_before)
            work.log("records.purged", "retention", day.isoformat(),
                     after={**counts, "closed_before": closed_before.isoformat()})
    log.info("purge", extra={"dry_run": dry_run, **counts})
    return PurgeOutcome(dry_run, closed_before.isoformat(), counts,
                        [(ref, d.isoformat()) for ref, d in plan.cases])


async def outbox_content_purge(services: Services, at: datetime) -> str:
    """Clear the content of messages delivered long enough ago; idempotent."""
    days = services.framework.retention.outbox_content_days
    async with unit_of_work(services, at=at, actor="job:outbox_content_purge") as work:
        n = await stored.clear_sent_content(work.session, sent_before=at - timedelta(days=days))
        if n:
            work.log("outbox.content_purged", "retention", at.date().isoformat(),
                     after={"messages": n, "older_than_days": days})
    return f"cleared the content of {n} message(s) delivered over {days} day(s) ago"


jobs = (Job("outbox_content_purge", "clear the text of messages delivered days ago (retention)",
            outbox_content_purge, lambda s: s.daily_time),)
