"""Operations: /readyz, /metrics behind its token, the outbox CLI, and what the logs hold."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from qabot.app import RUNTIME, build_services, init_app
from qabot.cli import main as cli
from qabot.logs import configure
from qabot.metrics import Metrics
from qabot.services import Services
from qabot.settings import Settings
from scheduler import jobs
from store.db import upgrade
from store.models import Case, Staff, Team
from tests.fakes import Team as TeamsTeam
from tests.fakes import User, message, personal_conversation_id, personal_install, team_install

TOKEN = "metrics-token-for-tests"
CASE_REF = "C-000123"
CARD_TEXT = "Worries: the plan for this child has not been reviewed since March"
LABEL = r'[a-zA-Z_]+="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{{{LABEL}(,{LABEL})*\}})? '
                    r'(-?[0-9.e+]+|\+Inf|NaN)$')


@pytest.fixture
def settings(db_url: str) -> Settings:
    """The conftest settings, with a metrics token (overrides the shared fixture here)."""
    return Settings(database_url=db_url, outbox_poll_seconds=0.05, scheduler_enabled=False,
                    log_format="json", metrics_token=TOKEN)


def with_extra_jobs(services: Services, *extra: jobs.Job) -> Services:
    """The running service's services with test jobs added (the real ones are frozen)."""
    return replace(services, jobs=jobs.job_table([*services.jobs.values(), *extra]))


async def seed_staff(ctx: Services, staff_id: str, user: User | None, roles: list[str],
                     team: str) -> None:
    async with ctx.sessions.begin() as session:
        row = Team(name=team)
        session.add(row)
        await session.flush()
        session.add(Staff(staff_id=staff_id, name=user.name if user else staff_id,
                          email=user.email if user else f"{staff_id.lower()}@council.example",
                          roles=roles, team_id=row.id,
                          teams_user_id=user.id if user else None,
                          aad_object_id=user.aad_object_id if user else None))
        if "social_worker" in roles:
            session.add(Case(case_ref=CASE_REF, team_id=row.id, social_worker_id=staff_id,
                             area="cp", opened_on=date(2026, 2, 3)))


def parse_metrics(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        assert SAMPLE.match(line), f"not a Prometheus sample: {line!r}"
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


async def scrape(service, token: str | None = TOKEN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    resp = await service.client.get("/metrics", headers=headers)
    return resp.status, await resp.text()


# ---- /readyz ------------------------------------------------------------------------------


async def test_ready_when_database_and_sender_are_up(service) -> None:
    resp = await service.client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {
        "status": "ready", "failed": [],
        "checks": {"database": "ok", "scheduler": "disabled", "outbox_sender": "running"}}


async def test_not_ready_when_the_sender_task_has_died(service) -> None:
    runtime = service.client.app[RUNTIME]
    runtime.sender_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runtime.sender_task
    await asyncio.sleep(0.1)  # let a query the task was awaiting finish on its thread
    resp = await service.client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["failed"] == ["outbox_sender"] and body["checks"]["outbox_sender"] == "stopped"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_not_ready_when_the_scheduler_stops(settings, framework) -> None:
    app = init_app(replace(settings, scheduler_enabled=True), framework=framework,
                   run_sender=False)
    async with TestClient(TestServer(app)) as client:
        first = await client.get("/readyz")
        assert first.status == 200
        assert (await first.json())["checks"]["scheduler"] == "running"
        app[RUNTIME].scheduler.shutdown(wait=False)
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["failed"] == ["scheduler"]


async def test_not_ready_when_the_database_is_unreachable(framework) -> None:
    # Nothing listens on port 1: the connection is refused at once, as when the server is down.
    settings = Settings(database_url="postgresql+asyncpg://qabot@127.0.0.1:1/qabot",
                        scheduler_enabled=False)
    async with TestClient(TestServer(init_app(settings, framework=framework,
                                              run_sender=False))) as client:
        resp = await client.get("/readyz")
        assert resp.status == 503
        body = await resp.json()
        assert body["failed"] == ["database"]
        assert body["checks"] == {"database": "unreachable", "scheduler": "disabled",
                                  "outbox_sender": "disabled"}


# ---- /metrics -----------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_metrics_need_the_bearer_token(service) -> None:
    assert (await scrape(service, token=None))[0] == 401
    assert (await scrape(service, token="wrong"))[0] == 401
    resp = await service.client.get("/metrics", headers={"Authorization": TOKEN})  # no scheme
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    status, text = await scrape(service)
    assert status == 200
    assert parse_metrics(text)["messages_sent_total"] == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_metrics_are_not_served_without_a_configured_token(db_url, framework) -> None:
    settings = Settings(database_url=db_url, scheduler_enabled=False)
    async with TestClient(TestServer(init_app(settings, framework=framework,
                                              run_sender=False))) as client:
        assert (await client.get("/metrics")).status == 404
        resp = await client.get("/metrics", headers={"Authorization": "Bearer anything"})
        assert resp.status == 404


async def test_metrics_count_activities_deliveries_and_job_runs(service, monkeypatch) -> None:
    fc = service.connector
    worker = User.named("Metric Worker")
    await seed_staff(service.ctx, "SW1", worker, ["social_worker"], "Team M")
    await service.post(message("help", user=worker, service_url=fc.url))
    conv = personal_conversation_id(worker)
    await service.ctx.directory.save_conversation(
        conversation_id=conv, kind="personal", service_url=fc.url, tenant_id=None,
        reference=(await service.ctx.directory.conversation(conv)).reference)
    fc.fail_next(429, retry_after=0, match="send_to_conversation")
    await service.ctx.outbox.queue(staff_id="SW1", message="a proactive message")
    service.ctx.outbox_queued()
    await fc.wait_for(lambda f: len(f.texts(conv)) >= 2, timeout=10)
    for _ in range(100):  # the sender settles the row just after the connector accepts
        if (await service.ctx.outbox.status()).sent == 1:
            break
        await asyncio.sleep(0.02)

    async def ok_job(ctx, at):
        return "nothing to do"

    async def bad_job(ctx, at):
        raise RuntimeError("broken")

    daily = lambda schedule: time(3)  # noqa: E731
    with_jobs = with_extra_jobs(service.ctx, jobs.Job("ops_ok", "test", ok_job, daily),
                                jobs.Job("ops_bad", "test", bad_job, daily))
    at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    await jobs.run_job(with_jobs, "ops_ok", at)
    with pytest.raises(RuntimeError):
        await jobs.run_job(with_jobs, "ops_bad", at)

    status, text = await scrape(service)
    values = parse_metrics(text)
    assert values['activities_total{type="message"}'] == 1
    assert values["activity_latency_seconds_count"] == 1
    assert values['activity_latency_seconds_bucket{le="+Inf"}'] == 1
    assert values["messages_sent_total"] == 1
    assert values["messages_throttled_total"] == 1
    assert values['job_runs_total{job="ops_ok",status="ok"}'] == 1
    assert values['job_runs_total{job="ops_bad",status="failed"}'] == 1
    assert values['outbox_messages{status="sent"}'] == 1
    assert CASE_REF not in text and worker.name not in text


def test_metric_labels_stay_bounded_and_escaped() -> None:
    metrics = Metrics()
    metrics.record_activity("somethingNew", 0.2)
    metrics.record_activity(None, 20.0)
    metrics.record_job_run('odd"job\nname', "weird")
    values = parse_metrics(metrics.render())
    assert values['activities_total{type="other"}'] == 2
    assert values['activity_latency_seconds_bucket{le="0.25"}'] == 1
    assert values['activity_latency_seconds_bucket{le="+Inf"}'] == 2
    assert values['job_runs_total{job="odd\\"job\\nname",status="failed"}'] == 1


# ---- the outbox CLI -------------------------------------------------------------------------


def test_outbox_status_and_retry_from_the_cli(tmp_path: Path, monkeypatch, capsys) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}"
    upgrade(url)
    for name in ("MicrosoftAppId", "QABOT_FRAMEWORK", "QABOT_ALLOWED_TENANTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)

    async def seed() -> None:
        ctx = build_services(Settings(database_url=url))
        try:
            await seed_staff(ctx, "S1", None, ["team_manager"], "Team CLI")
            message_id = await ctx.outbox.queue(staff_id="S1",
                                                message=f"Audit of {CASE_REF}: {CARD_TEXT}")
            await ctx.outbox.mark_failed(message_id, "refused: HTTP 403 Forbidden")
            await ctx.outbox.queue(staff_id="S1", message="still waiting")
        finally:
            await ctx.close()

    asyncio.run(seed())

    assert cli(["outbox", "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pending 1, sending 0, sent 0, failed 1, oldest waiting ")
    assert "failed #1 to S1: refused: HTTP 403 Forbidden" in out
    assert CASE_REF not in out and CARD_TEXT not in out  # ids and reasons, never content

    assert cli(["outbox", "retry"]) == 0
    assert capsys.readouterr().out == "1 failed message(s) queued again\n"
    assert cli(["outbox", "status"]) == 0
    assert capsys.readouterr().out.startswith("pending 2, sending 0, sent 0, failed 0")


# ---- logs: ids and counts only ----------------------------------------------------------------


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict]]]:
    """Production logging (qabot.logs.configure("json")) captured into memory."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    noisy = {n: logging.getLogger(n).level for n in
             ("aiohttp.access", "msrest", "urllib3", "apscheduler.executors.default")}
    configure("json", level=logging.INFO)
    handler = root.handlers[0]
    root.handlers[:] = saved_handlers
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    root.addHandler(handler)

    def lines() -> list[dict]:
        raw = [ln for ln in stream.getvalue().splitlines() if ln.strip()]
        return [json.loads(ln) for ln in raw]  # every line is one JSON object

    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)


async def test_a_session_logs_no_case_reference_card_text_or_names(service, json_logs,
                                                                   monkeypatch) -> None:
    fc = service.connector
    lead, worker, stranger = (User.named("Quinn Lead"), User.named("Casey Worker"),
                              User.named("Robin Unlinked"))
    await seed_staff(service.ctx, "QA1", lead, ["qa_lead"], "QA Team")
    await seed_staff(service.ctx, "SW1", worker, ["social_worker"], "Team North")
    await seed_staff(service.ctx, "UN1", None, ["team_manager"], "Team South")
    team = TeamsTeam.named("Leadership")
    fc.add_team(team, members=[lead, worker, stranger])

    for activity in team_install(team, service_url=fc.url):  # welcome + roster sync
        await service.post(activity)
    for activity in personal_install(user=worker, service_url=fc.url):
        await service.post(activity)
    await service.post(message("help", user=worker, service_url=fc.url))
    await service.post(message(f"delegate {CASE_REF} to robin.unlinked@council.example",
                               user=lead, service_url=fc.url))
    await service.post(message(f"what about {CASE_REF}?", user=worker, service_url=fc.url))

    # a card about the case, first refused with a 503 (retried), then delivered
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [
        {"type": "TextBlock", "text": f"Audit findings for {CASE_REF}"},
        {"type": "TextBlock", "text": CARD_TEXT}]}
    fc.fail_next(503, match="send_to_conversation")
    await service.ctx.outbox.queue(staff_id="SW1", message=card)
    await service.ctx.outbox.queue(staff_id="UN1", message=f"Overdue: {CASE_REF}")  # held
    service.ctx.outbox_queued()
    conv = personal_conversation_id(worker)
    await fc.wait_for(lambda f: any(CARD_TEXT in json.dumps(c) for c in f.cards(conv)),
                      timeout=15)

    # a scheduled job run that queues case content, and a turn that fails
    async def job_with_content(ctx, at):
        await ctx.outbox.queue(staff_id="SW1", message=f"Reminder about {CASE_REF}")
        return "1 reminder(s)"

    with_jobs = with_extra_jobs(service.ctx, jobs.Job("ops_reminders", "test", job_with_content,
                                                      lambda schedule: time(3)))
    await jobs.run_job(with_jobs, "ops_reminders", datetime(2026, 12, 1, 9, tzinfo=UTC))

    async def broken(*args, **kwargs):
        raise RuntimeError("directory unavailable")

    monkeypatch.setattr(service.ctx.directory, "staff_for_user", broken)
    resp = await service.client.post("/api/messages", json=message(
        f"help {CASE_REF}", user=worker, service_url=fc.url),
        headers={"X-Correlation-Id": "cid-broken-turn"})
    assert resp.headers["X-Correlation-Id"] == "cid-broken-turn"
    await fc.wait_for(lambda f: any("cid-broken-turn" in t for t in f.texts(conv)), timeout=5)
    await asyncio.sleep(0.2)  # let the sender settle the failed message and log it

    lines = json_logs()
    assert lines, "nothing was logged"
    text = "\n".join(json.dumps(ln, ensure_ascii=False) for ln in lines)
    assert CASE_REF not in text
    assert CARD_TEXT not in text and "Audit findings" not in text
    for person in (lead, worker, stranger):
        assert person.name not in text and person.email not in text
    # correlation ids: the failed turn's, and one per job run
    [failed] = [ln for ln in lines if ln["msg"] == "handler failed"]
    assert failed["correlation_id"] == "cid-broken-turn" and failed["level"] == "error"
    job_lines = [ln for ln in lines if ln.get("job") == "ops_reminders"]
    assert {ln["msg"] for ln in job_lines} == {"job started", "job finished"}
    assert len({ln["correlation_id"] for ln in job_lines}) == 1
    assert job_lines[0]["correlation_id"].startswith("job-ops_reminders-")
    assert any("will be retried" in ln["msg"] for ln in lines)
    # (issue 12: a message for someone not linked is held, no longer failed)
    assert any(ln["msg"].startswith("outbox message") and "held" in ln["msg"] for ln in lines)


# ---- the deployment guide names real commands and settings ------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs"


def guide_commands() -> list[str]:
    """Every `qabot …` command in the guides, inline or in a shell block."""
    found: list[str] = []
    for doc in ("deploy.md", "data-protection.md", "architecture.md"):
        text = (DOCS / doc).read_text(encoding="utf-8")
        for inline in re.findall(r"`(qabot [^`|]+)`", text):
            found += [part.strip() for part in inline.split("&&")]
        for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
            for line in block.splitlines():
                hit = re.search(r"\bqabot ((?:serve|db|import|teams|outbox|jobs|framework|"
                                r"allocate)\b[^#\n]*)", line)
                if hit:
                    found.append("qabot " + hit.group(1).strip())
    return found


def test_every_command_in_the_guides_is_a_real_cli_command() -> None:
    import shlex

    from qabot.cli import build_parser

    commands = guide_commands()
    assert len(commands) >= 10
    seen = set()
    for command in commands:
        argv = shlex.split(command)[1:]
        if argv == ["--help"]:
            continue
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"docs name a command the CLI does not have: {command!r}")
        seen.add(args.func.__name__)
    for needed in ("cmd_serve", "cmd_db_upgrade", "cmd_import", "cmd_teams_sync",
                   "cmd_outbox_status", "cmd_outbox_retry", "cmd_jobs_list", "cmd_jobs_run",
                   "cmd_framework_check"):
        assert needed in seen, f"the deployment guide never shows {needed}"


def test_the_settings_table_matches_what_the_service_reads() -> None:
    source = (Path(__file__).resolve().parents[1] / "qabot" / "settings.py").read_text()
    read = set(re.findall(r'(?:env\.get\(|_int\(env, |_float\(env, )"([A-Za-z_]+)"', source))
    table = (DOCS / "deploy.md").read_text(encoding="utf-8").split("## Settings", 1)[1]
    table = table.split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| \**`([A-Za-z_]+)`", table, flags=re.M))
    documented |= {name for row in re.findall(r"^\| `([A-Z_]+)` / `([A-Z_]+)`", table, flags=re.M)
                   for name in row}
    assert read, "could not read the settings"
    assert read <= documented, f"undocumented settings: {sorted(read - documented)}"
    assert documented <= read, f"documented settings the service ignores: {sorted(documented - read)}"


# ---- a warm start (issue 12) ------------------------------------------------------------------


async def test_start_up_warms_imports_sdk_cards_pool_and_a_turn(service) -> None:
    import sys

    from qabot.warmup import LAZY_MODULES, POOL_CONNECTIONS

    runtime = service.client.app[RUNTIME]
    done = runtime.warm_up
    assert done is not None and done.failed == {}
    assert set(done.steps) == {"imports", "teams_sdk", "connector_clients", "cards",
                               "database_pool", "turn"}
    assert all(name in sys.modules for name in LAZY_MODULES)
    engine = service.ctx.engine
    assert len(engine.sync_engine._compiled_cache) > 0  # a turn's queries compiled already
    if engine.dialect.name == "postgresql":
        pool = engine.pool  # opened before the first click (the sender may hold one now)
        assert pool.checkedin() + pool.checkedout() >= POOL_CONNECTIONS
    status, text = await scrape(service)
    assert status == 200 and parse_metrics(text)["warmup_seconds"] > 0


async def test_a_database_down_at_start_up_fails_only_that_warm_up_step(framework) -> None:
    settings = Settings(database_url="postgresql+asyncpg://qabot@127.0.0.1:1/qabot",
                        scheduler_enabled=False)
    app = init_app(settings, framework=framework, run_sender=False)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/healthz")).status == 200  # alive
        assert (await client.get("/readyz")).status == 503  # not ready: says why
        assert set(app[RUNTIME].warm_up.failed) == {"database_pool", "connector_clients"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_start_up_builds_the_connector_clients_of_known_service_urls(
        settings, framework, fake_connector) -> None:
    from qabot.app import SERVICES

    ctx = build_services(settings, framework)
    try:
        await ctx.directory.save_conversation(
            conversation_id="a:1", kind="personal", service_url=fake_connector.url,
            tenant_id="t", reference={"conversation": {"id": "a:1"}})
    finally:
        await ctx.close()
    app = init_app(settings, framework=framework, run_sender=False)
    async with TestClient(TestServer(app)) as client:
        auth = app[SERVICES].teams.adapter.bot_framework_authentication

        def cached() -> list[object]:
            return [c for clients in auth._clients.values() for c in clients.values()]

        before = cached()
        assert len(before) == 2  # made before any request: for sends and for turns
        await client.post("/api/messages", json=message("help", service_url=fake_connector.url))
        assert cached() == before  # the first turn used it rather than building its own
        assert len(fake_connector.texts()) == 1
