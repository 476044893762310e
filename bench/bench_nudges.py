"""The daily nudges for a big council: one simulated day's job and its fan-out (issue 9).

A council of 1,000 staff (bench/datagen.py's hierarchy: director, assistant director, heads
of service, service managers, team managers, social workers) with 5,000 open audit actions
whose due dates spread over four months around the day, each chased as of the day before
(reminded, on its step of the ladder), so the day's run has what any ordinary working day
has: reminders, first overdue nudges, and a rung of the ladder for the actions whose week
has come round. Everyone is linked to Teams and has a 1:1 chat.

The job runs as an operator replays a day, through the real command in its own process
(``qabot jobs run daily_nudges --at DAY``), which only queues; the running service's sender
(bench/qabot_proc.py) delivers to the fake Bot Connector (Teams' limits on, 10% 429 and 2%
503). Timed: the job itself, and from its commit to the last delivery against the rate
floor (messages / tenant rate). Checked: one message per person told, none lost, none
twice; a replay of the same day queues nothing.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

from bench.bench_fanout import outbox_counts, watch
from bench.harness import (
    PYTHON,
    ROOT,
    BenchOptions,
    Section,
    Target,
    database,
    md_table,
    start_connector,
    start_qabot,
    usable_databases,
)

RATIO_TARGET = 1.15
JOB_TARGET_S = 30.0
DAY = date(2027, 3, 10)  # a Wednesday, no bank holiday near


@dataclass(frozen=True)
class Config:
    staff: int = 1000
    actions: int = 5000
    tenant_rate: float = 25.0
    faults: tuple[tuple[int, float], ...] = ((429, 0.10), (503, 0.02))
    retry_after: float = 1.0
    seed: int = 11

    @classmethod
    def tiny(cls) -> Config:
        return cls(staff=80, actions=200, tenant_rate=100.0, retry_after=0.0)


async def seed(url: str, connector_url: str, cfg: Config) -> dict[str, int]:
    """The council, its cases and submitted audits, and the open actions chased so far."""
    from botbuilder.schema import Activity
    from sqlalchemy import insert, select

    from bench.datagen import generate, load_council
    from bot.teams import to_incoming
    from qa.calendar import WorkingCalendar
    from qa.chase import chase_today
    from qa.framework_file import bundled_framework_path, load_framework
    from store.db import make_engine, make_sessionmaker
    from store.models import AllocationRun, Audit, AuditAction, Conversation, Team
    from tests.fakes.activities import User, message

    fw = load_framework(bundled_framework_path("lambeth_like"))
    cal = WorkingCalendar(fw.calendar.region, fw.calendar.extra_closures)
    council = generate(cfg.seed, n_staff=cfg.staff, n_cases=cfg.actions)
    users = {s.staff_id: User.named(s.name, email=s.email) for s in council.staff}
    engine = make_engine(url)
    rng = random.Random(cfg.seed)
    yesterday = cal.add_working_days(DAY, -1)
    try:
        sessions = make_sessionmaker(engine)
        await load_council(sessions, council, teams_ids={k: u.id for k, u in users.items()})
        async with sessions.begin() as s:
            for sid, user in users.items():
                incoming = to_incoming(Activity().deserialize(
                    message("hi", user=user, service_url=connector_url)))
                s.add(Conversation(id=incoming.conversation_id, kind="personal",
                                   tenant_id=incoming.tenant_id, service_url=connector_url,
                                   reference=incoming.reference, teams_user_id=user.id,
                                   staff_id=sid))
            run = AllocationRun(key="bench:nudges", kind="monthly", month="2027-01", seed=1,
                                created_by="bench", deadline=date(2027, 1, 22), summary={})
            s.add(run)
            await s.flush()
            team_ids = {t.name: t.id for t in await s.scalars(select(Team))}
            auditor = next(x.staff_id for x in council.staff if "qa_lead" in x.roles)
            submitted = datetime(2027, 1, 15, 12, tzinfo=UTC)
            audit_rows = [{"run_id": run.id, "case_ref": c.case_ref, "auditor_id": auditor,
                           "team_id": team_ids[c.team], "area": c.area, "tool": "case_audit",
                           "month": "2027-01", "reason": "random", "status": "submitted",
                           "allocated_at": submitted, "deadline": date(2027, 1, 22),
                           "look_back_from": date(2026, 7, 1), "look_back_to": date(2027, 1, 4),
                           "submitted_at": submitted, "submitted_by": auditor,
                           "overall_grade": "requires_improvement", "version": 1}
                          for c in council.cases]
            ids = (await s.scalars(insert(Audit).returning(Audit.id, sort_by_parameter_order=True),
                                   audit_rows)).all()
            staff_ids = {x.staff_id for x in council.staff}
            managers = {x.staff_id: x.manager_id for x in council.staff}
            action_rows = []
            for audit_id, case in zip(ids, council.cases, strict=True):
                owner = case.social_worker_id or managers.get(auditor) or auditor
                if owner not in staff_ids:
                    owner = auditor
                due = DAY + timedelta(days=rng.randint(-90, 30))
                was = chase_today(cal, due_on=due, today=yesterday,
                                  remind_before=fw.escalation.action_reminder_working_days,
                                  reminded=False, step=-1, step_days=fw.escalation.step_days)
                reminded = yesterday if (was.remind or due < yesterday) else None
                step = was.latest if was.latest is not None else -1
                action_rows.append({"audit_id": audit_id, "seq": 1, "what": "Update the plan",
                                    "owner_id": owner, "due_on": due, "first_due_on": due,
                                    "priority": "medium", "status": "open",
                                    "created_at": submitted, "reminded_on": reminded,
                                    "step": step, "stepped_on": yesterday if step >= 0 else None})
            await s.execute(insert(AuditAction), action_rows)
    finally:
        await engine.dispose()
    return {"staff": len(council.staff), "actions": len(action_rows)}


def run_job(url: str, when: datetime, log_name: str, workdir: Any) -> float:
    """``qabot jobs run daily_nudges --at`` in its own process; returns its wall time."""
    env = dict(os.environ, DATABASE_URL=url, QABOT_SCHEDULER="off", PYTHONPATH=str(ROOT))
    started = time.monotonic()
    with (workdir / f"{log_name}.log").open("w") as log:
        done = subprocess.run([PYTHON, "-m", "qabot.cli", "jobs", "run", "daily_nudges",
                               "--at", when.isoformat()], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the nudge job failed; see {workdir / (log_name + '.log')}")
    return time.monotonic() - started


async def one(opts: BenchOptions, cfg: Config, kind: str, connector: Any) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    curl = connector.ready["url"]
    connector.call({"cmd": "clear"})
    connector.call({"cmd": "reset"})
    when = datetime.combine(DAY, clock_time(9, 30), tzinfo=ZoneInfo("Europe/London"))
    async with database(kind, opts.workdir, "nudges") as url:
        sizes = await seed(url, curl, cfg)
        env = {"QABOT_TENANT_RATE": f"{cfg.tenant_rate:g}"}
        with start_qabot(opts.workdir, url, f"qabot-nudges-{kind}", env) as bot:
            connector.call({"cmd": "configure", "per_conversation": True,
                            "tenant_per_second": cfg.tenant_rate,
                            "faults": {str(k): v for k, v in cfg.faults},
                            "seed": cfg.seed, "retry_after": cfg.retry_after})
            job_s = await asyncio.to_thread(run_job, url, when, f"nudges-job-{kind}",
                                            opts.workdir)
            committed = time.monotonic()
            queued = (await outbox_counts(url))
            total = sum(queued[k] for k in ("pending", "sending", "sent", "failed"))
            counts = await watch(url, total, limit_s=max(60.0, 4 * total / cfg.tenant_rate))
            stats = connector.call({"cmd": "stats"})
            replay_s = await asyncio.to_thread(run_job, url, when, f"nudges-replay-{kind}",
                                               opts.workdir)
            after = await outbox_counts(url)
            people = await _people_told(url)
            memory = bot.status()
        connector.call({"cmd": "clear"})
    last = stats.get("last_delivery_at")
    return {"database": kind, **sizes, "messages": total, "people": people["people"],
            "max_per_person": people["max_per_person"], "job_s": job_s,
            "fanout_s": (last - committed) if last else None, "floor_s": total / cfg.tenant_rate,
            "replay_s": replay_s, "replay_new": sum(after[k] for k in
                                                    ("pending", "sending", "sent", "failed"))
            - total, "outbox": counts, "connector": stats, "memory_kb": memory}


async def _people_told(url: str) -> dict[str, int]:
    from collections import Counter

    from sqlalchemy import select

    from store.db import make_engine, make_sessionmaker
    from store.models import OutboxMessage

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            staff = list(await s.scalars(select(OutboxMessage.staff_id)))
    finally:
        await engine.dispose()
    per = Counter(staff)
    return {"people": len(per), "max_per_person": max(per.values(), default=0)}


async def run(opts: BenchOptions, cfg: Config | None = None) -> Section:
    cfg = cfg or (Config.tiny() if opts.tiny else Config())
    databases, skipped = await usable_databases(opts.databases)
    results: list[dict[str, Any]] = []
    connector = start_connector(opts.workdir, "connector-nudges")
    try:
        for kind in databases:
            opts.say(f"nudges: {cfg.staff} staff, {cfg.actions} open actions, {kind}")
            results.append(await one(opts, cfg, kind, connector))
    finally:
        connector.stop()
    return build_section(cfg, results, skipped)


def build_section(cfg: Config, results: list[dict[str, Any]], skipped: list[str]) -> Section:
    faults = ", ".join(f"{int(p * 100)}% {s}" for s, p in cfg.faults)
    lines = [
        f"{cfg.staff:,} staff, {cfg.actions:,} open actions with due dates over four months "
        f"around {DAY:%a %d %b %Y}, each chased as of the day before. The job runs through "
        "`qabot jobs run daily_nudges --at` in its own process (it only queues); the running "
        f"service delivers. Tenant rate {cfg.tenant_rate:g}/s; {faults}. The fan-out is timed "
        "from the job's end to the last delivery the fake accepted; its floor is messages / "
        "rate (every person already has a 1:1 chat).",
        "",
    ]
    rows, targets = [], []
    for r in results:
        c, o = r["connector"], r["outbox"]
        lost = r["messages"] - o["sent"]
        ratio = (r["fanout_s"] / r["floor_s"]) if r["fanout_s"] and r["floor_s"] else 0.0
        rows.append([r["database"], r["actions"], r["messages"], r["people"],
                     f"{r['job_s']:.1f} s", f"{r['fanout_s'] or 0:.1f} s",
                     f"{r['floor_s']:.1f} s ({ratio:.2f}x)", o["sent"], c["duplicates"], lost,
                     r["max_per_person"], f"{r['replay_s']:.1f} s", r["replay_new"]])
        label = r["database"]
        targets += [
            Target(f"nudge job for {r['actions']:,} open actions, {label}",
                   f"< {JOB_TARGET_S:.0f} s", f"{r['job_s']:.1f} s", r["job_s"] < JOB_TARGET_S),
            Target(f"nudge fan-out vs messages / rate, {label}", f"<= {RATIO_TARGET}x",
                   f"{ratio:.2f}x ({r['fanout_s'] or 0:.1f} s vs {r['floor_s']:.1f} s for "
                   f"{r['messages']} messages)", 0 < ratio <= RATIO_TARGET),
            Target(f"nudges lost / duplicated / more than one a person, {label}", "0 / 0 / 0",
                   f"{lost} / {c['duplicates']} / {max(0, r['max_per_person'] - 1)}",
                   lost == 0 and c["duplicates"] == 0 and r["max_per_person"] == 1),
            Target(f"replayed day queues nothing, {label}", "0", str(r["replay_new"]),
                   r["replay_new"] == 0),
        ]
    lines.append(md_table(["db", "open actions", "messages", "people told", "job",
                           "fan-out", "vs floor", "delivered", "duplicated", "lost",
                           "most to one person", "replay", "replay queued"], rows))
    if skipped:
        lines.append(f"\nNot run: {', '.join(skipped)}.")
    return Section("nudges", "The daily nudges for 1,000 staff and 5,000 actions (issue 9)",
                   "\n".join(lines), targets, {"results": results})
