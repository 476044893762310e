"""The `qabot` command as an operator uses it: serve, shut down, refuse bad set-ups."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from qa.framework_file import bundled_framework_path
from qabot.cli import main
from store.db import upgrade

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Microsoft", "QABOT_"))}
    env.update({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "PORT": str(_free_port()),
                "HOST": "127.0.0.1", "QABOT_LOG_FORMAT": "json"})
    env.update(extra)
    return env


def _qabot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qabot.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_serve_answers_health_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _qabot("db", "upgrade", env=env).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "qabot.cli", "serve"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{env['PORT']}/healthz", timeout=1) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.1)
        assert body is not None and '"status": "ok"' in body  # liveness (issue 12)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "local mode" in err and "stopped cleanly" in err
    assert f"qabot: database SQLite file {tmp_path / 'cli.db'}" in err  # said at start


def test_serve_refuses_a_bad_framework_file_with_line_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "council.toml"
    text = bundled_framework_path("lambeth_like").read_text(encoding="utf-8")
    bad.write_text(text.replace("step_days =", "step_dayz =", 1), encoding="utf-8")
    line = next(i for i, row in enumerate(bad.read_text().splitlines(), 1) if "step_dayz" in row)
    env = _env(tmp_path, QABOT_FRAMEWORK=str(bad))
    upgrade(env["DATABASE_URL"])
    result = _qabot("serve", env=env)
    assert result.returncode == 2
    assert f"{bad}:{line}: escalation.step_dayz: unknown key" in result.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = _qabot("serve", env=_env(tmp_path))
    assert result.returncode == 2
    assert "run `qabot db upgrade` first" in result.stderr


def test_bad_environment_values_are_reported(tmp_path: Path) -> None:
    result = _qabot("serve", env=_env(tmp_path, QABOT_TENANT_RATE="fast"))
    assert result.returncode == 2
    assert "QABOT_TENANT_RATE='fast': expected a number" in result.stderr


@pytest.mark.parametrize("name", ["lambeth_like", "bedford_like"])
def test_framework_check_accepts_the_bundled_examples(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["framework", "check", str(bundled_framework_path(name))]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "Areas of planning" in out


def test_framework_check_reports_a_syntax_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('authority = "x"\n\n[areas.early_help\nlabel = "EH"\n', encoding="utf-8")
    assert main(["framework", "check", str(bad)]) == 1
    assert f"{bad}:3:" in capsys.readouterr().err


def _seeded_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite file with one allocated audit (the audit form tests' seed)."""
    import asyncio

    from qa.framework_file import load_framework
    from qabot.app import build_services
    from qabot.settings import Settings
    from tests.test_audit_form import seed

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)

    async def run() -> None:
        ctx = build_services(Settings(database_url=url),
                             load_framework(bundled_framework_path("lambeth_like")))
        try:
            await seed(ctx)
        finally:
            await ctx.close()

    asyncio.run(run())
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def test_export_writes_csv_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    _seeded_db(tmp_path, monkeypatch)
    out = tmp_path / "export"
    assert main(["export", "--out", str(out)]) == 0
    listed = capsys.readouterr().out
    assert "audits:" in listed and "actions:" in listed
    audits = (out / "audits.csv").read_text(encoding="utf-8")
    assert "C-1001" in audits and "case_ref" in audits.splitlines()[0]
    assert main(["export", "--out", str(out), "--since", "April"]) == 2


def test_digest_prints_totals_and_never_a_case_reference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    _seeded_db(tmp_path, monkeypatch)
    month = f"{datetime.now(ZoneInfo('Europe/London')):%Y-%m}"  # the seed's allocation month
    assert main(["digest", month]) == 0
    text = capsys.readouterr().out
    assert month in text or "audit" in text.lower()
    assert main(["digest", month, "--json"]) == 0
    as_json = capsys.readouterr().out
    assert '"allocated"' in as_json or "allocated" in as_json
    assert "C-1001" not in text and "C-1001" not in as_json
    assert main(["digest", "last month"]) == 2


@pytest.mark.parametrize(("env", "reason"), [
    ({"MicrosoftAppId": "a", "MicrosoftAppPassword": "p", "MicrosoftAppType": "SingleTenant"},
     "MicrosoftAppType=SingleTenant needs MicrosoftAppTenantId"),
    ({"MicrosoftAppId": "a", "MicrosoftAppType": "SingleTenant", "MicrosoftAppTenantId": "t"},
     "MicrosoftAppId is set but MicrosoftAppPassword is empty"),
    ({"MicrosoftAppType": "Multi"}, "MicrosoftAppType='Multi': expected one of"),
    # Issue 12: new registrations are single-tenant, so that is the default type.
    ({"MicrosoftAppId": "a", "MicrosoftAppPassword": "p"},
     "MicrosoftAppType=SingleTenant needs MicrosoftAppTenantId"),
])
def test_bot_framework_settings_are_checked_at_start(tmp_path: Path, env: dict[str, str],
                                                     reason: str) -> None:
    result = _qabot("serve", env=_env(tmp_path, **env))
    assert result.returncode == 2 and reason in result.stderr


# ---- settings that do not surprise (issue 12) ---------------------------------------------------


def test_the_default_database_is_in_the_users_data_directory(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    from qabot.settings import Settings

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    settings = Settings.from_env({})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'qabot' / 'qabot.db'}"
    assert settings.app_type == "SingleTenant"
    assert Settings.from_env({"DATABASE_URL": "postgresql+asyncpg://u@h/db"}).database_url == (
        "postgresql+asyncpg://u@h/db")


def test_commands_say_where_the_database_is_and_make_its_folder(tmp_path: Path) -> None:
    env = _env(tmp_path)
    del env["DATABASE_URL"]
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = subprocess.run([sys.executable, "-m", "qabot.cli", "db", "upgrade"], env=env,
                            cwd=work, capture_output=True, text=True, timeout=60)
    db = tmp_path / "data" / "qabot" / "qabot.db"
    assert result.returncode == 0, result.stderr
    assert db.is_file() and not list(work.iterdir())  # not the folder it ran in
    assert f"SQLite file {db}" in result.stdout
    result = subprocess.run([sys.executable, "-m", "qabot.cli", "outbox", "status"], env=env,
                            cwd=work, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and f"qabot: database SQLite file {db}" in result.stderr
    env["DATABASE_URL"] = "postgresql+asyncpg://qabot:secret@127.0.0.1:1/qabot"
    result = subprocess.run([sys.executable, "-m", "qabot.cli", "outbox", "status"], env=env,
                            cwd=work, capture_output=True, text=True, timeout=60)
    assert "qabot: database postgresql+asyncpg://qabot:***@127.0.0.1:1/qabot" in result.stderr
    assert "secret" not in result.stderr + result.stdout
