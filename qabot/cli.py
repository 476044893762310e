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
    """The environment's settings; the default SQLite file's folder is made if missing."""
    from qabot.settings import sqlite_file

    try:
        settings = Settings.from_env()
    except SettingsError as err:
        _err(f"configuration error: {err}")
        raise SystemExit(2) from None
    path = sqlite_file(settings.database_url)
    if path is not None and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            _err(f"cannot create {path.parent} for the database ({err.strerror}): set "
                 "DATABASE_URL to a writable place")
            raise SystemExit(2) from None
    return settings


def _say_database(settings: Settings) -> None:
    """Say where the data is, every time: a surprise here loses people's work."""
    from qabot.settings import describe_database

    _err(f"qabot: database {describe_database(settings.database_url)} "
         "(set DATABASE_URL to use another)")


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
    _say_database(settings)
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
    _say_database(settings)
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
    from qabot.settings import describe_database
    from store.db import upgrade

    settings = _settings()
    upgrade(settings.database_url, args.revision)
    _out(f"database at {args.revision}: {describe_database(settings.database_url)}")
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
            _out("the bot is not installed in any team yet: add it to a team in Teams first "
                 "(see \"Link staff to Teams\" in the README)")
            return 1
        for team, report in results:
            _out(f"{team}: {describe(report)}")
        released = sum(r.released for _, r in results)
        if released:
            _out(f"{released} held message(s) released: the running service sends them now")
        missing = await services.directory.staff_without_chat()
        _out("every linked person has a 1:1 chat with the bot" if not missing else
             f"{len(missing)} linked person(s) have no 1:1 chat yet; the first message to "
             "each opens it")
        return 0

    return _with_services(run, teams=True)


def cmd_staff_unlinked(args: argparse.Namespace) -> int:
    from flows.roster import unlinked_report

    async def run(services: Any) -> int:
        for line in await unlinked_report(services):
            _out(line)
        return 0

    return _with_services(run)


def cmd_outbox_status(args: argparse.Namespace) -> int:
    async def run(services: Any) -> int:
        st = await services.outbox.status()
        age = ""
        if st.oldest_pending_at is not None:
            seconds = (services.clock() - st.oldest_pending_at).total_seconds()
            age = f", oldest waiting {seconds:.0f}s"
        held = (f", held {st.held} (for staff not linked to Teams yet: see "
                "`qabot staff unlinked`)" if st.held else "")
        _out(f"pending {st.pending}, sending {st.sending}, sent {st.sent}, failed {st.failed}"
             f"{age}{held}")
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
        from cards.messages import digest_posted
        from flows.digest import post_digest

        _out(await digest_report(services, period, as_json=args.json))
        if args.post:
            posted = await post_digest(services, period, at=services.clock(),
                                       actor=f"cli:{args.actor}")
            _err(digest_posted(posted.period, posted.queued, posted.channels, posted.complete))
            return 0 if posted.channels else 1
        return 0

    return _with_services(run)


def _csv_list(text: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def _iso_day(text: str | None, flag: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected a date such as 2025-04-01") from None


def cmd_theme_launch(args: argparse.Namespace) -> int:
    from flows.themes import Criteria, LaunchRefused, launch_theme

    try:
        criteria = Criteria(
            name=args.name, cases=args.cases, tags=_csv_list(args.tags),
            areas=_csv_list(args.area), teams=_csv_list(args.team),
            opened_from=_iso_day(args.opened_from, "--opened-from"),
            opened_to=_iso_day(args.opened_to, "--opened-to"), tool=args.tool)
    except ValueError as err:
        _err(str(err))
        return 2

    async def run(services: Any) -> int:
        try:
            outcome = await launch_theme(services, criteria, at=services.clock(),
                                         actor=f"cli:{args.actor}", dry_run=args.dry_run,
                                         seed=args.seed)
        except LaunchRefused as err:
            _err(f"refused: {err}")
            return 2
        for line in outcome.report():
            _out(line)
        return 0

    return _with_services(run)


def cmd_log(args: argparse.Namespace) -> int:
    from flows.records import log_line, read_log

    if args.case and args.staff:
        _err("give --case or --staff, not both")
        return 2
    try:
        since = _iso_day(args.since, "--since")
        until = _iso_day(args.until, "--until")
    except ValueError as err:
        _err(str(err))
        return 2

    async def run(services: Any) -> int:
        from qa.periods import local_midnight_utc

        zone = services.framework.zone
        assert since is not None
        entries = await read_log(
            services, since=local_midnight_utc(since, zone),
            until=local_midnight_utc(until, zone) if until else None,
            case_ref=args.case, staff_id=args.staff, limit=args.limit)
        for entry in entries:
            _out(log_line(entry, services))
        _err(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
             + (" (limit reached: narrow it with --until)" if len(entries) >= args.limit else ""))
        return 0

    return _with_services(run)


def cmd_purge(args: argparse.Namespace) -> int:
    from flows.records import purge_records

    async def run(services: Any) -> int:
        outcome = await purge_records(services, at=services.clock(), actor=f"cli:{args.actor}",
                                      dry_run=args.dry_run)
        for line in outcome.report():
            _out(line)
        return 0

    return _with_services(run)


def cmd_report(args: argparse.Namespace) -> int:
    from flows.report import write_report
    from qa.periods import Period

    try:
        period = Period.parse(args.period)
    except ValueError as err:
        _err(str(err))
        return 2
    out = Path(args.out)
    if out.suffix.lower() != ".docx":
        _err("--out must name a .docx file")
        return 2

    async def run(services: Any) -> int:
        path = await write_report(services, period, out)
        _out(f"report for {period.label}: {path}")
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

    st = sub.add_parser("staff", help="staff and Teams").add_subparsers(dest="staff",
                                                                         required=True)
    st.add_parser("unlinked", help="who cannot be reached in Teams, and why").set_defaults(
        func=cmd_staff_unlinked)

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
    p.add_argument("--json", action="store_true", help="the exact figures as JSON")
    p.add_argument("--post", action="store_true",
                   help="also queue the digest card to the registered channels")
    p.add_argument("--actor", default="digest", help="who ran it, for the audit log")
    p.set_defaults(func=cmd_digest)

    theme = sub.add_parser("theme", help="thematic and ad hoc audits (R4)").add_subparsers(
        dest="theme", required=True)
    p = theme.add_parser("launch", help="choose cases by criteria and allocate them now")
    p.add_argument("name", help="the theme, e.g. 'Domestic abuse 2026'")
    p.add_argument("--cases", type=int, required=True, help="how many cases to audit")
    p.add_argument("--tags", default=None, help="case tags, comma-separated (any of them)")
    p.add_argument("--area", default=None, help="areas of planning, comma-separated")
    p.add_argument("--team", default=None, help="case teams, comma-separated")
    p.add_argument("--opened-from", default=None, help="cases opened on or after YYYY-MM-DD")
    p.add_argument("--opened-to", default=None, help="cases opened on or before YYYY-MM-DD")
    p.add_argument("--tool", default=None, help="a theme-specific audit tool of the framework")
    p.add_argument("--dry-run", action="store_true", help="show the choice, write nothing")
    p.add_argument("--seed", type=int, default=None, help="reproduce a draw")
    p.add_argument("--actor", default="theme", help="who ran it, for the audit log")
    p.set_defaults(func=cmd_theme_launch)

    p = sub.add_parser("report", help="the monthly QA report for the performance board (.docx)")
    p.add_argument("period", help="a month (2026-10) or a quarter (2026-Q3)")
    p.add_argument("--out", required=True, help="the .docx file to write")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("log", help="read the audit log (who did what, when)")
    p.add_argument("--since", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--until", default=None, help="day after the last, YYYY-MM-DD")
    p.add_argument("--case", default=None, help="only entries about this case reference")
    p.add_argument("--staff", default=None, help="only entries by or about this staff id")
    p.add_argument("--limit", type=int, default=5000)
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("purge", help="remove records past the framework's retention period")
    p.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")
    p.add_argument("--actor", default="purge", help="who ran it, for the audit log")
    p.set_defaults(func=cmd_purge)

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
