"""The ``qabot`` command: serve, migrate, check the framework, import, and operate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from qabot.settings import Settings, SettingsError

log = logging.getLogger("qabot")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as err:
        _err(f"configuration error: {err}")
        raise SystemExit(2) from None


def _framework(settings: Settings) -> Any:
    from qa.framework_file import FrameworkError
    from qabot.app import load_configured_framework

    try:
        return load_configured_framework(settings)
    except FrameworkError as err:
        _err(f"framework file error: {err}")
        raise SystemExit(2) from None


def _with_services(func: Callable[[Any], Awaitable[int]], *, teams: bool = False) -> int:
    """Run an async command with the services (no web server; messages are only queued,
    the running service delivers them)."""
    from qabot.app import build_services

    settings = _settings()
    framework = _framework(settings)
    _require_migrated(settings)

    async def main() -> int:
        services = build_services(settings, framework, teams=teams)
        try:
            return await func(services)
        finally:
            await services.close()

    return asyncio.run(main())


def import_progress(kind: str) -> Callable[[int, int], None]:
    """A progress bar on stderr for a big import (the store only counts rows)."""
    from tqdm import tqdm

    bar: list[Any] = []

    def advance(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=f"importing {kind}", unit="row",
                            file=sys.stderr, leave=False))
        bar[0].update(done - bar[0].n)
        if done >= total:
            bar[0].close()

    return advance


def _require_migrated(settings: Settings) -> None:
    from alembic.script import ScriptDirectory

    from store.db import alembic_config, current_revision

    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    try:
        current = current_revision(settings.database_url)
    except Exception as err:
        _err(f"database unreachable ({type(err).__name__}): check DATABASE_URL")
        raise SystemExit(2) from None
    if current != head:
        _err(f"the database schema is at {current or 'nothing'}, not {head}: "
             "run `qabot db upgrade` first")
        raise SystemExit(2)


# ---- commands ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from qabot.app import init_app
    from qabot.logs import configure

    settings = _settings()
    configure(settings.log_format)
    framework = _framework(settings)
    _require_migrated(settings)
    port = args.port or settings.port
    # Bind first: a port in use is one clear line and exit 2, before the scheduler or the
    # outbox sender has started (run_app started them, then failed to bind, then printed
    # a traceback after "stopped cleanly").
    try:
        sock = _listen(settings.host, port)
    except OSError as err:
        _err(f"cannot listen on {settings.host}:{port}: {err.strerror or err}")
        return 2
    log.info("starting", extra={"port": port, "framework": framework.source,
                                "database": settings.database_url.split(":", 1)[0]})
    web.run_app(init_app(settings, framework=framework), sock=sock,
                shutdown_timeout=15, print=None, access_log=None)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6, as the host says)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from store.db import upgrade

    settings = _settings()
    upgrade(settings.database_url, args.revision)
    _out(f"database at {args.revision}")
    return 0


def cmd_framework_check(args: argparse.Namespace) -> int:
    from qa.framework_file import FrameworkError, describe, load_framework

    try:
        fw = load_framework(args.file)
    except FrameworkError as err:
        _err(f"invalid: {err}")
        return 1
    _out(f"{args.file}: valid")
    _out(describe(fw))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from flows.roster import import_file
    from store.imports import ImportRefused

    path = Path(args.file)
    if not path.is_file():
        _err(f"no such file: {path}")
        return 2

    async def run(services: Any) -> int:
        try:
            report = await import_file(
                services, args.kind, path, actor=f"cli:{args.actor}",
                progress=None if args.quiet else import_progress(args.kind))
        except ImportRefused as err:
            _err(f"refused: {err}")
            return 2
        _out(report.details())
        return 1 if report.rejected else 0

    return _with_services(run)


def cmd_teams_sync(args: argparse.Namespace) -> int:
    from flows.roster import describe, sync_all

    async def run(services: Any) -> int:
        results = await sync_all(services)
        if not results:
            _out("the bot is not installed in any team yet")
            return 1
        for team, report in results:
            _out(f"{team}: {describe(report)}")
        return 0

    return _with_services(run, teams=True)


def cmd_outbox_status(args: argparse.Namespace) -> int:
    async def run(services: Any) -> int:
        st = await services.outbox.status()
        age = ""
        if st.oldest_pending_at is not None:
            seconds = (services.clock() - st.oldest_pending_at).total_seconds()
            age = f", oldest waiting {seconds:.0f}s"
        _out(f"pending {st.pending}, sending {st.sending}, sent {st.sent}, failed {st.failed}{age}")
        for message_id, staff_id, reason in st.failures:
            _out(f"  failed #{message_id} to {staff_id or 'a channel'}: {reason}")
        return 0

    return _with_services(run)


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    async def run(services: Any) -> int:
        n = await services.outbox.retry_failed()
        _out(f"{n} failed message(s) queued again")
        return 0

    return _with_services(run)


def cmd_jobs_list(args: argparse.Namespace) -> int:
    from scheduler.runner import next_runs

    async def run(services: Any) -> int:
        for name, summary, when in next_runs(services, services.clock()):
            _out(f"{name:24} next {when.isoformat() if when else 'never'}  {summary}")
        return 0

    return _with_services(run)


def cmd_jobs_run(args: argparse.Namespace) -> int:
    from scheduler.jobs import UnknownJob, run_job

    try:
        at = datetime.fromisoformat(args.at) if args.at else None
    except ValueError:
        _err(f"--at {args.at!r}: expected an ISO date-time such as 2026-12-01T09:00+00:00")
        return 2

    async def run(services: Any) -> int:
        from zoneinfo import ZoneInfo

        when = at or services.clock()
        if when.tzinfo is None:
            when = when.replace(tzinfo=ZoneInfo(services.framework.timezone))
        try:
            result = await run_job(services, args.name, when)
        except UnknownJob as err:
            _err(str(err.args[0]))
            return 2
        _out(result)
        return 0

    return _with_services(run)


def cmd_allocate(args: argparse.Namespace) -> int:
    from flows.allocation import allocate_month
    from qa.periods import parse_month

    try:
        month = parse_month(args.month)
    except ValueError as err:
        _err(str(err))
        return 2
    if args.seed is not None and not 0 <= args.seed < 2**63:
        _err("--seed must be a whole number from 0 to 2^63-1")
        return 2

    async def run(services: Any) -> int:
        outcome = await allocate_month(
            services.sessions, services.framework, services.calendar, month,
            as_of=services.clock(),
            actor=f"cli:{args.actor}", seed=args.seed, dry_run=args.dry_run)
        for line in outcome.report():
            _out(line)
        return 0

    return _with_services(run)


def _month_start(text: str | None, flag: str) -> date | None:
    """The first day of a YYYY-MM month; ValueError names the flag and what it wants."""
    from qa.periods import parse_month

    if not text:
        return None
    try:
        return parse_month(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected a month such as 2026-04") from None


def cmd_export(args: argparse.Namespace) -> int:
    from flows.export import export_records

    try:
        since = _month_start(args.since, "--since")
        until = _month_start(args.until, "--until")
    except ValueError as err:
        _err(str(err))
        return 2

    async def run(services: Any) -> int:
        paths = await export_records(services, args.out, since=since, until=until, fmt=args.format)
        for name, path in sorted(paths.items()):
            _out(f"{name}: {path}")
        return 0

    return _with_services(run)


def cmd_digest(args: argparse.Namespace) -> int:
    from flows.digest import digest_report
    from qa.periods import Period

    try:
        period = Period.parse(args.period)
    except ValueError as err:
        _err(str(err))
        return 2

    async def run(services: Any) -> int:
        _out(await digest_report(services, period, as_json=args.json))
        return 0

    return _with_services(run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qabot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the bot service")
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    p = db.add_parser("upgrade", help="apply migrations (the only way the schema is made)")
    p.add_argument("revision", nargs="?", default="head")
    p.set_defaults(func=cmd_db_upgrade)

    fw = sub.add_parser("framework", help="the framework file").add_subparsers(dest="fw", required=True)
    p = fw.add_parser("check", help="validate a framework file")
    p.add_argument("file")
    p.set_defaults(func=cmd_framework_check)

    imp = sub.add_parser("import", help="import CSV exports").add_subparsers(dest="kind", required=True)
    for kind in ("staff", "cases"):
        p = imp.add_parser(kind, help=f"import {kind} (upsert)")
        p.add_argument("file")
        p.add_argument("--actor", default="import", help="who ran it, for the audit log")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=cmd_import)

    teams = sub.add_parser("teams", help="Teams links").add_subparsers(dest="teams", required=True)
    p = teams.add_parser("sync", help="link staff to Teams users from team rosters")
    p.set_defaults(func=cmd_teams_sync)

    ob = sub.add_parser("outbox", help="proactive messages").add_subparsers(dest="ob", required=True)
    ob.add_parser("status", help="pending, failed with reasons, oldest age").set_defaults(
        func=cmd_outbox_status)
    ob.add_parser("retry", help="queue failed messages again").set_defaults(func=cmd_outbox_retry)

    p = sub.add_parser("allocate", help="allocate a month's case audits (once; --dry-run previews)")
    p.add_argument("--month", required=True, help="YYYY-MM, e.g. 2026-12")
    p.add_argument("--dry-run", action="store_true", help="compute and report, write nothing")
    p.add_argument("--seed", type=int, default=None, help="reproduce an allocation (else random)")
    p.add_argument("--actor", default="allocate", help="who ran it, for the audit log")
    p.set_defaults(func=cmd_allocate)

    p = sub.add_parser("export", help="audits, grades and actions to CSV or XLSX (R13)")
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--since", default=None, help="first allocation month, e.g. 2025-04")
    p.add_argument("--until", default=None, help="month after the last, e.g. 2026-04")
    p.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("digest", help="the leadership digest for a month or quarter (totals only)")
    p.add_argument("period", help="a month (2026-10) or a quarter (2026-Q3)")
    p.add_argument("--json", action="store_true", help="the figures as JSON")
    p.set_defaults(func=cmd_digest)

    jobs = sub.add_parser("jobs", help="scheduled jobs").add_subparsers(dest="jobs", required=True)
    jobs.add_parser("list", help="jobs and their next run").set_defaults(func=cmd_jobs_list)
    p = jobs.add_parser("run", help="run a job now, as if at a given time")
    p.add_argument("name")
    p.add_argument("--at", default=None, help="ISO date-time, e.g. 2026-12-01T09:00")
    p.set_defaults(func=cmd_jobs_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
