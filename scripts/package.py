"""Build the Teams app package: ``dist/qabot-teams-app.zip`` (``make package``).

The zip holds ``manifest.json``, ``color.png`` and ``outline.png`` at its root, which is
what Teams admin centre ("Upload an app") and Developer Portal accept.

``appPackage/manifest.json`` is a template: every string that is exactly ``${{NAME}}`` is
replaced by a value from the environment (the JSON is parsed and walked, never edited as
text), and ``bots[0].commandLists`` is filled from the commands the bot's router really
registers, so the compose-box suggestions can never name a command the bot does not
understand. The result is validated against the vendored manifest schema before the zip
is written. Environment:

  MicrosoftAppId          the Azure Bot's app (client) id (required; the manifest's botId)
  TEAMS_APP_ID            the Teams app id (default: MicrosoftAppId)
  QABOT_PUBLIC_HOSTNAME   the bot service's host name, e.g. qabot-lbh.azurewebsites.net
  QABOT_DEVELOPER_URL     https URL of the council's support page for the app
  QABOT_PRIVACY_URL       https URL of the privacy notice
  QABOT_TERMS_URL         https URL of the terms of use
  QABOT_DEVELOPER_NAME    publisher name shown in Teams (default "Children's Services QA")
  QABOT_APP_VERSION       manifest version (default: the version in pyproject.toml); raise
                          it for every upload that replaces an earlier package
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.router import Command

ROOT = Path(__file__).resolve().parents[1]
APP_PACKAGE = ROOT / "appPackage"
TEMPLATE = APP_PACKAGE / "manifest.json"
SCHEMA_FILE = APP_PACKAGE / "schema" / "MicrosoftTeams.v1.30.schema.json"
ICONS = ("color.png", "outline.png")
DEFAULT_OUT = ROOT / "dist" / "qabot-teams-app.zip"

# The schema allows 12 per list, but older Teams clients show at most 10.
MAX_COMMANDS = 10
DEFAULT_DEVELOPER_NAME = "Children's Services QA"

_PLACEHOLDER = re.compile(r"^\$\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_HOSTNAME = re.compile(r"^(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same inputs give the same bytes


class PackageError(Exception):
    """The package cannot be built; the message says every reason at once."""


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def package_values(env: Mapping[str, str]) -> dict[str, str]:
    """The placeholder values from the environment, checked, or every problem at once."""
    get = lambda name: env.get(name, "").strip()  # noqa: E731
    problems: list[str] = []
    bot_id = get("MicrosoftAppId")
    app_id = get("TEAMS_APP_ID") or bot_id
    if not bot_id:
        problems.append("MicrosoftAppId is not set (the Azure Bot's app id)")
    elif not _GUID.match(bot_id):
        problems.append(f"MicrosoftAppId={bot_id!r} is not a GUID")
    if app_id and not _GUID.match(app_id):
        problems.append(f"TEAMS_APP_ID={app_id!r} is not a GUID")
    host = get("QABOT_PUBLIC_HOSTNAME")
    if not host:
        problems.append("QABOT_PUBLIC_HOSTNAME is not set (the bot service's host name)")
    elif not _HOSTNAME.match(host):
        problems.append(f"QABOT_PUBLIC_HOSTNAME={host!r}: give a host name only, "
                        "without https:// or a path")
    urls = {}
    for name in ("QABOT_DEVELOPER_URL", "QABOT_PRIVACY_URL", "QABOT_TERMS_URL"):
        value = get(name)
        if not value:
            problems.append(f"{name} is not set")
        elif not value.startswith("https://"):
            problems.append(f"{name}={value!r}: Teams needs an https:// URL")
        urls[name] = value
    developer = get("QABOT_DEVELOPER_NAME") or DEFAULT_DEVELOPER_NAME
    if len(developer) > 32:
        problems.append(f"QABOT_DEVELOPER_NAME is {len(developer)} characters; Teams allows 32")
    version = get("QABOT_APP_VERSION") or project_version()
    if not re.match(r"^\d+\.\d+\.\d+$", version):
        problems.append(f"version {version!r} is not MAJOR.MINOR.PATCH")
    if problems:
        raise PackageError("cannot build the Teams app package:\n  - " + "\n  - ".join(problems))
    return {
        "MicrosoftAppId": bot_id,
        "TEAMS_APP_ID": app_id,
        "QABOT_PUBLIC_HOSTNAME": host,
        "QABOT_DEVELOPER_NAME": developer,
        "APP_VERSION": version,
        **urls,
    }


def substitute(node: Any, values: Mapping[str, str]) -> Any:
    """Replace whole-string ``${{NAME}}`` placeholders anywhere in parsed JSON."""
    if isinstance(node, dict):
        return {key: substitute(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [substitute(value, values) for value in node]
    if isinstance(node, str):
        found = _PLACEHOLDER.match(node)
        if found:
            if found.group(1) not in values:
                raise PackageError(f"the manifest template names an unknown value {node}")
            return values[found.group(1)]
        if "${{" in node:
            raise PackageError(f"placeholders must be a whole JSON string: {node!r}")
    return node


def registered_commands() -> list[Command]:
    """The text commands the running bot would register (flows register their own)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from qabot.app import build_router

    return list(build_router().commands)


def _entry(command: Command) -> dict[str, str]:
    title = " ".join(command.words)
    description = command.summary[:1].upper() + command.summary[1:]
    if command.usage.lower() != title:
        description = f"{description}. Usage: {command.usage}"
    return {"title": title[:128], "description": description[:4000]}


def command_lists(commands: Iterable[Command]) -> list[dict[str, Any]]:
    """One list for 1:1 chats (every command) and one for channels and group chats."""
    everyone = [c for c in commands if c.roles is None]
    restricted = [c for c in commands if c.roles is not None]
    personal = [_entry(c) for c in (everyone + restricted)[:MAX_COMMANDS]]
    # Channels and group chats: only commands that never answer with case-level detail
    # (some are for a role, e.g. "digests here" for the QA team; the router checks it).
    shared = [_entry(c) for c in everyone + restricted if c.anywhere]
    lists: list[dict[str, Any]] = [{"scopes": ["personal"], "commands": personal}]
    if shared:
        lists.append({"scopes": ["team", "groupChat"], "commands": shared})
    return lists


def build_manifest(template: Mapping[str, Any], values: Mapping[str, str],
                   commands: Iterable[Command]) -> dict[str, Any]:
    manifest: dict[str, Any] = substitute(dict(template), values)
    manifest["bots"][0]["commandLists"] = command_lists(commands)
    return manifest


def schema_errors(manifest: Mapping[str, Any], schema_file: Path = SCHEMA_FILE) -> list[str]:
    """Validation errors against the vendored schema (draft-07 rules: it uses ``const``)."""
    import jsonschema

    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}"
            for err in sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))]


def write_zip(manifest: Mapping[str, Any], out: Path, icons_dir: Path = APP_PACKAGE) -> Path:
    """Write the zip with fixed timestamps, so rebuilding the same inputs changes nothing."""
    out.parent.mkdir(parents=True, exist_ok=True)
    files = [("manifest.json", (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
              .encode("utf-8"))]
    files += [(name, (icons_dir / name).read_bytes()) for name in ICONS]
    tmp = out.with_suffix(out.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    tmp.replace(out)
    return out


def build(env: Mapping[str, str], out: Path = DEFAULT_OUT,
          commands: Iterable[Command] | None = None) -> Path:
    """Resolve, fill, validate and zip; raises PackageError with every reason."""
    values = package_values(env)
    template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    manifest = build_manifest(template, values,
                              registered_commands() if commands is None else commands)
    errors = schema_errors(manifest)
    if errors:
        raise PackageError("the manifest does not match the Teams schema:\n  - "
                           + "\n  - ".join(errors))
    return write_zip(manifest, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Teams app package (zip).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        path = build(os.environ, args.out)
    except PackageError as err:
        sys.stderr.write(f"{err}\n")
        return 2
    sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
