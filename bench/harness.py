"""Shared pieces of the benchmarks: result sections, throw-away databases, child processes.

Every benchmark module exposes ``run(opts: BenchOptions) -> Section``; ``bench/run.py``
calls them in turn and assembles ``bench/RESULTS.md`` from the sections. Nothing here
times anything: it only starts, seeds and stops what the benchmarks measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

#: Where PostgreSQL is (trust auth on loopback); each benchmark creates and drops its own
#: database there, never touching the ``test`` database other people's test runs use.
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


# ---------------------------------------------------------------------------- results


@dataclass
class Target:
    """One target of the issue: what was asked, what was measured, met or not."""

    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run (say why in ``measured``)


@dataclass
class Section:
    """One benchmark's part of RESULTS.md: markdown body, targets and raw figures."""

    key: str
    title: str
    body: str
    targets: list[Target] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchOptions:
    """What every benchmark's ``run`` receives.

    ``tiny`` asks for a few requests only (tests/test_bench_smoke.py): the harness must
    work end to end and produce figures, but the figures mean nothing.
    """

    workdir: Path
    tiny: bool = False
    databases: tuple[str, ...] = ("sqlite", "postgresql")
    log: TextIO | None = None

    def say(self, text: str) -> None:
        out = self.log if self.log is not None else sys.stderr
        out.write(text + "\n")
        out.flush()


# ---------------------------------------------------------------------------- figures


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- machine


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


async def postgres_version() -> str | None:
    try:
        import asyncpg

        conn = await asyncio.wait_for(asyncpg.connect(PG_ADMIN_DSN), 5)
    except Exception:
        return None
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def machine_info() -> dict[str, str]:
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": await postgres_version() or "unreachable",
        "botbuilder": _version("botbuilder-core"),
        "aiohttp": _version("aiohttp"),
        "sqlalchemy": _version("SQLAlchemy"),
    }


async def postgres_available() -> bool:
    return await postgres_version() is not None


async def usable_databases(requested: tuple[str, ...] | list[str]) -> tuple[list[str], list[str]]:
    """The requested databases this machine can run, and the skipped ones with why."""
    databases = list(requested)
    skipped: list[str] = []
    if "postgresql" in databases and not await postgres_available():
        databases.remove("postgresql")
        skipped.append("postgresql (unreachable)")
    return databases, skipped


# ---------------------------------------------------------------------------- databases


@contextlib.asynccontextmanager
async def database(kind: str, workdir: Path, name: str) -> AsyncIterator[str]:
    """A freshly migrated, empty database for one benchmark, dropped afterwards."""
    from store.db import upgrade

    if kind == "sqlite":
        path = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 - set-up only
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(upgrade, url)
        yield url
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database kind {kind!r}")
    import asyncpg

    dbname = f"qabot_bench_{name}_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        await admin.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await admin.close()
    host = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    url = f"postgresql+asyncpg://{host}/{dbname}"
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        finally:
            await admin.close()


# ---------------------------------------------------------------------------- processes


class ChildProcess:
    """A benchmark participant in its own process: prints one JSON line when ready.

    Its stderr goes to a log file in the work directory; closing its stdin (or SIGTERM)
    stops it. Only processes started here are ever signalled, by their own pid.
    """

    def __init__(self, name: str, args: Sequence[str], workdir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        child_env = dict(os.environ)
        child_env["PYTHONPATH"] = str(ROOT) + os.pathsep + child_env.get("PYTHONPATH", "")
        child_env.update(env or {})
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*args], cwd=ROOT, env=child_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, text=True, bufsize=1,
        )
        self.ready: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no answer within {timeout}s "
                                   f"(see {self.log_path})")
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{self.name} exited (code {self.proc.poll()}); "
                                       f"see {self.log_path}:\n{self.tail()}")
                return line

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:  # a wrapping profiler may print its own lines first
            line = self.readline(max(0.1, deadline - time.monotonic()))
            if line.startswith("{"):
                self.ready = json.loads(line)
                return self.ready

    def call(self, command: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """One JSON command on stdin, one JSON answer on stdout."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.readline(timeout))

    def status(self) -> dict[str, int]:
        """VmHWM (peak resident set) and VmRSS in kB, from /proc."""
        out: dict[str, int] = {}
        pid = int(self.ready.get("pid") or self.pid)
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(value.split()[0])
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (from /proc/PID/stat)."""
        pid = int(self.ready.get("pid") or self.pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, BrokenPipeError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)  # stdin closed: it stops by itself (a profiler then saves)
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _started(proc: ChildProcess) -> ChildProcess:
    """Wait for the child's ready line; never leave it running if it does not come."""
    try:
        proc.wait_ready()
    except BaseException:
        proc.stop()
        raise
    return proc


def start_connector(workdir: Path, name: str = "connector") -> ChildProcess:
    """The fake Bot Connector in its own process (bench/connector_proc.py)."""
    return _started(ChildProcess(name, [PYTHON, "-m", "bench.connector_proc"], workdir))


def start_qabot(workdir: Path, database_url: str, name: str = "qabot",
                env: dict[str, str] | None = None) -> ChildProcess:
    """The real service (init_app behind an aiohttp runner) as ``qabot serve`` runs it."""
    child_env = {
        "DATABASE_URL": database_url,
        "QABOT_SCHEDULER": "off",
        "QABOT_LOG_FORMAT": "json",
        "QABOT_LOG_LEVEL": "WARNING",
        "HOST": "127.0.0.1",
    }
    child_env.update(env or {})
    args = [PYTHON, "-m", "bench.qabot_proc"]
    profiler = os.environ.get("BENCH_PROFILE", "")
    if profiler == "py-spy":
        # Collapsed stacks: open in speedscope.app or feed to flamegraph.pl.
        args = [str(Path(PYTHON).with_name("py-spy")), "record", "--rate", "250", "--format",
                "raw", "-o", str(workdir / f"{name}.folded"), "--", *args]
    return _started(ChildProcess(name, args, workdir, child_env))


def start_echo(workdir: Path, name: str = "echo") -> ChildProcess:
    return _started(ChildProcess(name, [PYTHON, "-m", "bench.echo_bot"], workdir))


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / hz, sum(fields) / hz


def run_loadgen(workdir: Path, *, spec_path: Path, url: str, mode: str, users: int = 0,
                rate: float = 0.0, duration: float, seed: int = 1, name: str = "loadgen",
                timeout: float | None = None) -> dict[str, Any]:
    """Run bench/loadgen.py to completion in its own process; returns its JSON report."""
    args = [PYTHON, "-m", "bench.loadgen", "--url", url, "--spec", str(spec_path),
            "--mode", mode, "--duration", str(duration), "--seed", str(seed),
            "--samples", str(workdir / f"{name}.csv")]
    if mode == "closed":
        args += ["--users", str(users)]
    else:
        args += ["--rate", str(rate)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with (workdir / f"{name}.log").open("w") as err:
        done = subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err,
                              text=True, timeout=timeout or duration + 90, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed ({done.returncode}); see {workdir / (name + '.log')}")
    return json.loads(done.stdout)
