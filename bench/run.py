"""``make bench``: run every benchmark and write bench/RESULTS.md from their sections.

Each benchmark is a module with ``async def run(opts: BenchOptions) -> Section`` (or a plain
``def run``); see bench/harness.py for ``Section``/``Target``/``BenchOptions``. To add one,
append its module name to ``BENCHMARKS``. Optional modules (``bench.bench_reports``, owned
by the reports work) are run when they exist and reported as "not delivered yet" otherwise.

    python -m bench.run                       # everything, SQLite and PostgreSQL
    python -m bench.run --only clicks         # one benchmark (module suffix)
    python -m bench.run --databases sqlite    # skip PostgreSQL
    python -m bench.run --tiny --out /tmp/R.md   # a few requests each: harness check only

Environment: BENCH_PG_ADMIN (PostgreSQL admin DSN, default postgres@127.0.0.1:5432),
BENCH_PROFILE=py-spy (record the bot process with py-spy into the work directory).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import BenchOptions, Section, Target, machine_info, md_table

#: (module, required). Required modules must exist; the others are hooks for colleagues.
BENCHMARKS: list[tuple[str, bool]] = [
    ("bench.bench_clicks", True),
    ("bench.bench_fanout", True),
    ("bench.bench_nudges", True),
    ("bench.bench_failover", True),
    # Item 3, "reports at scale": bench/bench_reports.py exposes run(opts) -> Section.
    ("bench.bench_reports", False),
]

HERE = Path(__file__).resolve().parent


async def run_one(module_name: str, required: bool, opts: BenchOptions) -> Section:
    short = module_name.rsplit(".", 1)[-1]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if not required and err.name == module_name:
            return Section(short, f"{short}: not delivered yet",
                           f"`{module_name}` does not exist yet; its section appears here "
                           "once it provides `run(opts) -> Section`.")
        raise
    started = time.monotonic()
    try:
        result = module.run(opts)
        section = await result if inspect.isawaitable(result) else result
    except Exception:
        opts.say(traceback.format_exc())
        return Section(short, f"{short}: FAILED",
                       "The benchmark raised:\n\n```\n" + traceback.format_exc() + "```",
                       [Target(short, "runs", "raised an exception", False)])
    section.figures.setdefault("wall_s", round(time.monotonic() - started, 1))
    return section


def render(sections: list[Section], machine: dict[str, str], started: datetime,
           wall: float, args: argparse.Namespace) -> str:
    out = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench.run`); do not edit by hand.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; whole run {wall / 60:.1f} min"
        + (" (**tiny configuration: figures are meaningless**)" if args.tiny else ""),
        f"- Machine: {machine['cores']} cores, {machine['cpu']}, Linux {machine['kernel']}",
        f"- Python {machine['python']}; SQLite {machine['sqlite']}; PostgreSQL "
        f"{machine['postgresql']}; botbuilder {machine['botbuilder']}, aiohttp "
        f"{machine['aiohttp']}, SQLAlchemy {machine['sqlalchemy']}",
        "- Everything on loopback on this one machine: the load generator, the bot, the fake "
        "Bot Connector and the database share the cores.",
        "- Reproduce: `make bench` (see bench/README.md).",
        "",
        "## Targets",
        "",
        md_table(["target", "goal", "measured", "met"], [
            [t.name, t.goal, t.measured, "n/a" if t.met is None else "yes" if t.met else "**NO**"]
            for s in sections for t in s.targets]),
        "",
    ]
    for s in sections:
        out += [f"## {s.title}", "", s.body.rstrip(), ""]
        if "wall_s" in s.figures:
            out += [f"_(took {s.figures['wall_s']:.0f} s)_", ""]
    notes = HERE / "NOTES.md"
    if notes.exists():
        out += [notes.read_text().rstrip(), ""]
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    t0 = time.monotonic()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="qabot-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before any load runs
    opts = BenchOptions(workdir=workdir, tiny=args.tiny,
                        databases=tuple(d for d in args.databases.split(",") if d))
    opts.say(f"work directory (logs, specs, databases): {workdir}")
    machine = await machine_info()
    sections: list[Section] = []
    for module_name, required in BENCHMARKS:
        if args.only and not module_name.endswith(args.only):
            continue
        opts.say(f"== {module_name}")
        sections.append(await run_one(module_name, required, opts))
    wall = time.monotonic() - t0
    text = render(sections, machine, started, wall, args)
    out = Path(args.out)
    out.write_text(text)  # noqa: ASYNC240 - after every load has run
    (workdir / "figures.json").write_text(json.dumps(
        {s.key: s.figures for s in sections}, indent=1, default=str))
    opts.say(f"wrote {out} ({wall / 60:.1f} min); raw figures in {workdir / 'figures.json'}")
    failed = [t for s in sections for t in s.targets if t.met is False]
    for t in failed:
        opts.say(f"target missed: {t.name}: {t.measured} (goal {t.goal})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks; write bench/RESULTS.md.")
    parser.add_argument("--only", default="", help="run only the module ending with this")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--tiny", action="store_true", help="a few requests each (smoke)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--workdir", default="")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    # Re-enter through the package name so every module sees one bench.run / bench.harness.
    from bench.run import main as _main

    sys.exit(_main())
