"""``qabot serve`` as a process under bad luck (issue 11, items 9, 11 and 12).

Real processes, real signals: SIGTERM while the outbox is sending, a port already taken,
kill -9 of the sending instance with another standing by, and Bot Framework
authentication with Microsoft's OpenID metadata unreachable. Every address involved is on
127.0.0.1: the OpenID metadata URL is pointed at a local server (or a closed port) with
the settings the service reads, so nothing here can reach the internet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from store.db import make_engine, make_sessionmaker, upgrade
from store.models import OutboxMessage, utcnow
from tests.fakes import FakeConnector, User, message
from tests.fakes.connector import max_in_window
from tests.test_cli import ROOT, _env

PG_URL = os.environ.get("TEST_DATABASE_URL", "")


class Serve:
    """One ``qabot serve`` process and its stderr, read as it comes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = int(env["PORT"])
        self.proc = subprocess.Popen([sys.executable, "-m", "qabot.cli", "serve"], env=env,
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def post(self, body: Any, headers: dict[str, str] | None = None) -> tuple[int, str]:
        data = json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/messages", data=data, method="POST",
            headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=20) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.err}")
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve never became healthy: {self.err}")

    def metric(self, name: str) -> float:
        status, text = self.get("/metrics", {"Authorization": "Bearer t"})
        assert status == 200, text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no {name} in /metrics")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode


@pytest.fixture
def serving() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _seed_fan_out(url: str, fc: FakeConnector, n: int) -> None:
    """n staff with a 1:1 chat each and one message queued for each."""
    from botbuilder.schema import Activity

    from bot.teams import to_incoming
    from store.models import Conversation, Staff, Team

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine).begin() as s:
            team = Team(name="Fan-out")
            s.add(team)
            await s.flush()
            for i in range(n):
                user = User.named(f"Serve Fan {i:03d}")
                s.add(Staff(staff_id=f"P{i:03d}", name=user.name, email=user.email,
                            roles=["team_manager"], team_id=team.id, teams_user_id=user.id,
                            aad_object_id=user.aad_object_id))
                await s.flush()
                incoming = to_incoming(Activity().deserialize(
                    message("hi", user=user, service_url=fc.url)))
                s.add(Conversation(id=incoming.conversation_id, kind="personal",
                                   tenant_id=incoming.tenant_id, service_url=fc.url,
                                   reference=incoming.reference, teams_user_id=user.id,
                                   staff_id=f"P{i:03d}"))
                s.add(OutboxMessage(recipient=f"staff:P{i:03d}", staff_id=f"P{i:03d}",
                                    activity={"text": f"fan {i}"}, dedupe_key=f"fan:{i}",
                                    status="pending", attempts=0, created_at=utcnow()))
    finally:
        await engine.dispose()


async def _statuses(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            rows = (await s.execute(select(OutboxMessage.status, func.count())
                                    .group_by(OutboxMessage.status))).all()
    finally:
        await engine.dispose()
    return {status: int(n) for status, n in rows}


# ---------------------------------------------------------------------------- item 12


def test_serve_on_a_port_in_use_says_so_in_one_line_and_starts_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path, QABOT_LOG_FORMAT="text")
    upgrade(env["DATABASE_URL"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["PORT"])))
        taken.listen()
        result = subprocess.run([sys.executable, "-m", "qabot.cli", "serve"], env=env,
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{env['PORT']}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "scheduler started" not in result.stderr and "stopped cleanly" not in result.stderr


def test_sigterm_while_the_outbox_is_sending_stops_cleanly(tmp_path: Path, db_url: str,
                                                          serving: list[Serve]) -> None:
    env = _env(tmp_path, DATABASE_URL=db_url, QABOT_TENANT_RATE="5", QABOT_SCHEDULER="off")
    with FakeConnector(latency=0.3) as fc:
        _run(_seed_fan_out(env["DATABASE_URL"], fc, 40))
        serve = Serve(env)
        serving.append(serve)
        serve.wait_healthy()
        deadline = time.monotonic() + 20
        while len(fc.deliveries) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fc.deliveries, serve.err
        started = time.monotonic()
        code = serve.stop()
        took = time.monotonic() - started
    err = serve.err
    assert code == 0, err
    assert "stopped cleanly" in err, err
    assert "Exception closing connection" not in err and "Traceback" not in err, err
    assert took < 5  # what is in flight finishes; the rest waits for the next sender
    statuses = _run(_statuses(env["DATABASE_URL"]))
    # nothing left claimed by the stopped sender: the next one starts at once
    assert statuses.get("sending", 0) == 0, statuses
    assert statuses.get("sent", 0) + statuses.get("pending", 0) == 40


async def test_stopping_lets_a_running_job_finish_and_leaves_no_connection_behind(
        settings: Any, framework: Any, caplog: pytest.LogCaptureFixture) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from aiohttp.test_utils import TestClient, TestServer
    from sqlalchemy import text

    from qabot.app import RUNTIME, SERVICES, init_app

    caplog.set_level(logging.INFO)
    app = init_app(replace(settings, scheduler_enabled=True), framework=framework,
                   run_sender=False)
    started, finished = asyncio.Event(), []
    async with TestClient(TestServer(app)):
        services, scheduler = app[SERVICES], app[RUNTIME].scheduler

        async def slow_job() -> None:  # a job mid-transaction when SIGTERM comes
            async with services.sessions.begin() as s:
                await s.execute(text("SELECT 1"))
                started.set()
                await asyncio.sleep(1.0)
                await s.execute(text("SELECT 2"))
            finished.append(True)

        scheduler.add_job(slow_job, "date", run_date=datetime.now(UTC))
        await asyncio.wait_for(started.wait(), 10)
    # the app's cleanup has run: the job was not cancelled under its transaction
    assert finished == [True]
    assert "stopped cleanly" in caplog.text
    assert "Exception closing connection" not in caplog.text


# ---------------------------------------------------------------------------- item 11


class _OpenId:
    """A local stand-in for Microsoft's OpenID metadata and key set (counts every fetch)."""

    def __init__(self, public_jwk: dict[str, Any]) -> None:
        self.up = True
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.hits += 1
                if not outer.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                port = self.server.server_address[1]
                body = ({"jwks_uri": f"http://127.0.0.1:{port}/keys"} if self.path == "/openid"
                        else {"keys": [public_jwk]})
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/openid"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _rsa() -> tuple[Any, dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "endorsements": ["msteams"]})
    return key, jwk


def _token(key: Any, *, exp_in: float = 600, kid: str = "k1") -> str:
    import jwt

    now = int(time.time())
    return jwt.encode({"iss": "https://api.botframework.com", "aud": "app-id",
                       "exp": now + int(exp_in), "nbf": now - 10,
                       "serviceurl": "http://127.0.0.1:9/"},
                      key, algorithm="RS256", headers={"kid": kid})


def _secure_env(tmp_path: Path, metadata_url: str) -> dict[str, str]:
    env = _env(tmp_path, MicrosoftAppId="app-id", MicrosoftAppPassword="secret",
               MicrosoftAppType="MultiTenant", BotOpenIdMetadata=metadata_url,
               QABOT_SCHEDULER="off",
               # Belt and braces: any other call the SDK might make goes to a closed
               # loopback port, never out of the machine.
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               NO_PROXY="127.0.0.1,localhost")
    upgrade(env["DATABASE_URL"])
    return env


def test_with_keys_unreachable_tokens_get_503_or_401_and_keys_are_not_refetched_per_request(
        tmp_path: Path, serving: list[Serve]) -> None:
    forger, _ = _rsa()
    _, jwk = _rsa()
    openid = _OpenId(jwk)
    openid.up = False
    try:
        serve = Serve(_secure_env(tmp_path, openid.url))
        serving.append(serve)
        serve.wait_healthy()
        activity = message("help", service_url="http://127.0.0.1:9/")
        for _ in range(5):
            status, _ = serve.post(activity, {"Authorization": f"Bearer {_token(forger)}"})
            assert status == 503
        assert openid.hits == 1  # one failed fetch, then no new try for a while
        hits = openid.hits
        for bad in (f"Bearer {_token(forger, exp_in=-3600)}", "Bearer not.a.token",
                    "Basic abc", f"Bearer {_token(forger)}x"):
            assert serve.post(activity, {"Authorization": bad})[0] == 401
        assert serve.post(activity)[0] == 401  # no token at all
        assert openid.hits == hits  # none of them needed a key
    finally:
        openid.close()
    assert serve.stop() == 0
    assert "Traceback" not in serve.err


def test_with_keys_reachable_a_forged_token_gets_401_and_the_keys_are_fetched_once(
        tmp_path: Path, serving: list[Serve]) -> None:
    forger, _ = _rsa()
    _, jwk = _rsa()
    openid = _OpenId(jwk)
    try:
        serve = Serve(_secure_env(tmp_path, openid.url))
        serving.append(serve)
        serve.wait_healthy()
        activity = message("help", service_url="http://127.0.0.1:9/")
        for _ in range(5):
            assert serve.post(activity, {"Authorization": f"Bearer {_token(forger)}"})[0] == 401
        assert serve.post(activity, {"Authorization":
                                     f"Bearer {_token(forger, kid='other')}"})[0] == 401
        assert openid.hits == 2  # the metadata and the key set, once
    finally:
        openid.close()
    assert serve.stop() == 0
    assert "Traceback" not in serve.err


# ---------------------------------------------------------------------------- items 9-10


def test_two_instances_and_kill_9_of_the_sender_deliver_each_message_once_at_one_rate(
        tmp_path: Path, db_url: str, serving: list[Serve]) -> None:
    """The correctness half of bench/bench_failover.py: small, on both databases."""
    rate, n = 10.0, 60
    common = {"DATABASE_URL": db_url, "QABOT_TENANT_RATE": f"{rate:g}", "QABOT_SCHEDULER": "off",
              "QABOT_METRICS_TOKEN": "t"}
    with FakeConnector() as fc:
        fc.fail_randomly({429: 0.10, 503: 0.02}, seed=5, retry_after=0)
        first = Serve(_env(tmp_path / "a", **common))
        serving.append(first)
        first.wait_healthy()
        second = Serve(_env(tmp_path / "b", **common))
        serving.append(second)
        second.wait_healthy()
        _run(_seed_fan_out(db_url, fc, n))  # as the allocation job, another process, would
        deadline = time.monotonic() + 30
        while len(fc.deliveries) < n // 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        leaders = [s for s in (first, second) if s.metric("outbox_sender_leader") == 1]
        assert len(leaders) == 1, "exactly one instance sends"
        leader = leaders[0]
        survivor = second if leader is first else first
        assert survivor.metric("messages_sent_total") == 0
        killed_at = time.monotonic()
        leader.proc.kill()  # SIGKILL: no clean-up, its lock goes with its connection
        leader.proc.wait()
        while (len({d.activity.get("text") for d in fc.deliveries}) < n
               and time.monotonic() < killed_at + 60):
            time.sleep(0.05)
        texts = [d.activity.get("text") for d in fc.deliveries]
        # the fake stamps deliveries with time.monotonic() in this process: one clock
        after_kill = sorted(d.at for d in fc.deliveries if d.at >= killed_at)
        in_flight = survivor.metric("outbox_taken_over_in_flight_total")
        accepted = [r.at for r in fc.requests if r.operation == "send_to_conversation"
                    and 200 <= r.status < 300]
    assert sorted(set(texts)) == sorted(f"fan {i}" for i in range(n)), survivor.err[-2000:]
    duplicates = len(texts) - n
    # At least once: only a message in flight when the sender died may arrive twice, and
    # the survivor counted those.
    assert duplicates <= in_flight <= 8, (duplicates, in_flight)
    assert after_kill and after_kill[0] - killed_at < 5.0  # taken over within seconds
    # One budget across both instances: see tests/test_sender_election.py for the bound.
    assert max_in_window(accepted, 2.0) <= 3 * rate
    statuses = _run(_statuses(db_url))
    assert statuses == {"sent": n}, statuses

