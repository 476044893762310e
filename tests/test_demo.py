"""``make demo`` without a browser: the sample council, its set-up, and what it says when
something is missing (tests/e2e/test_demo.py drives the whole thing in the Playground)."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_scripts_{name}",
                                                  ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


council = _load("demo_council")
demo = _load("demo")


def test_the_committed_sample_council_is_what_the_generator_writes() -> None:
    assert (ROOT / "demo" / "staff.csv").read_text(encoding="utf-8") == council.staff_csv()
    assert (ROOT / "demo" / "cases.csv").read_text(encoding="utf-8") == council.cases_csv()


def test_the_sample_council_is_made_up_and_pseudonymous() -> None:
    people = council.people()
    assert all(p.email.endswith("@council.example") for p in people)
    heads = [p for p in people if "head_of_service" in p.roles]
    assert len(heads) == 2  # two services
    assert any("qa_lead" in p.roles for p in people)
    lead = next(p for p in people if p.staff_id == council.CURRENT_USER[0])
    assert {"qa_lead", "advanced_practitioner"} <= set(lead.roles)  # the lead audits too
    header, *rows = (ROOT / "demo" / "cases.csv").read_text().splitlines()
    assert header.split(",")[:2] == ["case_ref", "team"]
    assert all(re.fullmatch(r"C-\d{5}", row.split(",")[0]) for row in rows)


async def test_set_up_imports_cleanly_and_allocates_the_month(tmp_path: Path) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    prepared = await demo.prepare(tmp_path, at=datetime(2026, 12, 1, 10, tzinfo=ZoneInfo(
        "Europe/London")))
    assert prepared.report[0].startswith("imported demo/staff.csv: staff: 36 added")
    assert prepared.report[1].startswith("imported demo/cases.csv: cases: 48 added")
    assert re.match(r"2026-12: allocated 17 audit\(s\) to 17 auditor\(s\), .*0 shortfall",
                    prepared.report[2]), prepared.report[2]
    with sqlite3.connect(tmp_path / "demo.db") as db:
        lead_cards = db.execute("SELECT count(*) FROM outbox WHERE staff_id = 'D900'"
                                ).fetchone()
        assert lead_cards == (2,)  # their allocation card and the QA summary, waiting
        teams = dict(db.execute("SELECT id, name FROM teams").fetchall())
        for auditor, team_id in db.execute("SELECT auditor_id, team_id FROM audits"):
            if auditor == "D100":  # a head of service: never their own service's teams
                assert teams[team_id] not in ("Assessment 1", "Assessment 2", "Child Protection")
            if auditor == "D200":
                assert teams[team_id] not in ("Children in Care 1", "Children in Care 2",
                                              "Disabled Children")


def test_the_playground_tenant_puts_the_lead_auditor_at_the_keyboard(tmp_path: Path) -> None:
    config = demo.playground_config()
    assert config["currentUser"]["email"] == "sam.rivers@council.example"
    assert config["currentUser"]["id"] == "user-id-0"
    assert len(config["users"]) == 5  # what the Playground insists on
    text = demo.write_playground_config(tmp_path / "p.yml").read_text()
    assert 'email: "sam.rivers@council.example"' in text and "userPrincipleName" in text


def test_without_node_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    assert demo.main([]) == 2
    err = capsys.readouterr().err
    assert "needs Node.js" in err and "apt-get install -y nodejs npm" in err
    assert "make e2e-deps" in err


def test_without_the_playground_it_says_to_run_e2e_deps(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    monkeypatch.setattr(demo.shutil, "which", lambda name: "/usr/bin/node")
    monkeypatch.setattr(demo, "PLAYGROUND_CLI", tmp_path / "missing" / "cli.js")
    assert demo.main([]) == 2
    assert "run `make e2e-deps` once" in capsys.readouterr().err


def test_make_demo_runs_the_launcher() -> None:
    result = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "scripts/demo.py" in result.stdout
    assert "e2e-deps" not in result.stdout  # offline: it never reaches for the registry
