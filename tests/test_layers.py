"""The layering stays true: no import circles, no forbidden arrows, one module per feature.

Imports are read from the source (``ast``), every one that runs (module level and inside
functions), leaving out those under ``if TYPE_CHECKING:`` (annotations only, never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "cards", "flows", "qa", "qabot", "reports", "scheduler", "store")

#: What each layer may never import (a project package, or a library that does I/O).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "store": ("cards", "bot", "flows", "scheduler", "qabot", "reports", "tqdm"),
    "cards": ("store", "bot", "flows", "scheduler", "qabot", "reports", "sqlalchemy", "aiohttp",
              "botbuilder", "botframework", "apscheduler"),
    "qa": ("store", "cards", "bot", "flows", "scheduler", "qabot", "reports", "sqlalchemy",
           "aiohttp", "asyncpg", "aiosqlite", "botbuilder", "botframework", "apscheduler"),
    "scheduler": ("flows", "bot", "cards", "reports"),
    "bot": ("flows", "scheduler", "reports"),
    "flows": ("qabot", "botbuilder", "botframework", "apscheduler"),
    "reports": ("bot", "flows", "cards", "scheduler", "qabot"),
}
#: Libraries allowed in one folder only: the Teams SDK in bot/, APScheduler in scheduler/.
ONLY_IN = {"botbuilder": "bot", "botframework": "bot", "msrest": "bot", "jwt": "bot",
           "apscheduler": "scheduler"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "versions" in path.parts:  # Alembic revisions: generated, import alembic only
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, package: str) -> Iterator[str]:
    """Dotted names imported at run time (TYPE_CHECKING blocks skipped)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (name for child in node.orelse for name in _imports(child, package))
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1],
                                 *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in MODULES else base
        else:
            yield from _imports(node, package)


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges[name] = {imp for imp in _imports(tree, package) if imp != "__future__"}
    return edges


EDGES = _edges()


def _internal(target: str) -> str | None:
    """The project module an import names (its longest known prefix), if any."""
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in MODULES:
            return candidate
    return None


def test_every_service_package_is_installed_and_walked() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    installed = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    on_disk = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()
               and p.name not in ("tests", "bench")}
    assert installed == on_disk == set(PACKAGES)


def test_no_import_circles() -> None:
    graph = {m: {t for imp in deps if (t := _internal(imp)) and t != m}
             for m, deps in EDGES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert circles == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_forbidden_arrow(layer: str) -> None:
    wrong = sorted(f"{module} -> {imp}" for module, deps in EDGES.items()
                   if module.split(".")[0] == layer for imp in deps
                   if imp.split(".")[0] in FORBIDDEN[layer])
    assert wrong == []


@pytest.mark.parametrize("library", sorted(ONLY_IN))
def test_libraries_stay_in_their_folder(library: str) -> None:
    home = ONLY_IN[library]
    wrong = sorted(f"{module} -> {imp}" for module, deps in EDGES.items() for imp in deps
                   if imp.split(".")[0] == library and module.split(".")[0] != home)
    assert wrong == []


def test_every_feature_module_is_a_flow_the_app_collects() -> None:
    from bot.router import Router
    from qabot.app import FLOWS
    from scheduler.jobs import Job

    modules = {p.stem for p in (ROOT / "flows").glob("*.py")} - {"__init__", "base"}
    assert {f.__name__.removeprefix("flows.") for f in FLOWS} == modules
    for flow in FLOWS:
        assert isinstance(flow.router, Router), flow.__name__
        assert isinstance(flow.jobs, tuple), flow.__name__
        assert all(isinstance(j, Job) for j in flow.jobs), flow.__name__


def test_the_walk_sees_the_arrows_it_checks() -> None:
    """Guard the guard: known arrows are found, TYPE_CHECKING ones are not."""
    assert "store.models" in EDGES["flows.audit_form"]
    assert "cards.messages" in EDGES["bot.handler"]
    assert "qabot.services" not in EDGES["bot.handler"]  # imported for typing only
