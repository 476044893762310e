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

All bots run at once. Per bot, one after the other: warm-up (one help and one audit per
user), closed loop with 50 users (saturation throughput). Then the open loops at 5 and 20
clicks/s (the latency a busy council would see: the 150 ms p99 target) and of help messages
at 20/s, in short slices with the bots taking turns (echo, QA on SQLite, QA on PostgreSQL,
echo, ...), so a busy spell on the machine lands on all of them alike. The ratio to the echo
bot is the median of the per-slice ratios; the bot's own CPU per click is beside it, as a
measure no other process can move.
"""

from __future__ import annotations

import contextlib
import json
import statistics
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
    percentile,
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
    slices: int = 6  # per bot and phase, the bots taking turns
    slice_s: float = 4.0
    help_rate: float = 20.0
    audits_per_user: int = 20

    @classmethod
    def tiny(cls) -> Config:
        return cls(users=3, warmup_s=0.5, closed_s=1.0, open_rates=(5.0, 20.0), slices=2,
                   slice_s=0.5, help_rate=10.0, audits_per_user=12)


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


class BotUnderTest:
    """One running bot and where each of its users is in their script of audits."""

    def __init__(self, opts: BenchOptions, cfg: Config, proc: ChildProcess, label: str, *,
                 form: bool, audits: dict[int, list[int]], framework: Any, tool_key: str,
                 connector_url: str) -> None:
        self.opts, self.cfg, self.proc, self.label = opts, cfg, proc, label
        self.form, self.audits, self.framework, self.tool_key = form, audits, framework, tool_key
        self.connector_url = connector_url
        self.url = f"http://127.0.0.1:{proc.ready['port']}/api/messages"
        self.users = bench_users(cfg.users)
        self.start = [0] * cfg.users
        self.slices: dict[str, list[dict[str, Any]]] = {}

    def spec(self, kind: str, count: int, tag: str) -> Path:
        scripts = scripts_for(kind, self.audits, self.cfg.users, self.start, count,
                              self.framework, self.tool_key)
        path = self.opts.workdir / f"spec-{self.label}-{tag}.json"
        path.write_text(json.dumps({
            "service_url": self.connector_url,
            "users": [{"id": u.id, "aad": u.aad_object_id, "name": u.name, "email": u.email}
                      for u in self.users],
            "scripts": scripts,
        }))
        return path

    def advance(self, report: dict[str, Any]) -> None:
        # Whole audits done per user (3 clicks each); a half-done one is skipped.
        if self.form:
            for i, clicks in enumerate(report["consumed"][: self.cfg.users]):
                self.start[i] += -(-clicks // 3)

    def measured(self, tag: str, **kwargs: Any) -> dict[str, Any]:
        """One loadgen run, with the bot's own CPU time and how busy the machine was."""
        cpu0, (busy0, total0) = self.proc.cpu_seconds(), machine_busy()
        report = run_loadgen(self.opts.workdir, url=self.url,
                             name=f"loadgen-{self.label}-{tag}", **kwargs)
        cpu1, (busy1, total1) = self.proc.cpu_seconds(), machine_busy()
        report["bot_cpu_s"] = cpu1 - cpu0
        report["bot_cpu_ms_per_click"] = (cpu1 - cpu0) * 1000 / max(1, report["ok"])
        report["machine_busy"] = (busy1 - busy0) / max(1e-9, total1 - total0)
        report["samples_csv"] = str(self.opts.workdir / f"loadgen-{self.label}-{tag}.csv")
        self.advance(report)
        return report

    @property
    def work(self) -> str:
        return "form" if self.form else "help"

    def per_phase(self) -> int:
        return max(2, (self.cfg.audits_per_user - 1) // (2 + len(self.cfg.open_rates)))

    def warm_up_and_saturate(self) -> dict[str, Any]:
        """Warm-up (every path once, as a service up a while is), then the closed loop."""
        cfg = self.cfg
        self.opts.say(f"  {self.label}: warm-up, then closed loop, {cfg.users} users, "
                      f"{cfg.closed_s:.0f} s ({self.work})")
        self.measured("warmup-help", spec_path=self.spec("help", 0, "warmup-help"),
                      mode="closed", users=cfg.users, duration=cfg.warmup_s / 2)
        if self.form:
            self.measured("warmup-form", spec_path=self.spec("form", 1, "warmup-form"),
                          mode="closed", users=cfg.users, duration=cfg.warmup_s)
        return self.measured("closed", spec_path=self.spec(self.work, self.per_phase() * 2,
                                                           "closed"),
                             mode="closed", users=cfg.users, duration=cfg.closed_s)

    def open_slice(self, phase: str, rate: float, n: int) -> dict[str, Any]:
        kind = "help" if phase == "help" else self.work
        count = 0 if kind == "help" else max(1, -(-self.per_phase() // self.cfg.slices))
        tag = f"{phase}-{n}"
        report = self.measured(tag, spec_path=self.spec(kind, count, tag), mode="open",
                               rate=rate, duration=self.cfg.slice_s, seed=1000 * n + int(rate))
        self.slices.setdefault(phase, []).append(report)
        return report


def pooled(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One phase's figures over all its slices: latencies pooled from the samples."""
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}
    for rep in reports:
        with open(rep["samples_csv"]) as f:
            next(f)
            for line in f:
                _, kind, latency = line.rstrip("\n").split(",")
                latencies.append(float(latency))
                by_kind.setdefault(kind, []).append(float(latency))
    latencies.sort()
    ok = sum(r["ok"] for r in reports)
    elapsed = sum(r["elapsed_s"] for r in reports)
    cpu = sum(r["bot_cpu_s"] for r in reports)

    def summary(values: list[float]) -> dict[str, float]:
        values = sorted(values)
        if not values:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "count": 0}
        return {"p50": percentile(values, 50), "p95": percentile(values, 95),
                "p99": percentile(values, 99), "max": values[-1], "count": len(values)}

    return {
        "offered_rate": reports[0]["offered_rate"],
        "slices": len(reports),
        "ok": ok,
        "errors": sum(r["errors"] for r in reports),
        "throughput": ok / elapsed if elapsed else 0.0,
        "latency_ms": summary(latencies),
        "slice_p99_ms": [r["latency_ms"]["p99"] for r in reports],
        "by_kind": {k: summary(v) for k, v in sorted(by_kind.items())},
        "bot_cpu_ms_per_click": cpu * 1000 / max(1, ok),
        "machine_busy": sum(r["machine_busy"] for r in reports) / len(reports),
        "wrapped": sum(r.get("wrapped", 0) for r in reports),
    }


def interleave(bots: list[BotUnderTest], cfg: Config, opts: BenchOptions) -> None:
    """Open loops in short slices, the bots taking turns (echo, QA, QA, echo, QA, QA ...).

    A busy spell on the machine then lands on every bot's slices alike, so the per-slice
    ratio to the echo bot holds whatever else runs (a re-run on a busy machine once gave
    4.9x where a quiet run gave 1.7x, with each bot's phase run one after the other).
    """
    phases = [(f"open{rate:g}", rate) for rate in cfg.open_rates]
    if any(b.form for b in bots):
        phases.append(("help", cfg.help_rate))
    for phase, rate in phases:
        opts.say(f"  open loop {phase}: {cfg.slices} slices of {cfg.slice_s:g} s per bot, "
                 "taking turns")
        for n in range(cfg.slices):
            for bot in bots:
                bot.open_slice(phase, rate, n)


def slice_ratios(qa: list[dict[str, Any]], echo: list[dict[str, Any]]) -> list[float]:
    """QA p99 over echo p99 for each pair of neighbouring slices."""
    return [q["latency_ms"]["p99"] / e["latency_ms"]["p99"]
            for q, e in zip(qa, echo, strict=True) if e["latency_ms"]["p99"] > 0]


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
        async with contextlib.AsyncExitStack() as stack:
            opts.say("clicks: starting the echo bot (bare botbuilder CloudAdapter) and the QA "
                     f"bot on {', '.join(databases) or 'no database'}")
            echo = stack.enter_context(start_echo(opts.workdir, "echo"))
            bots = [BotUnderTest(opts, cfg, echo, "echo", form=form, audits=fake_audits,
                                 framework=framework, tool_key=tool_key, connector_url=curl)]
            urls: dict[str, str] = {}
            for kind in databases:
                url = await stack.enter_async_context(database(kind, opts.workdir, "clicks"))
                audits, tool_key = await seed(url, cfg.users, cfg.audits_per_user, framework)
                proc = stack.enter_context(start_qabot(opts.workdir, url,
                                                       f"qabot-clicks-{kind}"))
                bots.append(BotUnderTest(opts, cfg, proc, kind, form=form, audits=audits,
                                         framework=framework, tool_key=tool_key,
                                         connector_url=curl))
                urls[kind] = url
            names = ["echo bot", *(f"QA bot, {k}" for k in databases)]
            closed = {name: bot.warm_up_and_saturate() for name, bot in zip(names, bots,
                                                                            strict=True)}
            interleave(bots, cfg, opts)
            for name, bot in zip(names, bots, strict=True):
                results[name] = {"closed": closed[name],
                                 **{phase: pooled(reps) for phase, reps in bot.slices.items()},
                                 "memory_kb": bot.proc.status()}
            echo_slices = bots[0].slices
            for name, bot in zip(names[1:], bots[1:], strict=True):
                for phase, reps in bot.slices.items():
                    results[name][phase]["slice_ratios"] = slice_ratios(reps, echo_slices[phase])
            for kind, url in urls.items():
                checks[kind] = await persisted(url)
        checks["connector"] = {"replies accepted": connector.call({"cmd": "stats"})["deliveries"]}
    finally:
        connector.stop()
    return build_section(cfg, form, results, checks, skipped)


def _median(values: list[float]) -> float:
    return statistics.median(values)


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
        f"send time; {cfg.slices} slices of {cfg.slice_s:g} s per bot, the bots taking turns; "
        "p50-max pooled over the slices)**",
        "",
    ]
    rows = []
    phases = [f"open{r:g}" for r in cfg.open_rates] + (["help"] if "help" in echo else [])
    for phase in phases:
        for name, r in results.items():
            rep = r[phase]
            ratios = rep.get("slice_ratios") or []
            what = f"{rep['offered_rate']:g}/s" + (" help" if phase == "help" else "")
            rows.append([what, name, f"{rep['throughput']:.1f}/s", ms(rep["latency_ms"]["p50"]),
                         ms(rep["latency_ms"]["p95"]), ms(_p99(rep)), ms(rep["latency_ms"]["max"]),
                         rep["errors"], "-" if not ratios else f"{_median(ratios):.2f}x",
                         "-" if not ratios else f"{min(ratios):.2f}-{max(ratios):.2f}x",
                         ms(rep["bot_cpu_ms_per_click"]), f"{rep['machine_busy']:.0%}"])
    lines.append(md_table(["offered", "bot", "achieved", "p50", "p95", "p99", "max", "errors",
                           "p99 / echo p99 (median of slices)", "slice range",
                           "bot CPU per click", "machine busy"], rows))
    lines += ["", "_p99 / echo p99_: for each slice, the QA bot's p99 over the p99 of the echo "
              "slice run just before it; the median of those ratios is the figure the target "
              "uses (tolerance: none beyond the median itself, so a single slice caught by a "
              "busy spell cannot move it). _bot CPU per click_: the bot process's own "
              "user+system CPU time over the phase divided by the clicks answered (independent "
              "of what else runs); _machine busy_: all processes on both cores (the load "
              "generator, the fake connector, PostgreSQL, and anything else running at the "
              "time)."]
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
            ratios = rep.get("slice_ratios") or []
            if ratios:
                ratio = _median(ratios)
                targets.append(Target(
                    f"p99 vs echo bot at {rate:g}/s, {name}",
                    f"<= {ECHO_RATIO_TARGET:g}x (median of {len(ratios)} slices)",
                    f"{ratio:.2f}x (slices {min(ratios):.2f}-{max(ratios):.2f}x; "
                    f"{ms(rep['bot_cpu_ms_per_click'])} bot CPU per click)",
                    ratio <= ECHO_RATIO_TARGET))
        hwm = r["memory_kb"].get("VmHWM", 0) / 1024
        targets.append(Target(f"peak RSS, {name}", f"< {RSS_TARGET_MB:.0f} MB", f"{hwm:.0f} MB",
                              0 < hwm < RSS_TARGET_MB))
    figures = {name: {k: v for k, v in r.items()} for name, r in results.items()}
    return Section("clicks", "Click latency (issue item 1) and memory (item 3)",
                   "\n".join(lines), targets, {"results": figures, "checks": checks})
