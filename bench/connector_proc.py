"""The fake Bot Connector (tests/fakes/connector.py) as its own process, for load runs.

Run in-process, the fake's thread would share the bot's (or the sender's) GIL and CPU
time, and its bookkeeping would show up as the bot's latency. Here it has its own
interpreter; the benchmark drives it over stdin/stdout with one JSON command per line:

    {"cmd": "configure", "tenant_per_second": 25, "per_conversation": true,
     "faults": {"429": 0.10, "503": 0.02}, "seed": 7, "retry_after": 1.0}
    {"cmd": "reset"}          forget what was recorded (faults and limits kept)
    {"cmd": "clear"}          drop faults and limits
    {"cmd": "stats"}          counts: deliveries, duplicates, statuses, violations, timings
    {"cmd": "delivery_times"} every accepted delivery's time (time.monotonic(), sorted)

Prints ``{"ready": true, "url": ..., "pid": ...}`` once listening on 127.0.0.1; exits
when stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Any

from tests.fakes.connector import TEAMS_CONVERSATION_LIMITS, FakeConnector, max_in_window


def stats(fc: FakeConnector) -> dict[str, Any]:
    deliveries = fc.deliveries
    requests = fc.requests
    accepted = [r.at for r in requests if 200 <= r.status < 300]
    by_operation: Counter[str] = Counter()
    for r in requests:
        by_operation[f"{r.operation} {r.status}" + (f" ({r.fault})" if r.fault else "")] += 1
    per_conv: dict[str, list[float]] = {}
    for d in deliveries:
        per_conv.setdefault(d.conversation_id, []).append(d.at)
    return {
        "requests": len(requests),
        "deliveries": len(deliveries),
        "conversations": len(per_conv),
        "duplicates": len(fc.duplicates()),
        "created": sum(1 for r in requests if r.operation == "create_conversation"
                       and 200 <= r.status < 300),
        "limit_violations": fc.limit_violations,
        "statuses": {str(k): v for k, v in sorted(fc.statuses().items())},
        "by_operation": dict(sorted(by_operation.items())),
        "first_delivery_at": min((d.at for d in deliveries), default=None),
        "last_delivery_at": max((d.at for d in deliveries), default=None),
        "max_accepted_per_1s": max_in_window(accepted, 1.0),
        "max_accepted_per_5s": max_in_window(accepted, 5.0),
        "max_per_conversation_per_1s": max(
            (max_in_window(v, 1.0) for v in per_conv.values()), default=0),
    }


def handle(fc: FakeConnector, command: dict[str, Any]) -> dict[str, Any]:
    cmd = command.get("cmd")
    if cmd == "configure":
        fc.clear_faults()
        if command.get("per_conversation") or command.get("tenant_per_second"):
            fc.enforce_limits(
                per_conversation=TEAMS_CONVERSATION_LIMITS if command.get("per_conversation")
                else (),
                tenant_per_second=command.get("tenant_per_second"),
            )
        faults = command.get("faults") or {}
        if faults:
            fc.fail_randomly({int(k): float(v) for k, v in faults.items()},
                             seed=int(command.get("seed", 1)),
                             retry_after=command.get("retry_after", 1.0))
        return {"ok": True}
    if cmd == "reset":
        fc.reset()
        return {"ok": True}
    if cmd == "clear":
        fc.clear_faults()
        return {"ok": True}
    if cmd == "stats":
        return stats(fc)
    if cmd == "delivery_times":
        return {"times": sorted(d.at for d in fc.deliveries)}
    return {"error": f"unknown command {cmd!r}"}


def main() -> int:
    fc = FakeConnector().start()
    sys.stdout.write(json.dumps({"ready": True, "url": fc.url, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                answer = handle(fc, json.loads(line))
            except Exception as exc:  # report, keep serving
                answer = {"error": repr(exc)}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        fc.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
