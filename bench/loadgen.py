"""A load generator for ``/api/messages``: its own process, loopback only, bounded.

Posts realistic Teams activities (built by tests/fakes/activities.py, the same factories
the tests use) as the users named in a spec file, in one of two modes:

* ``closed``: N users, each sends its next click as soon as the previous one is answered
  (no think time). Measures saturation throughput; latency is mostly queueing.
* ``open``: clicks arrive at a fixed offered rate (Poisson arrivals, seeded) whatever the
  service does, users taking turns. Latency is measured from each click's *scheduled*
  time, so a service that falls behind is charged for it (no coordinated omission).

The spec (JSON) gives ``service_url`` (the fake connector, where replies go), ``users``
(``id``, ``aad``, ``name``) and per-user ``scripts``: the clicks each user makes, in
order, each ``{"kind": "help"}`` or ``{"kind": "<verb>", "data": {...}}``. A user who runs
out of script starts it again (counted as ``wrapped``). Prints one JSON report on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter, defaultdict
from typing import Any

import aiohttp

from bench.harness import percentile
from tests.fakes.activities import User, card_action, message


class Workload:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.service_url: str = spec["service_url"]
        self.users = [User(id=u["id"], aad_object_id=u["aad"], name=u["name"],
                           email=u.get("email", "")) for u in spec["users"]]
        self.scripts: list[list[dict[str, Any]]] = spec["scripts"]
        self.position = [0] * len(self.users)
        self.wrapped = 0

    def next_click(self, user_index: int) -> tuple[str, dict[str, Any]]:
        script = self.scripts[user_index]
        pos = self.position[user_index]
        if pos >= len(script):
            self.wrapped += 1
            pos = 0
        self.position[user_index] = pos + 1
        click = script[pos]
        user = self.users[user_index]
        kind = click["kind"]
        if kind == "help":
            return kind, message(click.get("text", "help"), user=user,
                                 service_url=self.service_url)
        return kind, card_action(kind, click.get("data") or {}, user=user,
                                 service_url=self.service_url)


class Recorder:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.samples: list[tuple[float, str, float]] = []
        self.sent = 0
        self.first_start: float | None = None
        self.last_end: float | None = None

    def ok(self, kind: str, seconds: float, end: float) -> None:
        self.latencies[kind].append(seconds * 1000)
        self.samples.append((end - seconds, kind, seconds * 1000))
        self.last_end = end

    def fail(self, kind: str, reason: str, end: float) -> None:
        self.errors[f"{kind}: {reason}"] += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{kind}: {reason}")
        self.last_end = end


async def post(session: aiohttp.ClientSession, url: str, kind: str, activity: dict[str, Any],
               started: float, rec: Recorder) -> None:
    rec.sent += 1
    try:
        async with session.post(url, json=activity) as resp:
            body = await resp.read()
            end = time.perf_counter()
            if resp.status not in (200, 201, 202):
                rec.fail(kind, f"HTTP {resp.status} {body[:120]!r}", end)
                return
            if kind != "help":
                # An Action.Execute must be answered inline with a card (or at least 200).
                data = json.loads(body) if body else {}
                if resp.status != 200 or not isinstance(data, dict):
                    rec.fail(kind, f"bad invoke response {body[:120]!r}", end)
                    return
            rec.ok(kind, end - started, end)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        rec.fail(kind, type(exc).__name__, time.perf_counter())


async def closed_loop(url: str, work: Workload, users: int, duration: float,
                      rec: Recorder) -> None:
    users = min(users, len(work.users))
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=users)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.perf_counter()
        rec.first_start = start
        deadline = start + duration

        async def user_loop(i: int) -> None:
            while time.perf_counter() < deadline:
                kind, activity = work.next_click(i)
                await post(session, url, kind, activity, time.perf_counter(), rec)

        await asyncio.gather(*(user_loop(i) for i in range(users)))


async def open_loop(url: str, work: Workload, rate: float, duration: float, seed: int,
                    rec: Recorder) -> float:
    """Returns the worst lag between a click's scheduled and actual send time (ms)."""
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0)
    tasks: list[asyncio.Task[None]] = []
    worst_lag = 0.0
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.perf_counter() + 0.05
        rec.first_start = start
        at = start
        n = 0
        while True:
            at += rng.expovariate(rate)
            if at - start >= duration:
                break
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            worst_lag = max(worst_lag, time.perf_counter() - at)
            kind, activity = work.next_click(n % len(work.users))
            n += 1
            tasks.append(asyncio.create_task(post(session, url, kind, activity, at, rec)))
        if tasks:
            await asyncio.wait(tasks, timeout=40)
    return worst_lag * 1000


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": values[-1] if values else 0.0,
        "mean": sum(values) / len(values) if values else 0.0,
    }


async def main_async(args: argparse.Namespace, work: Workload,
                     rec: Recorder) -> dict[str, Any]:
    lag = 0.0
    if args.mode == "closed":
        await closed_loop(args.url, work, args.users, args.duration, rec)
    else:
        lag = await open_loop(args.url, work, args.rate, args.duration, args.seed, rec)
    everything = [v for values in rec.latencies.values() for v in values]
    ok = len(everything)
    elapsed = ((rec.last_end or 0) - (rec.first_start or 0)) if rec.first_start else 0.0
    if args.mode == "open":
        elapsed = max(elapsed, args.duration)
    return {
        "mode": args.mode,
        "users": args.users if args.mode == "closed" else len(work.users),
        "offered_rate": args.rate if args.mode == "open" else None,
        "duration_s": args.duration,
        "elapsed_s": elapsed,
        "sent": rec.sent,
        "ok": ok,
        "errors": sum(rec.errors.values()),
        "error_samples": rec.error_samples,
        "throughput": ok / elapsed if elapsed > 0 else 0.0,
        "latency_ms": summary(everything),
        "by_kind": {kind: summary(values) for kind, values in sorted(rec.latencies.items())},
        "clicks_by_kind": dict(Counter(k for k, v in rec.latencies.items() for _ in v)),
        "consumed": work.position,
        "wrapped": work.wrapped,
        "worst_schedule_lag_ms": lag,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--mode", choices=("closed", "open"), required=True)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", default="", help="write every latency to this CSV")
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://127.", "http://localhost")):
        parser.error("load goes to loopback only")
    if args.duration > 600 or args.users > 1000 or args.rate > 2000:
        parser.error("bounded: at most 600 s, 1,000 users, 2,000 clicks/s")
    with open(args.spec) as f:
        work = Workload(json.load(f))
    rec = Recorder()
    report = asyncio.run(main_async(args, work, rec))
    if args.samples:
        with open(args.samples, "w") as f:
            f.write("start_s,kind,latency_ms\n")
            for at, kind, latency in sorted(rec.samples):
                f.write(f"{at - (rec.first_start or 0):.4f},{kind},{latency:.2f}\n")
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
