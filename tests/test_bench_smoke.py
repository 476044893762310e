"""Keeps the benchmark harness from rotting: each benchmark runs in a tiny configuration.

Only that it runs end to end and produces figures is asserted, never how fast: timings
on a shared CI machine mean nothing, and `make bench` is where they are measured.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import bench_clicks, bench_failover, bench_fanout, bench_nudges
from bench.harness import BenchOptions, Section
from bench.run import render


@pytest.fixture
def opts(tmp_path: Path) -> BenchOptions:
    return BenchOptions(workdir=tmp_path, tiny=True, databases=("sqlite",))


async def test_clicks_benchmark_produces_figures(opts: BenchOptions) -> None:
    section = await bench_clicks.run(opts)
    results = section.figures["results"]
    assert set(results) == {"echo bot", "QA bot, sqlite"}
    for report in results.values():
        assert report["closed"]["ok"] > 0 and report["closed"]["errors"] == 0
        assert report["memory_kb"]["VmHWM"] > 0
    assert any(t.name.startswith("click p99") for t in section.targets)


async def test_fanout_benchmark_delivers_everything_once(opts: BenchOptions) -> None:
    section = await bench_fanout.run(opts)
    [result] = section.figures["results"]
    assert result["outbox"]["sent"] == result["auditors"]
    assert result["connector"]["duplicates"] == 0
    assert result["elapsed_s"] > 0


async def test_nudges_benchmark_delivers_one_card_a_person_and_replays_nothing(
        opts: BenchOptions) -> None:
    section = await bench_nudges.run(opts)
    [result] = section.figures["results"]
    assert result["messages"] > 0 and result["outbox"]["sent"] == result["messages"]
    assert result["max_per_person"] == 1 and result["connector"]["duplicates"] == 0
    assert result["replay_new"] == 0


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"),
                    reason="needs PostgreSQL (two instances are a PostgreSQL deployment)")
async def test_failover_benchmark_delivers_everything_and_counts_what_came_twice(
        tmp_path: Path) -> None:
    opts = BenchOptions(workdir=tmp_path, tiny=True, databases=("postgresql",))
    section = await bench_failover.run(opts)
    [result] = section.figures["results"]
    assert result["outbox"]["sent"] == result["auditors"]
    assert result["connector"]["duplicates"] <= result["in_flight_taken_over"]
    assert result["standby_sent_before_kill"] == 0
    assert result["takeover_s"] is not None and result["elapsed_s"] > 0


def test_results_are_assembled_from_sections(opts: BenchOptions) -> None:
    import argparse
    from datetime import UTC, datetime

    section = Section("x", "X", "body", [], {})
    machine = {k: "?" for k in ("cores", "cpu", "kernel", "python", "sqlite", "postgresql",
                                "botbuilder", "aiohttp", "sqlalchemy")}
    text = render([section], machine, datetime.now(UTC), 1.0, argparse.Namespace(tiny=True))
    assert "## X" in text and "## Targets" in text
