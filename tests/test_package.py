"""The Teams app package: `make package` output checked against the vendored schema."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "appPackage" / "schema" / "MicrosoftTeams.v1.30.schema.json"

ENV = {
    "MicrosoftAppId": "6f1c2b3a-9d4e-4b6f-8a1d-0c5e7f9a2b41",
    "TEAMS_APP_ID": "0e5a3c1d-2b4f-4a6e-9c8d-7f1e2d3c4b5a",
    "QABOT_PUBLIC_HOSTNAME": "qabot-council.azurewebsites.net",
    "QABOT_DEVELOPER_URL": "https://www.council.example/qa-bot",
    "QABOT_PRIVACY_URL": "https://www.council.example/privacy/qa-bot",
    "QABOT_TERMS_URL": "https://www.council.example/terms/qa-bot",
}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package = _load("package")
icons = _load("icons")


def read_png(data: bytes) -> tuple[int, int, int, list[list[tuple[int, ...]]]]:
    """(width, height, colour type, rows of pixels) for 8-bit RGB/RGBA PNGs, any filter."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        ihdr = body if kind == b"IHDR" else ihdr
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 4 if colour == 6 else 3
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:(x + 1) * bpp]) for x in range(width)])
        prev = line
    return width, height, colour, rows


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = package.build(ENV, tmp_path_factory.mktemp("dist") / "qabot-teams-app.zip")
    with zipfile.ZipFile(out) as zf:
        return out, json.loads(zf.read("manifest.json"))


def test_zip_holds_the_manifest_and_icons_at_its_root(built) -> None:
    out, _ = built
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]


def test_manifest_is_valid_against_the_vendored_teams_schema(built) -> None:
    _, manifest = built
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The schema says draft-04 but uses const and if/then: draft-07 checks those as well.
    for validator_class in (jsonschema.Draft4Validator, jsonschema.Draft7Validator):
        validator_class(schema, format_checker=jsonschema.FormatChecker()).validate(manifest)
    assert manifest["manifestVersion"] == schema["properties"]["manifestVersion"]["const"]
    assert manifest["$schema"].endswith(f"/v{manifest['manifestVersion']}/MicrosoftTeams.schema.json")


def test_ids_and_urls_come_from_the_environment(built) -> None:
    _, manifest = built
    assert "${{" not in json.dumps(manifest)
    assert manifest["id"] == ENV["TEAMS_APP_ID"]
    assert manifest["bots"][0]["botId"] == ENV["MicrosoftAppId"]
    assert manifest["validDomains"] == [ENV["QABOT_PUBLIC_HOSTNAME"]]
    assert manifest["developer"]["privacyUrl"] == ENV["QABOT_PRIVACY_URL"]
    assert manifest["developer"]["termsOfUseUrl"] == ENV["QABOT_TERMS_URL"]
    assert manifest["developer"]["websiteUrl"] == ENV["QABOT_DEVELOPER_URL"]
    assert manifest["version"] == package.project_version()


def test_the_teams_app_id_defaults_to_the_bot_id(tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "TEAMS_APP_ID"}
    with zipfile.ZipFile(package.build(env, tmp_path / "p.zip", commands=[])) as zf:
        assert json.loads(zf.read("manifest.json"))["id"] == ENV["MicrosoftAppId"]


def test_the_bot_is_conversational_in_every_scope_and_takes_no_files(built) -> None:
    _, manifest = built
    [bot] = manifest["bots"]
    assert sorted(bot["scopes"]) == ["groupChat", "personal", "team"]
    assert bot["supportsFiles"] is False and bot["isNotificationOnly"] is False


def test_manifest_commands_are_commands_the_router_registers(built) -> None:
    from qabot.app import build_router

    _, manifest = built
    commands = build_router().commands
    registered = {" ".join(c.words) for c in commands}
    lists = {tuple(sorted(cl["scopes"])): [c["title"] for c in cl["commands"]]
             for cl in manifest["bots"][0]["commandLists"]}
    for titles in lists.values():
        assert set(titles) <= registered
    # every command is suggested 1:1; in channels and group chats only the channel-safe ones
    assert set(lists[("personal",)]) == registered or len(lists[("personal",)]) == package.MAX_COMMANDS
    anywhere = {" ".join(c.words) for c in commands if c.anywhere}
    assert set(lists[("groupChat", "team")]) == anywhere
    assert "help" in lists[("groupChat", "team")]
    usage = {" ".join(c.words): c.usage for c in commands}
    for cl in manifest["bots"][0]["commandLists"]:
        for entry in cl["commands"]:
            if usage[entry["title"]] != entry["title"]:  # e.g. delegate CASE_REF to EMAIL
                assert usage[entry["title"]] in entry["description"]


def test_icon_sizes_and_an_outline_that_is_white_on_transparent(built) -> None:
    out, manifest = built
    with zipfile.ZipFile(out) as zf:
        colour = read_png(zf.read(manifest["icons"]["color"]))
        outline = read_png(zf.read(manifest["icons"]["outline"]))
    assert colour[:2] == (192, 192)
    width, height, colour_type, rows = outline
    assert (width, height, colour_type) == (32, 32, 6)  # RGBA
    pixels = [p for row in rows for p in row]
    assert all(p[:3] == (255, 255, 255) for p in pixels if p[3] > 0), "outline must be white"
    alphas = [p[3] for p in pixels]
    assert alphas.count(0) > len(pixels) // 2, "the background must be transparent"
    assert max(alphas) == 255
    assert manifest["accentColor"] == "#" + "".join(f"{c:02X}" for c in icons.ACCENT)


def test_committed_icons_are_what_the_generator_draws() -> None:
    assert (ROOT / "appPackage" / "color.png").read_bytes() == icons.color_icon()
    assert (ROOT / "appPackage" / "outline.png").read_bytes() == icons.outline_icon()


def test_the_same_inputs_build_the_same_bytes(tmp_path: Path) -> None:
    a = package.build(ENV, tmp_path / "a.zip", commands=[])
    b = package.build(ENV, tmp_path / "b.zip", commands=[])
    assert a.read_bytes() == b.read_bytes()


def test_missing_and_bad_settings_are_all_reported_at_once() -> None:
    with pytest.raises(package.PackageError) as err:
        package.package_values({"MicrosoftAppId": "not-a-guid",
                                "QABOT_PUBLIC_HOSTNAME": "https://host.example/path",
                                "QABOT_PRIVACY_URL": "http://insecure.example/privacy"})
    text = str(err.value)
    for fragment in ("MicrosoftAppId='not-a-guid' is not a GUID", "host name only",
                     "QABOT_PRIVACY_URL='http://insecure.example/privacy'",
                     "QABOT_TERMS_URL is not set", "QABOT_DEVELOPER_URL is not set"):
        assert fragment in text


def test_a_template_placeholder_without_a_value_is_refused() -> None:
    with pytest.raises(package.PackageError, match="unknown value"):
        package.substitute({"a": ["${{NOPE}}"]}, {})
    with pytest.raises(package.PackageError, match="whole JSON string"):
        package.substitute({"a": "https://${{HOST}}/x"}, {"HOST": "h"})


def test_the_script_as_make_runs_it(tmp_path: Path) -> None:
    out = tmp_path / "dist" / "qabot-teams-app.zip"
    base = {k: v for k, v in os.environ.items() if k not in ENV}
    script = str(ROOT / "scripts" / "package.py")
    refused = subprocess.run([sys.executable, script, "--out", str(out)], env=base,
                             capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 2 and "MicrosoftAppId is not set" in refused.stderr
    assert not out.exists()
    done = subprocess.run([sys.executable, script, "--out", str(out)], env={**base, **ENV},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as zf:
        assert json.loads(zf.read("manifest.json"))["bots"][0]["botId"] == ENV["MicrosoftAppId"]
