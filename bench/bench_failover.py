"""Fail-over: two service instances on one PostgreSQL, the sender killed -9 mid fan-out.

Issue 11's "done when": against the fake Bot Connector (own process, Teams' limits, 10%
429 and 2% 503), two real service processes (bench/qabot_proc.py) share one PostgreSQL
database; the benchmark queues one card per auditor (as the allocation job, another
process, would), finds the instance that is the tenant's sender (``outbox_sender_leader``
on /metrics), and kills it with SIGKILL when half the messages are delivered. Measured:

* every message delivered, and how many twice (the at-least-once window: only messages
  whose call to Teams was in flight when the sender died may arrive twice; the survivor
  counts them in ``outbox_taken_over_in_flight_total``);
* the take-over time (kill to the survivor's first delivery);
* the total against the rate floor: ``elapsed <= 1.2 x auditors / rate + take-over``;
* the tenant rate across both instances (most accepted calls in any 1 s and 5 s).

SQLite is not run: two instances are a PostgreSQL deployment (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench.bench_fanout import Scenario, outbox_counts, queue_all, seed, watch
from bench.harness import (
    BenchOptions,
    Section,
    Target,
    database,
    md_table,
    start_connector,
    start_qabot,
    usable_databases,
)

RATIO_TARGET = 1.2
TOKEN = "bench-failover"


@dataclass(frozen=True)
class Config:
    auditors: int = 1000
    tenant_rate: float = 25.0
    faults: tuple[tuple[int, float], ...] = ((429, 0.10), (503, 0.02))
    retry_after: float = 1.0
    seed: int = 11
    kill_at: float = 0.5

    @classmethod
    def tiny(cls) -> Config:
        return cls(auditors=40, tenant_rate=40.0, retry_after=0.0)


def _metrics(port: int) -> dict[str, float]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            out[name] = float(value)
    return out


async def _sent(url: str) -> int:
    return (await outbox_counts(url))["sent"]


async def one(opts: BenchOptions, cfg: Config, connector: Any) -> dict[str, Any]:
    curl = connector.ready["url"]
    connector.call({"cmd": "clear"})
    connector.call({"cmd": "reset"})
    async with database("postgresql", opts.workdir, "failover") as url:
        names = await seed(url, curl, Scenario("all-known", cfg.auditors, 1.0))
        env = {"QABOT_TENANT_RATE": f"{cfg.tenant_rate:g}", "QABOT_METRICS_TOKEN": TOKEN}
        a = start_qabot(opts.workdir, url, "qabot-failover-a", env)
        b = start_qabot(opts.workdir, url, "qabot-failover-b", env)
        try:
            connector.call({"cmd": "configure", "per_conversation": True,
                            "tenant_per_second": cfg.tenant_rate,
                            "faults": {str(k): v for k, v in cfg.faults},
                            "seed": cfg.seed, "retry_after": cfg.retry_after})
            t0 = time.monotonic()
            await queue_all(url, names)
            while await _sent(url) < cfg.auditors * cfg.kill_at:
                if time.monotonic() - t0 > 10 * cfg.auditors / cfg.tenant_rate + 60:
                    raise TimeoutError("the fan-out did not reach the kill point")
                await asyncio.sleep(0.05)
            leaders = [p for p in (a, b) if _metrics(p.ready["port"])["outbox_sender_leader"]]
            if len(leaders) != 1:
                raise AssertionError(f"{len(leaders)} instances were sending")
            leader = leaders[0]
            survivor = b if leader is a else a
            standby_sent_before = _metrics(survivor.ready["port"])["messages_sent_total"]
            killed_at = time.monotonic()
            os.kill(int(leader.ready.get("pid") or leader.pid), signal.SIGKILL)
            leader.proc.wait(10)
            minimum = cfg.auditors / cfg.tenant_rate
            counts = await watch(url, cfg.auditors, limit_s=max(60.0, 4 * minimum))
            survivor_metrics = _metrics(survivor.ready["port"])
        finally:
            a.stop()
            b.stop()
        stats = connector.call({"cmd": "stats"})
        times = connector.call({"cmd": "delivery_times"})["times"]
        connector.call({"cmd": "clear"})
    after = [t for t in times if t >= killed_at]
    before = [t for t in times if t < killed_at]
    takeover = (after[0] - killed_at) if after else None
    return {
        "auditors": cfg.auditors, "tenant_rate": cfg.tenant_rate, "minimum_s": minimum,
        "elapsed_s": (times[-1] - t0) if times else None,
        "takeover_s": takeover,
        "gap_s": (after[0] - before[-1]) if after and before else None,
        "delivered_before_kill": len(before),
        "standby_sent_before_kill": standby_sent_before,
        "in_flight_taken_over": survivor_metrics.get("outbox_taken_over_in_flight_total", 0),
        "outbox": counts, "connector": stats,
    }


async def run(opts: BenchOptions, cfg: Config | None = None) -> Section:
    cfg = cfg or (Config.tiny() if opts.tiny else Config())
    wanted = [d for d in opts.databases if d == "postgresql"]
    databases, skipped = await usable_databases(wanted)
    if not wanted:
        skipped.append("postgresql (not asked for)")
    results: list[dict[str, Any]] = []
    if databases:
        connector = start_connector(opts.workdir, "connector-failover")
        try:
            opts.say(f"failover: {cfg.auditors} auditors, two instances, kill -9 halfway")
            results.append(await one(opts, cfg, connector))
        finally:
            connector.stop()
    return build_section(cfg, results, skipped)


def build_section(cfg: Config, results: list[dict[str, Any]], skipped: list[str]) -> Section:
    faults = ", ".join(f"{int(p * 100)}% {s}" for s, p in cfg.faults)
    lines = [
        f"Two service instances on one PostgreSQL database, tenant rate {cfg.tenant_rate:g}/s "
        f"(QABOT_TENANT_RATE, the same on both) enforced by the fake with Teams' "
        f"per-conversation limits and {faults} (Retry-After {cfg.retry_after:g} s). "
        f"{cfg.auditors} cards queued from outside; the sending instance is killed with "
        f"SIGKILL when {int(cfg.kill_at * 100)}% are delivered. Timed from the queueing to "
        "the last delivery the fake accepted.",
        "",
    ]
    targets: list[Target] = []
    rows = []
    for r in results:
        c, o = r["connector"], r["outbox"]
        lost = r["auditors"] - o["sent"]
        duplicates = c["duplicates"]
        takeover = r["takeover_s"] or 0.0
        allowed = RATIO_TARGET * r["minimum_s"] + takeover
        elapsed = r["elapsed_s"] or float("inf")
        rows.append([r["auditors"], f"{elapsed:.1f} s", f"{r['minimum_s']:.1f} s",
                     f"{takeover:.2f} s", f"{allowed:.1f} s", o["sent"], lost, duplicates,
                     int(r["in_flight_taken_over"]), int(r["standby_sent_before_kill"]),
                     c["max_accepted_per_1s"], c["max_accepted_per_5s"],
                     c["limit_violations"]])
        targets += [
            Target("fail-over: delivered / lost", f"{r['auditors']} / 0",
                   f"{o['sent']} / {lost}", lost == 0),
            Target("fail-over: delivered twice", "<= in flight at the kill (counted)",
                   f"{duplicates} (in flight: {int(r['in_flight_taken_over'])})",
                   duplicates <= r["in_flight_taken_over"]),
            Target("fail-over: total time", f"<= {RATIO_TARGET}x n / rate + take-over",
                   f"{elapsed:.1f} s vs {allowed:.1f} s "
                   f"({RATIO_TARGET}x {r['minimum_s']:.1f} s + {takeover:.1f} s)",
                   elapsed <= allowed),
            Target("fail-over: take-over", "within seconds (< 5 s)", f"{takeover:.2f} s",
                   r["takeover_s"] is not None and takeover < 5.0),
            Target("fail-over: one sender before the kill", "standby sent 0",
                   f"{int(r['standby_sent_before_kill'])}", r["standby_sent_before_kill"] == 0),
            Target("fail-over: tenant rate across instances",
                   f"<= {5 * cfg.tenant_rate * 1.05:.0f} in any 5 s",
                   f"{c['max_accepted_per_5s']} (max in 1 s: {c['max_accepted_per_1s']})",
                   c["max_accepted_per_5s"] <= 5 * cfg.tenant_rate * 1.05),
        ]
    lines.append(md_table(
        ["auditors", "time to deliver all", "n / rate", "take-over", "allowed", "delivered",
         "lost", "twice", "in flight at kill", "standby sent before kill", "max calls in 1 s",
         "max calls in 5 s", "429 for limits"], rows))
    lines += ["", "Connector answers per operation:", ""]
    for r in results:
        lines.append("- " + ", ".join(f"{k}: {v}" for k, v in
                                      r["connector"]["by_operation"].items()))
    if skipped or not results:
        lines.append(f"\nNot run: {', '.join(skipped) or 'PostgreSQL unreachable'}.")
    return Section("failover", "Fail-over: two instances, kill -9 of the sender (issue 11)",
                   "\n".join(lines), targets, {"results": json.loads(json.dumps(results))})
