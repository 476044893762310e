"""Click latency: auditors clicking through the audit form, against the framework's floor.

Processes (all on loopback): the fake Bot Connector (bench/connector_proc.py), the bot
under test (bench/qabot_proc.py: the real service, its own fresh database, scheduler off,
logs at WARNING; or bench/echo_bot.py: bare botbuilder), and the load generator
(bench/loadgen.py). The benchmark process itself only seeds, starts and reads figures.

Workload: 50 auditors, each with allocated audits (AllocationRun/Audit/Case/Staff/Team
rows inserted directly). When the audit form's verbs are registered, each auditor works
through their audits in order: ``audit.open`` -> ``audit.save_draft`` (half the form) ->
``audit.submit`` (a valid form), all Action.Execute invokes answered inline with a card
(the submit also sends a thank-you message through the connector). Otherwise, and as an
extra phase, ``help`` text messages (full handler path, DB reads, one outbound reply).

Phases per bot, same order for each: warm-up (one help per user), closed loop with 50
users (saturation throughput), open loop at 5 and 20 clicks/s (latency a busy council
would see: the 150 ms p99 target), open loop of help messages at 20/s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import (
    BenchOptions,
    ChildProcess,
    Section,
    Target,
    database,
    machine_busy,
    md_table,
    ms,
    run_loadgen,
    start_connector,
    start_echo,
    start_qabot,
    usable_databases,
)

FORM_VERBS = ("audit.open", "audit.save_draft", "audit.submit")
P99_TARGET_MS = 150.0
ECHO_RATIO_TARGET = 2.0
RSS_TARGET_MB = 200.0


@dataclass(frozen=True)
class Config:
    users: int = 50
    warmup_s: float = 3.0
    closed_s: float = 15.0
    open_rates: tuple[float, ...] = (5.0, 20.0)
    open_s: float = 24.0
    help_rate: float = 20.0
    help_s: float = 15.0
    audits_per_user: int = 20

    @classmethod
    def tiny(cls) -> Config:
        return cls(users=3, warmup_s=0.5, closed_s=1.0, open_rates=(5.0, 20.0), open_s=1.0,
                   help_rate=10.0, help_s=1.0, audits_per_user=12)


# ---------------------------------------------------------------------------- workload


def form_available() -> bool:
    """Whether the audit form's verbs are registered (the flow is being written now)."""
    try:
        from qabot.app import build_router

        verbs = build_router().cards
    except Exception:
        return False
    return all(v in verbs for v in FORM_VERBS)


def bench_users(n: int) -> list[Any]:
    from tests.fakes.activities import User

    return [User.named(f"Bench Auditor {i:03d}") for i in range(1, n + 1)]


def form_inputs(framework: Any, tool_key: str, *, complete: bool) -> dict[str, str]:
    """What an auditor types: a valid Good audit, or the first half of it for a draft."""
    from qa import form_rules as fr

    tool = framework.tools[tool_key]
    values = {fr.domain_id(d.key): "good" for d in tool.domains}
    values.update({
        fr.OVERALL: "good",
        fr.OUTCOMES: "met",
        fr.STRENGTHS: "Regular visits, the child's voice is clear in recordings and the "
                      "plan is reviewed on time.",
        fr.WORRIES: "Chronology is two months out of date.",
        fr.BETTER: "Update the chronology and record the reasons for the change of school.",
        fr.SW_TOOK_PART: "yes",
        fr.CHILD_CONTACTED: "under_12",
        fr.FAMILY_CONTACTED: "no",
        fr.SAFEGUARDING: "false",
    })
    if complete:
        return values
    keys = list(values)
    return {k: values[k] for k in keys[: len(keys) // 2]}


def scripts_for(kind: str, audits: dict[int, list[int]], n_users: int, start: list[int],
                count: int, framework: Any, tool_key: str) -> list[list[dict[str, Any]]]:
    """Per user: ``count`` audits from ``start[i]`` (3 clicks each), or help messages."""
    if kind == "help":
        return [[{"kind": "help"}] for _ in range(n_users)]
    draft = form_inputs(framework, tool_key, complete=False)
    full = form_inputs(framework, tool_key, complete=True)
    out: list[list[dict[str, Any]]] = []
    for i in range(n_users):
        mine = audits[i][start[i]: start[i] + count]
        script: list[dict[str, Any]] = []
        for audit_id in mine:
            script.append({"kind": "audit.open", "data": {"audit_id": audit_id}})
            script.append({"kind": "audit.save_draft", "data": {**draft, "audit_id": audit_id}})
            script.append({"kind": "audit.submit", "data": {**full, "audit_id": audit_id}})
        out.append(script or [{"kind": "help"}])
    return out


async def seed(url: str, n_users: int, audits_per_user: int, framework: Any
               ) -> tuple[dict[int, list[int]], str]:
    """Auditors, the social work teams whose cases they audit, and allocated audits."""
    from sqlalchemy import select

    from store.db import make_engine, make_sessionmaker
    from store.models import AllocationRun, Audit, Case, Staff, Team

    area_key, area = next(iter(framework.areas.items()))
    users = bench_users(n_users)
    today = datetime.now(UTC).date()
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions.begin() as s:
            qa_team = Team(name="Bench QA auditors")
            sw_teams = [Team(name=f"Bench social work team {t}") for t in range(4)]
            s.add_all([qa_team, *sw_teams])
            await s.flush()
            for t, team in enumerate(sw_teams):
                s.add(Staff(staff_id=f"TM{t}", name=f"Manager {t}", email=f"tm{t}@bench.example",
                            roles=["team_manager"], team_id=team.id))
                s.add(Staff(staff_id=f"SW{t}", name=f"Worker {t}", email=f"sw{t}@bench.example",
                            roles=["social_worker"], team_id=team.id, manager_id=f"TM{t}"))
            for i, user in enumerate(users):
                s.add(Staff(staff_id=f"A{i:03d}", name=user.name, email=user.email,
                            roles=["advanced_practitioner"], team_id=qa_team.id,
                            teams_user_id=user.id, aad_object_id=user.aad_object_id))
            run = AllocationRun(key=f"monthly:{today:%Y-%m}", kind="monthly",
                                month=f"{today:%Y-%m}", seed=1, created_by="bench",
                                deadline=today + timedelta(days=30), summary={})
            s.add(run)
            await s.flush()
            for i in range(n_users):
                for k in range(audits_per_user):
                    t = (i + k) % len(sw_teams)
                    ref = f"C-B{i:03d}{k:03d}"
                    s.add(Case(case_ref=ref, team_id=sw_teams[t].id, social_worker_id=f"SW{t}",
                               area=area_key, opened_on=today - timedelta(days=200)))
            await s.flush()
            for i in range(n_users):
                for k in range(audits_per_user):
                    t = (i + k) % len(sw_teams)
                    s.add(Audit(run_id=run.id, case_ref=f"C-B{i:03d}{k:03d}",
                                auditor_id=f"A{i:03d}", team_id=sw_teams[t].id, area=area_key,
                                tool=area.tool, month=f"{today:%Y-%m}", reason="random",
                                status="allocated", deadline=today + timedelta(days=30),
                                look_back_from=today - timedelta(days=180), look_back_to=today))
        async with sessions() as s:
            rows = (await s.execute(select(Audit.id, Audit.auditor_id).order_by(Audit.id))).all()
    finally:
        await engine.dispose()
    audits: dict[int, list[int]] = {i: [] for i in range(n_users)}
    for audit_id, auditor in rows:
        audits[int(auditor[1:])].append(audit_id)
    return audits, area.tool


async def persisted(url: str) -> dict[str, int]:
    """What the clicks changed in the database (proof the work was real, not refusals)."""
    from sqlalchemy import func, select

    from store.db import make_engine, make_sessionmaker
    from store.models import Audit

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            submitted = await s.scalar(
                select(func.count()).select_from(Audit).where(Audit.submitted_at.is_not(None)))
            drafts = await s.scalar(
                select(func.count()).select_from(Audit).where(Audit.draft_saved_at.is_not(None)))
    finally:
        await engine.dispose()
    return {"submitted": int(submitted or 0), "drafts_saved": int(drafts or 0)}


# ---------------------------------------------------------------------------- phases


def run_phases(opts: BenchOptions, cfg: Config, bot: ChildProcess, label: str, *,
               form: bool, audits: dict[int, list[int]], framework: Any, tool_key: str,
               connector_url: str) -> dict[str, Any]:
    """Warm-up, closed loop, open loops, help loop against one running bot."""
    url = f"http://127.0.0.1:{bot.ready['port']}/api/messages"
    users = bench_users(cfg.users)
    start = [0] * cfg.users
    out: dict[str, Any] = {}

    def spec(kind: str, count: int) -> Path:
        scripts = scripts_for(kind, audits, cfg.users, start, count, framework, tool_key)
        path = opts.workdir / f"spec-{label}-{kind}.json"
        path.write_text(json.dumps({
            "service_url": connector_url,
            "users": [{"id": u.id, "aad": u.aad_object_id, "name": u.name, "email": u.email}
                      for u in users],
            "scripts": scripts,
        }))
        return path

    def advance(report: dict[str, Any]) -> None:
        # Whole audits done per user (3 clicks each); a half-done one is skipped.
        for i, clicks in enumerate(report["consumed"][: cfg.users]):
            start[i] += -(-clicks // 3)

    def measured(**kwargs: Any) -> dict[str, Any]:
        """One loadgen run, with the bot's own CPU time and how busy the machine was."""
        cpu0, (busy0, total0) = bot.cpu_seconds(), machine_busy()
        report = run_loadgen(opts.workdir, url=url, **kwargs)
        cpu1, (busy1, total1) = bot.cpu_seconds(), machine_busy()
        report["bot_cpu_s"] = cpu1 - cpu0
        report["bot_cpu_ms_per_click"] = (cpu1 - cpu0) * 1000 / max(1, report["ok"])
        report["machine_busy"] = (busy1 - busy0) / max(1e-9, total1 - total0)
        return report

    work = "form" if form else "help"
    opts.say(f"  {label}: warm-up")
    # Warm every path once (imports, SQL compilation, prepared statements, pooled
    # connections), as a service that has been up a while is: one audit per user.
    measured(spec_path=spec("help", 0), mode="closed", users=cfg.users,
             duration=cfg.warmup_s / 2, name=f"loadgen-{label}-warmup-help")
    if form:
        advance(measured(spec_path=spec("form", 1), mode="closed", users=cfg.users,
                         duration=cfg.warmup_s, name=f"loadgen-{label}-warmup-form"))
    # Closed loop: enough audits for ~90 clicks per user at most.
    per_phase = max(2, (cfg.audits_per_user - 1) // (2 + len(cfg.open_rates)))
    opts.say(f"  {label}: closed loop, {cfg.users} users, {cfg.closed_s:.0f} s ({work})")
    report = measured(spec_path=spec(work, per_phase * 2), mode="closed", users=cfg.users,
                      duration=cfg.closed_s, name=f"loadgen-{label}-closed")
    out["closed"] = report
    if form:
        advance(report)
    for rate in cfg.open_rates:
        opts.say(f"  {label}: open loop, {rate:g}/s, {cfg.open_s:.0f} s ({work})")
        report = measured(spec_path=spec(work, per_phase), mode="open", rate=rate,
                          duration=cfg.open_s, seed=int(rate),
                          name=f"loadgen-{label}-open{rate:g}")
        out[f"open{rate:g}"] = report
        if form:
            advance(report)
    if form:
        opts.say(f"  {label}: open loop of help messages, {cfg.help_rate:g}/s")
        out["help"] = measured(spec_path=spec("help", 0), mode="open", rate=cfg.help_rate,
                               duration=cfg.help_s, seed=99, name=f"loadgen-{label}-help")
    out["memory_kb"] = bot.status()
    return out


# ---------------------------------------------------------------------------- run


async def run(opts: BenchOptions, cfg: Config | None = None) -> Section:
    from qa.framework_file import bundled_framework_path, load_framework

    cfg = cfg or (Config.tiny() if opts.tiny else Config())
    framework = load_framework(bundled_framework_path("lambeth_like"))
    form = form_available()
    databases, skipped = await usable_databases(opts.databases)
    results: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, int]] = {}
    connector = start_connector(opts.workdir, "connector-clicks")
    try:
        curl = connector.ready["url"]
        tool_key = next(iter(framework.tools))
        fake_audits = {i: list(range(1, cfg.audits_per_user + 1)) for i in range(cfg.users)}
        opts.say("clicks: echo bot (bare botbuilder CloudAdapter)")
        with start_echo(opts.workdir, "echo") as echo:
            results["echo bot"] = run_phases(opts, cfg, echo, "echo", form=form,
                                             audits=fake_audits, framework=framework,
                                             tool_key=tool_key, connector_url=curl)
        for kind in databases:
            opts.say(f"clicks: QA bot on {kind}")
            async with database(kind, opts.workdir, "clicks") as url:
                audits, tool_key = await seed(url, cfg.users, cfg.audits_per_user, framework)
                with start_qabot(opts.workdir, url, f"qabot-clicks-{kind}") as bot:
                    results[f"QA bot, {kind}"] = run_phases(
                        opts, cfg, bot, kind, form=form, audits=audits, framework=framework,
                        tool_key=tool_key, connector_url=curl)
                checks[kind] = await persisted(url)
        checks["connector"] = {"replies accepted": connector.call({"cmd": "stats"})["deliveries"]}
    finally:
        connector.stop()
    return build_section(cfg, form, results, checks, skipped)


def _p99(report: dict[str, Any]) -> float:
    return float(report["latency_ms"]["p99"])


def build_section(cfg: Config, form: bool, results: dict[str, dict[str, Any]],
                  checks: dict[str, dict[str, int]], skipped: list[str]) -> Section:
    work = ("audit form: `audit.open` -> `audit.save_draft` -> `audit.submit` "
            "(Action.Execute, answered inline with a card)" if form
            else "`help` text messages (the audit form verbs were not registered)")
    echo = results.get("echo bot", {})
    lines: list[str] = [
        f"Workload: {work}; {cfg.users} auditors. The echo bot answers the same activities "
        "(messages with one `send_activity`, invokes with an inline card).",
        "",
        f"**Saturation (closed loop, {cfg.users} users, no think time, {cfg.closed_s:.0f} s)**",
        "",
        md_table(["bot", "throughput", "p50", "p95", "p99", "errors", "bot CPU per click",
                  "machine busy"], [
            [name, f"{r['closed']['throughput']:.1f}/s", ms(r["closed"]["latency_ms"]["p50"]),
             ms(r["closed"]["latency_ms"]["p95"]), ms(_p99(r["closed"])), r["closed"]["errors"],
             ms(r["closed"]["bot_cpu_ms_per_click"]), f"{r['closed']['machine_busy']:.0%}"]
            for name, r in results.items()
        ]),
        "",
        "**Latency at offered rates (open loop, Poisson arrivals, latency from the scheduled "
        f"send time, {cfg.open_s:.0f} s each)**",
        "",
    ]
    rows = []
    phases = [f"open{r:g}" for r in cfg.open_rates] + (["help"] if "help" in echo else [])
    for phase in phases:
        for name, r in results.items():
            rep = r[phase]
            ratio = (_p99(rep) / _p99(echo[phase])) if echo.get(phase) and _p99(echo[phase]) else None
            what = f"{rep['offered_rate']:g}/s" + (" help" if phase == "help" else "")
            rows.append([what, name, f"{rep['throughput']:.1f}/s", ms(rep["latency_ms"]["p50"]),
                         ms(rep["latency_ms"]["p95"]), ms(_p99(rep)), ms(rep["latency_ms"]["max"]),
                         rep["errors"], "-" if name == "echo bot" or ratio is None
                         else f"{ratio:.2f}x", ms(rep["bot_cpu_ms_per_click"]),
                         f"{rep['machine_busy']:.0%}"])
    lines.append(md_table(["offered", "bot", "achieved", "p50", "p95", "p99", "max", "errors",
                           "p99 / echo p99", "bot CPU per click", "machine busy"], rows))
    lines += ["", "_bot CPU per click_: the bot process's own user+system CPU time over the "
              "phase divided by the clicks answered (independent of what else runs); "
              "_machine busy_: all processes on both cores (the load generator, the fake "
              "connector, PostgreSQL, and anything else running on the machine at the time)."]
    if form:
        lines += ["", f"**By verb at {cfg.open_rates[-1]:g}/s**", ""]
        phase = f"open{cfg.open_rates[-1]:g}"
        verb_rows = []
        for name, r in results.items():
            for kind, s in r[phase]["by_kind"].items():
                verb_rows.append([name, f"`{kind}`", s["count"], ms(s["p50"]), ms(s["p95"]),
                                  ms(s["p99"])])
        lines.append(md_table(["bot", "click", "n", "p50", "p95", "p99"], verb_rows))
    lines += ["", "**Memory** (peak resident set, VmHWM from /proc, after all phases)", ""]
    lines.append(md_table(["bot", "VmHWM", "VmRSS at end"], [
        [name, f"{r['memory_kb'].get('VmHWM', 0) / 1024:.0f} MB",
         f"{r['memory_kb'].get('VmRSS', 0) / 1024:.0f} MB"] for name, r in results.items()]))
    if checks:
        lines += ["", "Effects checked after the run (the clicks did real work): " + "; ".join(
            f"{k}: " + ", ".join(f"{n} {v}" for n, v in c.items()) for k, c in checks.items())]
    form_phases = ["closed"] + [f"open{r:g}" for r in cfg.open_rates] if form else []
    wrapped = {name: sum(r[p].get("wrapped", 0) for p in form_phases if p in r)
               for name, r in results.items() if name != "echo bot"}
    if any(wrapped.values()):
        lines.append(f"Scripts restarted (clicks on already submitted audits): {wrapped}")
    if skipped:
        lines.append(f"Not run: {', '.join(skipped)}.")

    targets: list[Target] = []
    for name, r in results.items():
        if name == "echo bot":
            continue
        for rate in cfg.open_rates:
            rep = r[f"open{rate:g}"]
            targets.append(Target(f"click p99 at {rate:g}/s, {name}", f"< {P99_TARGET_MS:.0f} ms",
                                  ms(_p99(rep)) + (f", {rep['errors']} errors" if rep["errors"]
                                                   else ""),
                                  _p99(rep) < P99_TARGET_MS and rep["errors"] == 0))
            base = echo.get(f"open{rate:g}")
            if base and _p99(base):
                ratio = _p99(rep) / _p99(base)
                targets.append(Target(f"p99 vs echo bot at {rate:g}/s, {name}",
                                      f"<= {ECHO_RATIO_TARGET:g}x",
                                      f"{ratio:.2f}x ({ms(_p99(rep))} vs {ms(_p99(base))})",
                                      ratio <= ECHO_RATIO_TARGET))
        hwm = r["memory_kb"].get("VmHWM", 0) / 1024
        targets.append(Target(f"peak RSS, {name}", f"< {RSS_TARGET_MB:.0f} MB", f"{hwm:.0f} MB",
                              0 < hwm < RSS_TARGET_MB))
    figures = {name: {k: v for k, v in r.items()} for name, r in results.items()}
    return Section("clicks", "Click latency (issue item 1) and memory (item 3)",
                   "\n".join(lines), targets, {"results": figures, "checks": checks})
