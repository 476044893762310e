"""The Dockerfile, linted by hand (no hadolint here), and built where a Docker engine runs."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from qabot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|PASSWD|CREDENTIAL|API_?KEY|PRIVATE|"
                         r"DATABASE_URL|CONNECTION_STRING)", re.IGNORECASE)
PINNED = re.compile(r"^[\w./-]+:(\d+\.\d+\.\d+)[\w.-]*(@sha256:[0-9a-f]{64})?$|^[\w./-]+@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending, start = "", 0
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = n
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, args = text.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        assert result, "the Dockerfile must start with FROM"
        result[-1].append(ins)
    return result


def env_pairs(args: str) -> list[tuple[str, str]]:
    parts = shlex.split(args)
    if len(parts) == 2 and "=" not in parts[0]:
        return [(parts[0], parts[1])]
    return [tuple(p.split("=", 1)) for p in parts]  # type: ignore[misc]


INSTRUCTIONS = parse()
FINAL = stages(INSTRUCTIONS)[-1]
STAGE_NAMES = {i.args.split()[-1].lower() for i in INSTRUCTIONS
               if i.keyword == "FROM" and " as " in i.args.lower()}


def test_every_base_image_is_pinned_to_a_python_311_release() -> None:
    froms = [i for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert froms
    for ins in froms:
        image = [w for w in ins.args.split() if not w.startswith("--")][0]
        if image.lower() in STAGE_NAMES:
            continue
        assert PINNED.match(image), f"line {ins.line}: {image} is not pinned to a release"
        assert ":latest" not in image
        assert image.startswith("python:3.11."), f"line {ins.line}: the service is Python 3.11"
        assert "slim" in image


def test_the_service_runs_as_a_non_root_user() -> None:
    users = [i.args for i in FINAL if i.keyword == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    later = FINAL[max(n for n, i in enumerate(FINAL) if i.keyword == "USER"):]
    assert not [i for i in later if i.keyword == "RUN"], "RUN after USER would hint at root needs"


def test_no_secrets_are_baked_into_the_image() -> None:
    for ins in INSTRUCTIONS:
        if ins.keyword in ("ENV", "ARG"):
            names = [kv[0] for kv in env_pairs(ins.args)] if ins.keyword == "ENV" else \
                [ins.args.split("=")[0]]
            for name in names:
                assert not SECRET_NAME.search(name), f"line {ins.line}: {name} in the image"
                assert name not in ("MicrosoftAppId", "MicrosoftAppPassword",
                                    "MicrosoftAppTenantId", "QABOT_METRICS_TOKEN")
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "postgresql://" not in text and "postgresql+asyncpg://" not in text


def test_the_exposed_port_is_the_service_default() -> None:
    exposed = [i.args.split("/")[0] for i in FINAL if i.keyword == "EXPOSE"]
    assert exposed == [str(Settings().port)]
    env = dict(kv for i in FINAL if i.keyword == "ENV" for kv in env_pairs(i.args))
    assert env.get("PORT", str(Settings().port)) == str(Settings().port)
    assert env.get("QABOT_LOG_FORMAT") == "json"


def test_a_healthcheck_probes_healthz() -> None:
    checks = [i for i in FINAL if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and "NONE" not in checks[0].args.upper()
    assert "/healthz" in checks[0].args and "PORT" in checks[0].args


def test_only_the_project_file_and_service_packages_are_copied() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    allowed = {"pyproject.toml"} | packages
    copied: set[str] = set()
    for ins in INSTRUCTIONS:
        if ins.keyword in ("COPY", "ADD"):
            assert ins.keyword == "COPY", f"line {ins.line}: use COPY, not ADD"
            words = ins.args.split()
            if any(w.startswith("--from") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            for src in sources:
                name = src.rstrip("/").removeprefix("./")
                assert name in allowed, f"line {ins.line}: COPY {src} (only {sorted(allowed)})"
                assert (ROOT / name).exists()
                copied.add(name)
    assert copied == allowed, f"pip install . needs {sorted(allowed - copied)} too"


def test_dockerignore_admits_only_what_is_copied() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "deny everything first"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = {w.rstrip("/").removeprefix("./") for i in INSTRUCTIONS if i.keyword == "COPY"
              and "--from" not in i.args for w in i.args.split()[:-1]}
    assert allowed == copied
    for pattern in ("**/*.db", "**/.env"):
        assert pattern in lines


def test_the_container_serves_and_migrations_are_a_release_step() -> None:
    cmds = [i for i in FINAL if i.keyword == "CMD"]
    assert len(cmds) == 1 and json.loads(cmds[0].args) == ["qabot", "serve"]
    assert not [i for i in FINAL if i.keyword == "ENTRYPOINT"]
    assert "db upgrade" not in cmds[0].args


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_healthcheck_command_passes_against_the_service(service) -> None:
    [check] = [i for i in FINAL if i.keyword == "HEALTHCHECK"]
    argv = json.loads(check.args[check.args.index("CMD") + 3:].strip())
    argv[0] = sys.executable
    port = service.client.server.port
    ok = await asyncio.to_thread(subprocess.run, argv, env={"PORT": str(port)},
                                 capture_output=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stderr
    down = await asyncio.to_thread(subprocess.run, argv, env={"PORT": "9"},
                                   capture_output=True, timeout=30, check=False)
    assert down.returncode != 0


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def test_the_image_builds_and_runs_as_non_root() -> None:
    if not _docker_engine():
        pytest.skip("no Docker engine here (only the client)")
    tag = "qabot-test:dockerfile"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1200)
    user = subprocess.run(["docker", "run", "--rm", tag, "id", "-u"], capture_output=True,
                          text=True, check=True, timeout=120).stdout.strip()
    assert user != "0"
    out = subprocess.run(["docker", "run", "--rm", tag, "qabot", "framework", "check",
                          "/opt/qabot/lib/python3.11/site-packages/qa/frameworks/lambeth_like.toml"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
