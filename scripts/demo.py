"""``make demo``: a sample council in the Microsoft 365 Agents Playground, in a minute.

No Azure account and no network: on a fresh database (a new folder each run), it imports
the sample council (demo/staff.csv, demo/cases.csv), allocates the current month, starts
the bot in local mode and the Agents Playground pointed at it, and prints the page to
open. The person at the keyboard is Sam Rivers, the sample council's lead auditor (and an
auditor too): opening the page links them to their staff record, and the allocation card
and the QA summary that were held for them arrive. Ctrl-C stops both.

Needs Node.js and the pinned Playground, which ``make e2e-deps`` installs once from the npm
registry (tests/e2e/node_modules); after that everything runs offline.

Options are for tests and for a port that is taken: ``--port``, ``--ui-port``, ``--data-dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import demo_council  # noqa: E402  (the sample council's people, for the mock tenant)

DEMO_DIR = ROOT / "demo"
FRAMEWORK = ROOT / "qa" / "frameworks" / "bedford_like.toml"
PLAYGROUND = ROOT / "tests" / "e2e" / "node_modules" / "@microsoft" / "m365agentsplayground"
PLAYGROUND_CLI = PLAYGROUND / "cli.js"
BOT_NAME = "Case Audit QA"
TENANT_ID = "00000000-0000-0000-0000-0000000000c1"
BOT_ID = "00000000-0000-0000-0000-0000000000b1"
_LISTENING = re.compile(r"Listening on (\d+)")


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def missing_prerequisite() -> str | None:
    """What to install before the demo can run, or None."""
    if shutil.which("node") is None:
        return ("make demo needs Node.js (18 or later) for the Microsoft 365 Agents Playground, "
                "and `node` is not on your PATH.\n"
                "  Debian or Ubuntu:  sudo apt-get install -y nodejs npm\n"
                "  macOS (Homebrew):  brew install node\n"
                "Then run `make e2e-deps` once (it fetches the pinned Playground from the npm "
                "registry); after that `make demo` works offline.")
    if not PLAYGROUND_CLI.is_file():
        return ("The Agents Playground is not installed yet: run `make e2e-deps` once (it "
                "runs `npm ci` in tests/e2e, the only step that needs the network), then "
                "`make demo` again.")
    return None


# ---------------------------------------------------------------------------- the mock tenant


def _mock_user(index: int, staff_id: str) -> dict[str, str]:
    person = next(p for p in demo_council.people() if p.staff_id == staff_id)
    given, _, surname = person.name.partition(" ")
    return {"id": f"user-id-{index}", "name": person.name, "userPrincipleName": person.email,
            "aadObjectId": f"00000000-0000-4000-8000-{index + 1:012d}", "givenName": given,
            "surname": surname, "email": person.email}


def playground_config() -> dict[str, object]:
    """The Playground's mock tenant: the lead auditor at the keyboard (user-id-0, whose
    email links them to their staff record), five colleagues, one team."""
    return {
        "version": "0.1.1",
        "tenantId": TENANT_ID,
        "bot": {"id": BOT_ID, "name": BOT_NAME},
        "currentUser": _mock_user(0, demo_council.CURRENT_USER[0]),
        "users": [_mock_user(i, sid) for i, sid in enumerate(demo_council.PLAYGROUND_USERS, 1)],
        "personalChat": {"id": "personal-chat-id"},
        "groupChat": {"id": "group-chat-id", "name": "Group Chat"},
        "team": {"id": "team-id", "name": "Children's Services", "aadGroupId":
                 "00000000-0000-0000-0000-0000000000d1",
                 "channels": [{"id": "channel-qa-id", "name": "Quality Assurance"}]},
    }


def _yaml(value: object, indent: int = 0) -> list[str]:
    """Block YAML for the config (scalars as JSON strings, which YAML reads as strings)."""
    pad = " " * indent
    lines: list[str] = []
    assert isinstance(value, dict)
    for key, item in value.items():
        if isinstance(item, dict):
            lines += [f"{pad}{key}:", *_yaml(item, indent + 2)]
        elif isinstance(item, list):
            lines.append(f"{pad}{key}:")
            for entry in item:
                inner = _yaml(entry, indent + 4)
                lines += [f"{pad}  - {inner[0].lstrip()}", *inner[1:]]
        else:
            lines.append(f"{pad}{key}: {json.dumps(str(item))}")
    return lines


def write_playground_config(path: Path) -> Path:
    path.write_text("# Written by scripts/demo.py for make demo.\n"
                    + "\n".join(_yaml(playground_config())) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- set-up


@dataclass(frozen=True)
class Prepared:
    database_url: str
    report: list[str]


async def prepare(workdir: Path, *, at: datetime | None = None) -> Prepared:
    """A fresh database with the sample council imported and the current month allocated:
    the same migrations, import and allocation a council runs, through the same code."""
    from flows.allocation import allocate_month
    from flows.roster import import_file
    from qa.framework_file import load_framework
    from qa.periods import first_of_month, local_date
    from qabot.app import build_services
    from qabot.settings import Settings
    from store.db import upgrade

    url = f"sqlite+aiosqlite:///{workdir / 'demo.db'}"
    await asyncio.to_thread(upgrade, url)
    framework = load_framework(FRAMEWORK)
    services = build_services(Settings(database_url=url), framework)
    report: list[str] = []
    try:
        at = at or services.clock()
        for kind in ("staff", "cases"):
            result = await import_file(services, kind, DEMO_DIR / f"{kind}.csv", actor="demo",
                                       at=at)
            report.append(f"imported demo/{kind}.csv: {result.summary()}")
            if result.rejected or result.warnings:
                raise RuntimeError(f"the sample {kind} did not import cleanly:\n"
                                   + result.details())
        month = first_of_month(local_date(at, framework.zone))
        outcome = await allocate_month(services.sessions, framework, services.calendar, month,
                                       as_of=at, actor="demo")
        report.append(outcome.headline())
    finally:
        await services.close()
    return Prepared(url, report)


# ---------------------------------------------------------------------------- running


async def _start_playground(workdir: Path, bot_port: int, ui_port: int,
                            timeout_s: float = 30.0) -> tuple[asyncio.subprocess.Process, int]:
    config = write_playground_config(workdir / "m365agentsplayground.yml")
    stdout_path = workdir / "playground.stdout"
    env = {**os.environ, "TEAMSAPPTESTER_BROWSER": "none",
           "APPLICATION_INSIGHTS_NO_STATSBEAT": "true",
           "M365_AGENTS_PLAYGROUND_CONFIG_PATH": str(config),
           "M365_AGENTS_PLAYGROUND_LOGFILE": str(workdir / "playground.log")}
    argv = [shutil.which("node") or "node", str(PLAYGROUND_CLI), "-e",
            f"http://localhost:{bot_port}/api/messages", "-c", "msteams", "-p", str(ui_port),
            "--disable-telemetry"]
    with stdout_path.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=workdir, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=asyncio.subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    port: int | None = None
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError("the Agents Playground stopped at start:\n"
                               + stdout_path.read_text(errors="replace"))
        if port is None:  # a taken port makes it move silently: read where it went
            found = _LISTENING.search(stdout_path.read_text(errors="replace"))
            port = int(found.group(1)) if found else None
        if port is not None and await asyncio.to_thread(_pong, port):
            return process, port
        await asyncio.sleep(0.1)
    await _stop(process)
    raise RuntimeError(f"the Agents Playground did not start within {timeout_s:.0f} s")


def _pong(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://localhost:{port}/_debug/ping", timeout=2) as r:
            return r.read().decode().strip() == "pong"
    except OSError:
        return False


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Stop the one child this script started, by its pid."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 5)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        await process.wait()


async def run(args: argparse.Namespace, workdir: Path) -> int:
    from aiohttp import web

    from qa.framework_file import load_framework
    from qabot.app import init_app
    from qabot.settings import Settings, describe_database

    say("qabot demo: a sample council in the Microsoft 365 Agents Playground")
    prepared = await prepare(workdir)
    say(f"  database: {describe_database(prepared.database_url)} (fresh, for this demo only)")
    say(f"  framework: {FRAMEWORK.relative_to(ROOT)}")
    for line in prepared.report:
        say(f"  {line}")

    settings = Settings(database_url=prepared.database_url, port=args.port, host="localhost",
                        scheduler_enabled=False, log_format="text", outbox_poll_seconds=0.5)
    app = init_app(settings, framework=load_framework(FRAMEWORK))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host="localhost", port=args.port).start()
    except OSError as err:
        await runner.cleanup()
        say(f"port {args.port} is in use ({err.strerror}): stop what uses it, or run "
            f"`make demo DEMO_PORT={args.port + 1}`.")
        return 2
    playground = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        playground, ui_port = await _start_playground(workdir, args.port, args.ui_port)
        _, lead = demo_council.CURRENT_USER
        say("")
        say(f"Open http://localhost:{ui_port}/ in your browser.")
        say(f"You are {lead}, the sample council's lead auditor, and you audit too: your "
            "allocation card and the month's QA summary are waiting for you. Open the audit "
            "form from the card; type `status` or `help`.")
        say("Ctrl-C stops the demo.")
        waiter = asyncio.ensure_future(stop.wait())
        exited = asyncio.ensure_future(playground.wait())
        await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done() and not stop.is_set():
            say("the Agents Playground stopped; stopping the demo")
        waiter.cancel()
        exited.cancel()
    finally:
        if playground is not None:
            await _stop(playground)
        await runner.cleanup()
    say(f"demo stopped; its database is kept in {workdir} until you delete it")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3978, help="the bot's port (default 3978)")
    parser.add_argument("--ui-port", type=int, default=56150,
                        help="the Playground page's port (default 56150)")
    parser.add_argument("--data-dir", default=None,
                        help="a new folder for the demo's database (default: a fresh temp one)")
    args = parser.parse_args(argv)
    problem = missing_prerequisite()
    if problem:
        sys.stderr.write(problem + "\n")
        return 2
    workdir = Path(args.data_dir or tempfile.mkdtemp(prefix="qabot-demo-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "demo.db").exists():
        say(f"{workdir / 'demo.db'} exists already: the demo starts from a fresh database, so "
            "give --data-dir a new folder (or leave it out).")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args, workdir))


if __name__ == "__main__":
    raise SystemExit(main())
