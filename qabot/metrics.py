"""Prometheus metrics in the text exposition format (0.0.4), written by hand.

Kept dependency-free: a handful of counters and one histogram do not need
``prometheus_client``. Values are per process (per instance): Prometheus adds instances
up. Labels only ever carry bounded, non-personal values (job names, activity types,
statuses), never ids, names or case references.

The sender's delivery counters are read from ``OutboxSender.stats`` when scraped, so the
sender needs no metrics code of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.outbox import SenderStats
    from store.outbox import OutboxStatus

# Activity types Teams sends; anything else is counted as "other" to bound the labels.
ACTIVITY_TYPES = frozenset({
    "message", "invoke", "conversationUpdate", "installationUpdate", "messageReaction",
    "messageUpdate", "messageDelete", "event", "typing",
})
JOB_STATUSES = frozenset({"ok", "failed"})
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass
class Counter:
    """A monotonically increasing count, optionally split by labels."""

    name: str
    help: str
    label_names: tuple[str, ...] = ()
    values: dict[tuple[str, ...], float] = field(default_factory=dict)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if len(labels) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}")
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        samples = sorted(self.values.items()) or ([((), 0.0)] if not self.label_names else [])
        lines += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in samples]
        return lines


@dataclass
class Histogram:
    """Cumulative buckets, sum and count (no labels: one latency distribution)."""

    name: str
    help: str
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for bound, n in zip(self.buckets, self.counts, strict=True):
            lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {n}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {_number(self.total)}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


def _fixed(name: str, help_text: str, kind: str, value: float,
           labelled: Iterable[tuple[tuple[str, ...], tuple[str, ...], float]] = ()) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    rows = list(labelled)
    if rows:
        lines += [f"{name}{_labels(n, v)} {_number(x)}" for n, v, x in rows]
    else:
        lines.append(f"{name} {_number(value)}")
    return lines


class Metrics:
    """This process's counters; one per app, created by ``init_app``."""

    def __init__(self) -> None:
        self.activities = Counter("activities_total", "Activities from Teams processed, by type.",
                                  ("type",))
        self.activity_latency = Histogram(
            "activity_latency_seconds",
            "Time to process one POST /api/messages, replies included.")
        self.job_runs = Counter("job_runs_total", "Scheduled job runs, by job and outcome.",
                                ("job", "status"))
        #: How long the start-up warm-up took (qabot/warmup.py); None before it ran.
        self.warmup_seconds: float | None = None

    def record_activity(self, activity_type: str | None, seconds: float) -> None:
        kind = activity_type if activity_type in ACTIVITY_TYPES else "other"
        self.activities.inc(kind)
        self.activity_latency.observe(max(seconds, 0.0))

    def record_job_run(self, job: str, status: str) -> None:
        self.job_runs.inc(job, status if status in JOB_STATUSES else "failed")

    def render(self, sender: SenderStats | None = None,
               outbox: OutboxStatus | None = None) -> str:
        """The exposition text; ``sender`` and ``outbox`` are read at scrape time."""
        lines: list[str] = []
        lines += _fixed("messages_sent_total", "Proactive messages delivered by this instance.",
                        "counter", sender.sent if sender else 0)
        lines += _fixed("messages_failed_total",
                        "Proactive messages this instance gave up on (see qabot outbox status).",
                        "counter", sender.failed if sender else 0)
        lines += _fixed("messages_throttled_total", "HTTP 429 answers from the Bot Connector.",
                        "counter", sender.throttled if sender else 0)
        lines += _fixed("messages_retried_total", "Deliveries put back for a later retry.",
                        "counter", sender.retried if sender else 0)
        if self.warmup_seconds is not None:
            lines += _fixed("warmup_seconds", "Start-up warm-up time (imports, SDK, cards, "
                            "connection pool, one turn).", "gauge", self.warmup_seconds)
        lines += _fixed("outbox_sender_leader",
                        "1 while this instance is the tenant's one outbox sender, 0 on standby.",
                        "gauge", 1 if sender and sender.leader else 0)
        lines += _fixed("outbox_takeovers_total",
                        "Times this instance became the outbox sender.",
                        "counter", sender.takeovers if sender else 0)
        lines += _fixed("outbox_taken_over_in_flight_total",
                        "Messages in flight when the previous sender stopped (each may have "
                        "arrived twice).",
                        "counter", sender.taken_over_in_flight if sender else 0)
        lines += self.activities.render()
        lines += self.activity_latency.render()
        lines += self.job_runs.render()
        if outbox is not None:
            states = (("pending", outbox.pending), ("sending", outbox.sending),
                      ("sent", outbox.sent), ("failed", outbox.failed), ("held", outbox.held))
            lines += _fixed("outbox_messages", "Outbox rows by status (whole database).", "gauge",
                            0, [(("status",), (s,), n) for s, n in states])
        return "\n".join(lines) + "\n"
