"""Harness for end-to-end tests against the Microsoft 365 Agents Playground.

The Playground (``@microsoft/m365agentsplayground``, pinned in ``package.json``) is the only
offline client that speaks the Teams channel to a bot, renders Adaptive Cards 1.5 and accepts
proactive messages on a mock connector. This module starts it against a bot port, drives its web
UI in Debian's headless Chromium through Python Playwright, and keeps everything on localhost.

Facts it relies on are recorded in ``/work/shared/notes/agents-playground.md``; the traps that
shaped the code are cited where they matter (port fallback, lost ChoiceSet picks, duplicate text
in the chat list and log panel, CDN font requests).

Nothing here is specific to the QA bot: a test supplies the bot (usually in-process, see
:func:`serve_bot`) and a :class:`MockTenant` whose current user is the person "at the keyboard".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from playwright.async_api import BrowserContext, Locator, Page, Playwright, Route
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

logger = logging.getLogger(__name__)

E2E_DIR = Path(__file__).resolve().parent
PLAYGROUND_PACKAGE_DIR = E2E_DIR / "node_modules" / "@microsoft" / "m365agentsplayground"
PLAYGROUND_CLI = PLAYGROUND_PACKAGE_DIR / "cli.js"
CHROMIUM_PATH = Path("/usr/bin/chromium")
ARTIFACTS_DIR = E2E_DIR / "artifacts"

#: Hosts the browser may talk to. Everything else is aborted so a test can never depend on, or
#: leak to, the network (the UI asks a CDN for fonts and an animation script; it works without).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

#: Flags from the notes: without the background-networking ones Chromium keeps dialling Google
#: services that the closed network refuses; the resolver rule makes any stray name fail fast.
#: Playwright adds --headless and --no-sandbox itself (headless=True, chromium_sandbox=False).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
)

# Selectors from the notes. The UI has no test ids, so these are pinned with the package version.
COMPOSER_SELECTOR = '[role="textbox"][contenteditable="true"]'
CARD_SELECTOR = ".ac-adaptiveCard"
#: Bot messages and card TextBlocks render as <p>; the same text also appears in the chat list
#: and the log panel (as <div>/<span>), and the user's own messages are <span>, so <p> is the
#: one element that means "the bot said this in the open chat".
#: The composer is a rich-text editor whose content is also a <p>, hence the exclusion.
BOT_TEXT_SELECTOR = "p:not([contenteditable] p)"

_LISTENING_RE = re.compile(r"Listening on (\d+)")


# --------------------------------------------------------------------------------------------
# Availability
# --------------------------------------------------------------------------------------------


def e2e_available() -> str | None:
    """Return why the end-to-end tests cannot run here, or ``None`` when they can.

    Tests call ``pytest.skip(reason)`` with it, so that a machine without the browser stack
    reports a clear, actionable skip rather than a confusing launch error.
    """
    if shutil.which("node") is None:
        return "node is not on PATH (install Node.js; then run `bash scripts/e2e-deps.sh`)"
    if not CHROMIUM_PATH.exists():
        return f"{CHROMIUM_PATH} is missing (run `bash scripts/e2e-deps.sh` as root)"
    if not PLAYGROUND_CLI.exists():
        return (
            f"{PLAYGROUND_PACKAGE_DIR.relative_to(E2E_DIR)} is missing "
            "(run `bash scripts/e2e-deps.sh`, which does `npm ci` in tests/e2e)"
        )
    return None


def free_port() -> int:
    """Ask the OS for a free TCP port on loopback.

    There is a small window before the caller binds it; the Playground's own fallback is
    detected in :func:`start_playground`, and a bot that loses the race fails loudly at bind.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Mock tenant (the Playground's yml config)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MockUser:
    """One user of the mock tenant.

    ``id`` is the Playground's channel id for the user (``user-id-0`` ...). It is what a bot sees
    as ``activity.from.id`` and what ``create_conversation`` must be given as the member id;
    ``aad_object_id`` and ``email`` are what the bot uses to link the user to staff records.
    """

    id: str
    name: str
    email: str
    aad_object_id: str
    given_name: str = ""
    surname: str = ""
    user_principal_name: str = ""

    def to_config(self) -> dict[str, str]:
        """Map to the yml keys. ``userPrincipleName`` (sic) is the Playground's spelling."""
        given, _, rest = self.name.partition(" ")
        return {
            "id": self.id,
            "name": self.name,
            "userPrincipleName": self.user_principal_name or self.email,
            "aadObjectId": self.aad_object_id,
            "givenName": self.given_name or given,
            "surname": self.surname or rest,
            "email": self.email,
        }


def _default_users() -> tuple[MockUser, ...]:
    """The Playground's stock five users (its own defaults), with stable ids."""
    names = ["Megan Bowen", "Adele Vance", "Isaiah Langer", "Patti Fernandez", "Lynne Robbins"]
    return tuple(
        MockUser(
            id=f"user-id-{i}",
            name=name,
            email=f"{name.split()[0].lower()}{name.split()[1][0].lower()}@example.com",
            aad_object_id=f"00000000-0000-0000-0000-00000000002{i}",
        )
        for i, name in enumerate(names, start=1)
    )


@dataclass(frozen=True)
class MockTenant:
    """A Python description of the Playground's mock tenant.

    The Playground has exactly one user at the keyboard (``current_user``) and five other
    users, one personal chat, one group chat and one team with at most one extra channel; the
    schema rejects anything else, so :meth:`validate` checks this before the process starts
    (a bad file otherwise shows up only as a startup error in its log).
    """

    tenant_id: str = "00000000-0000-0000-0000-000000000001"
    bot_id: str = "00000000-0000-0000-0000-000000000011"
    bot_name: str = "Test Bot"
    current_user: MockUser = field(
        default_factory=lambda: MockUser(
            id="user-id-0",
            name="Alex Wilber",
            email="alexw@example.com",
            aad_object_id="00000000-0000-0000-0000-000000000020",
        )
    )
    users: tuple[MockUser, ...] = field(default_factory=_default_users)
    personal_chat_id: str = "personal-chat-id"
    group_chat_id: str = "group-chat-id"
    group_chat_name: str = "Group Chat"
    team_id: str = "team-id"
    team_name: str = "My Team"
    team_aad_group_id: str = "00000000-0000-0000-0000-000000000031"
    #: (id, name) of the optional extra channel; the General channel's id is ``team_id``.
    channels: tuple[tuple[str, str], ...] = (("channel-announcements-id", "Announcements"),)

    def with_current_user(
        self,
        *,
        email: str,
        name: str,
        aad_object_id: str,
        member_id: str | None = None,
    ) -> MockTenant:
        """Return a copy whose person at the keyboard has this identity.

        The bot links staff by email, so a test makes the current user carry the email of the
        auditor in its staff data; the Playground member id stays ``user-id-0`` unless given.
        """
        user = MockUser(
            id=member_id or self.current_user.id,
            name=name,
            email=email,
            aad_object_id=aad_object_id,
        )
        return replace(self, current_user=user)

    @property
    def all_users(self) -> tuple[MockUser, ...]:
        """The current user first, then the other five."""
        return (self.current_user, *self.users)

    def user_by_email(self, email: str) -> MockUser:
        """Find a mock user by email (case-insensitive), to map a test's staff to Playground ids."""
        for user in self.all_users:
            if user.email.lower() == email.lower():
                return user
        raise KeyError(email)

    def validate(self) -> None:
        """Apply the Playground's schema and business rules, failing early with a clear message."""
        if len(self.users) != 5:
            raise ValueError(
                f"the Playground needs exactly 5 users besides the current one, got {len(self.users)}"
            )
        if len(self.channels) > 1:
            raise ValueError("the Playground supports at most one channel besides General")
        if len(self.bot_name) > 42:
            raise ValueError("the Playground limits the bot name to 42 characters")
        user_ids = [u.id for u in self.all_users]
        if len(set(user_ids)) != len(user_ids):
            raise ValueError(f"user ids must be unique: {user_ids}")
        conv_ids = [
            self.personal_chat_id,
            self.group_chat_id,
            self.team_id,
            *(c for c, _ in self.channels),
        ]
        if len(set(conv_ids)) != len(conv_ids):
            raise ValueError(f"chat, team and channel ids must be unique: {conv_ids}")

    def to_config(self) -> dict[str, Any]:
        """The yml document as a dict, keys in the Playground's order and spelling."""
        return {
            "version": "0.1.1",
            "tenantId": self.tenant_id,
            "bot": {"id": self.bot_id, "name": self.bot_name},
            "currentUser": self.current_user.to_config(),
            "users": [u.to_config() for u in self.users],
            "personalChat": {"id": self.personal_chat_id},
            "groupChat": {"id": self.group_chat_id, "name": self.group_chat_name},
            "team": {
                "id": self.team_id,
                "name": self.team_name,
                "aadGroupId": self.team_aad_group_id,
                "channels": [{"id": cid, "name": cname} for cid, cname in self.channels],
            },
        }

    def to_yaml(self) -> str:
        """Render the config as YAML without a YAML library.

        Every scalar is written as a JSON string, which is a valid YAML double-quoted scalar, so
        ids such as ``00000000-...`` or emails never get reinterpreted as numbers or dates.
        """
        lines = ["# Written by tests/e2e/playground.py (MockTenant); do not edit."]
        lines.extend(_yaml_lines(self.to_config(), 0))
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> Path:
        """Validate and write the yml file; return its path."""
        self.validate()
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path


def _yaml_lines(value: Mapping[str, Any], indent: int) -> list[str]:
    """Emit a block-style YAML mapping of str/dict/list-of-dict values (all the config needs)."""
    pad = " " * indent
    out: list[str] = []
    for key, item in value.items():
        if isinstance(item, Mapping):
            out.append(f"{pad}{key}:")
            out.extend(_yaml_lines(item, indent + 2))
        elif isinstance(item, list):
            if not item:
                out.append(f"{pad}{key}: []")
                continue
            out.append(f"{pad}{key}:")
            for entry in item:
                entry_lines = _yaml_lines(entry, indent + 4)
                out.append(f"{pad}  - {entry_lines[0].lstrip()}")
                out.extend(entry_lines[1:])
        else:
            out.append(f"{pad}{key}: {json.dumps(str(item))}")
    return out


# --------------------------------------------------------------------------------------------
# The Playground process
# --------------------------------------------------------------------------------------------


class PlaygroundError(RuntimeError):
    """The Playground did not start, or stopped answering."""


@dataclass
class PlaygroundServer:
    """A running Playground: its process, real UI port, files and tenant."""

    process: asyncio.subprocess.Process
    ui_port: int
    bot_endpoint: str
    tenant: MockTenant
    workdir: Path
    config_path: Path
    log_path: Path
    stdout_path: Path

    @property
    def url(self) -> str:
        """Where the web UI is served."""
        return f"http://localhost:{self.ui_port}/"

    @property
    def service_url(self) -> str:
        """The mock connector's service URL, as sent in every activity's ``serviceUrl``."""
        return f"http://localhost:{self.ui_port}/_connector"

    @property
    def current_user(self) -> MockUser:
        """The user driving the UI: map a test's auditor to ``current_user.id`` (``user-id-0``)."""
        return self.tenant.current_user

    def log_text(self) -> str:
        """The Playground's own log: startup, config and connection messages (not the activity
        traffic, which only the UI's log panel shows). Copied to artifacts when a test fails."""
        return _read(self.log_path)

    async def ping(self, session: aiohttp.ClientSession) -> bool:
        """True when ``/_debug/ping`` answers ``pong`` (the readiness probe from the notes)."""
        try:
            async with session.get(
                f"http://localhost:{self.ui_port}/_debug/ping",
                timeout=aiohttp.ClientTimeout(total=2),
            ) as resp:
                return resp.status == 200 and (await resp.text()).strip() == "pong"
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM the process by pid (it exits at once), SIGKILL if it lingers."""
        await _terminate(self.process, "playground", timeout_s)


def _prepare_workdir(workdir: Path, tenant: MockTenant) -> Path:
    """Create the Playground's working directory and write its config; return the config path."""
    workdir.mkdir(parents=True, exist_ok=True)
    return tenant.write(workdir / "m365agentsplayground.yml")


def _read(path: Path) -> str:
    """Read a small text file that may not exist yet (the Playground's stdout, polled)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


async def _terminate(process: asyncio.subprocess.Process, what: str, timeout_s: float) -> None:
    """Stop one child process we started, by its pid only."""
    if process.returncode is not None:
        return
    logger.info("stopping %s pid %s", what, process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        logger.warning("%s pid %s ignored SIGTERM for %.1fs; killing", what, process.pid, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), timeout_s)


async def start_playground(
    bot_port: int,
    tenant: MockTenant,
    workdir: Path,
    *,
    ui_port: int | None = None,
    bot_path: str = "/api/messages",
    timeout_s: float = 30.0,
) -> PlaygroundServer:
    """Start the Playground for a bot on ``localhost:bot_port`` and wait until it answers.

    The config, log and stdout go into ``workdir`` (also its cwd, so nothing lands in the
    repository). If the UI port is taken the Playground silently picks another and prints
    ``Listening on N``; the real port is read from that line, never assumed.
    """
    config_path = _prepare_workdir(workdir, tenant)
    log_path = workdir / "playground.log"
    stdout_path = workdir / "playground.stdout"
    requested_port = ui_port or free_port()
    bot_endpoint = f"http://localhost:{bot_port}{bot_path}"
    env = {
        **os.environ,
        "TEAMSAPPTESTER_BROWSER": "none",
        "APPLICATION_INSIGHTS_NO_STATSBEAT": "true",
        "M365_AGENTS_PLAYGROUND_CONFIG_PATH": str(config_path),
        "M365_AGENTS_PLAYGROUND_LOGFILE": str(log_path),
    }
    node = shutil.which("node") or "node"
    argv = [
        node, str(PLAYGROUND_CLI),
        "-e", bot_endpoint,
        "-c", "msteams",
        "-p", str(requested_port),
        "--disable-telemetry",
    ]  # fmt: skip
    # stdout goes to a file, not a pipe: nobody drains a pipe after startup and a full pipe
    # would block the Playground mid-test.
    with stdout_path.open("wb") as stdout_file:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    logger.info("started playground pid %s: %s", process.pid, " ".join(argv))
    server: PlaygroundServer | None = None
    deadline = time.monotonic() + timeout_s
    try:
        actual_port: int | None = None
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if process.returncode is not None:
                    raise PlaygroundError(
                        f"playground exited with {process.returncode}:\n{_read(stdout_path)}"
                    )
                if actual_port is None:
                    match = _LISTENING_RE.search(_read(stdout_path))
                    if match:
                        actual_port = int(match.group(1))
                        if actual_port != requested_port:
                            logger.warning(
                                "playground port %s was taken; it moved to %s",
                                requested_port,
                                actual_port,
                            )
                        server = PlaygroundServer(
                            process=process,
                            ui_port=actual_port,
                            bot_endpoint=bot_endpoint,
                            tenant=tenant,
                            workdir=workdir,
                            config_path=config_path,
                            log_path=log_path,
                            stdout_path=stdout_path,
                        )
                if server is not None and await server.ping(session):
                    logger.info("playground ready on %s", server.url)
                    return server
                await asyncio.sleep(0.1)
        raise PlaygroundError(
            f"playground not ready within {timeout_s:.0f}s:\n{_read(stdout_path)}"
        )
    except BaseException:
        await _terminate(process, "playground", 5.0)
        raise


# --------------------------------------------------------------------------------------------
# A bot on localhost
# --------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve_bot(
    handler: Any,
    port: int,
    *,
    path: str = "/api/messages",
    extra_routes: Iterable[web.RouteDef] = (),
) -> AsyncIterator[web.AppRunner]:
    """Serve ``handler`` (an aiohttp request handler) on ``localhost:port`` for the block.

    In-process, so a test can reach into the bot (e.g. to send a proactive message) and its
    failures appear in the test's own traceback and log capture.
    """
    app = web.Application()
    app.router.add_post(path, handler)
    app.router.add_routes(list(extra_routes))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host="localhost", port=port).start()
        logger.info("bot listening on http://localhost:%s%s", port, path)
        yield runner
    finally:
        await runner.cleanup()


class _LocalModeConfig:
    """botbuilder configuration for local mode: empty app id and password.

    The Playground sends no JWT, so the bot must skip authentication, which botbuilder does
    exactly when the app id is empty.
    """

    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


def local_cloud_adapter() -> CloudAdapter:
    """A botbuilder ``CloudAdapter`` in local mode (no auth), as the Playground requires."""
    return CloudAdapter(ConfigurationBotFrameworkAuthentication(_LocalModeConfig()))


# --------------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------------


async def _offline_route(route: Route) -> None:
    """Let localhost through, abort everything else (fonts from a CDN, anything unexpected)."""
    host = urlsplit(route.request.url).hostname or ""
    if host in LOCAL_HOSTS:
        await route.continue_()
    else:
        logger.debug("blocked non-local request %s", route.request.url)
        await route.abort("blockedbyclient")


async def launch_offline_chromium(
    playwright: Playwright,
    user_data_dir: Path,
    *,
    viewport: Mapping[str, int] | None = None,
    timeout_s: float = 30.0,
) -> BrowserContext:
    """Launch Debian's Chromium headless with a fresh profile and no network but localhost.

    A persistent context is the only way Playwright accepts ``--user-data-dir`` (it creates the
    directory); pass a new one per call so no state leaks between tests.
    """
    context = await playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=str(CHROMIUM_PATH),
        headless=True,
        args=list(CHROMIUM_ARGS),
        viewport=dict(viewport or {"width": 1280, "height": 900}),
        timeout=timeout_s * 1000,
        locale="en-GB",
        timezone_id="Europe/London",
    )
    await context.route("**/*", _offline_route)
    return context


# --------------------------------------------------------------------------------------------
# Page helpers
# --------------------------------------------------------------------------------------------


class PlaygroundPage:
    """Async helpers over the Playground's chat UI.

    All waits take a timeout in seconds. Selectors are pinned to Playground 0.2.28 (see the
    module constants); if an upgrade breaks a test, look here first.
    """

    def __init__(
        self, page: Page, base_url: str, *, artifacts_dir: Path = ARTIFACTS_DIR, prefix: str = ""
    ) -> None:
        self.page = page
        self.base_url = base_url
        self.artifacts_dir = artifacts_dir
        self.prefix = prefix
        self._shots = 0
        artifacts_dir.mkdir(parents=True, exist_ok=True)

    # -- navigation -------------------------------------------------------------------------

    async def open(self, timeout_s: float = 20.0) -> None:
        """Load the UI and wait for the composer. Each load starts an empty transcript and makes
        the Playground resend the install events, so the bot's welcome follows shortly."""
        await self.page.goto(self.base_url, timeout=timeout_s * 1000, wait_until="domcontentloaded")
        await self.composer.wait_for(state="visible", timeout=timeout_s * 1000)

    async def wait_for_first_bot_message(self, timeout_s: float = 20.0) -> str:
        """Wait for the first thing the bot says (its welcome) and return its text."""
        first = self.page.locator(BOT_TEXT_SELECTOR).filter(has_text=re.compile(r"\S")).first
        await first.wait_for(state="visible", timeout=timeout_s * 1000)
        return (await first.inner_text()).strip()

    # -- chatting ---------------------------------------------------------------------------

    @property
    def composer(self) -> Locator:
        """The message box; ``.last`` because a channel shows two editors after the first post."""
        return self.page.locator(COMPOSER_SELECTOR).last

    async def send(self, text: str, timeout_s: float = 10.0) -> None:
        """Type ``text`` into the composer and press Enter, as a person would."""
        box = self.composer
        await box.click(timeout=timeout_s * 1000)
        await box.fill(text, timeout=timeout_s * 1000)
        await box.press("Enter", timeout=timeout_s * 1000)

    def bot_text(self, substring: str) -> Locator:
        """The newest bot-authored paragraph containing ``substring``."""
        return self.page.locator(BOT_TEXT_SELECTOR, has_text=substring).last

    async def wait_for_bot_text(self, substring: str, timeout_s: float = 10.0) -> Locator:
        """Wait until the bot has said something containing ``substring`` in the open chat."""
        locator = self.bot_text(substring)
        await locator.wait_for(state="visible", timeout=timeout_s * 1000)
        return locator

    async def bot_texts(self) -> list[str]:
        """All bot paragraphs currently shown, oldest first (useful in failure messages)."""
        return [t.strip() for t in await self.page.locator(BOT_TEXT_SELECTOR).all_inner_texts()]

    # -- adaptive cards ---------------------------------------------------------------------

    def cards(self) -> Locator:
        """Every rendered Adaptive Card in the open chat."""
        return self.page.locator(CARD_SELECTOR)

    def last_card(self) -> Locator:
        """The newest Adaptive Card."""
        return self.cards().last

    async def wait_for_card(
        self, containing: str | None = None, timeout_s: float = 10.0
    ) -> Locator:
        """Wait for a card (optionally one containing some text) and return the newest such."""
        locator = self.cards() if containing is None else self.cards().filter(has_text=containing)
        card = locator.last
        await card.wait_for(state="visible", timeout=timeout_s * 1000)
        return card

    def _card_control(self, role: str, label: str | Locator, card: Locator | None) -> Locator:
        """Resolve a control by accessible name (the card input's label) within a card."""
        if not isinstance(label, str):
            return label
        scope = card if card is not None else self.last_card()
        return scope.get_by_role(role, name=label)  # type: ignore[arg-type]

    async def pick(
        self,
        label_or_card_input: str | Locator,
        option: str,
        *,
        card: Locator | None = None,
        settle: float = 0.4,
        attempts: int = 5,
        timeout_s: float = 10.0,
    ) -> int:
        """Choose ``option`` in a compact Input.ChoiceSet (a Fluent combobox) and make it stick.

        A freshly rendered card re-renders once shortly after it appears, wiping a selection
        made too early (about 1 run in 3 when fast). So: wait ``settle`` seconds, pick, read the
        value back, and retry until it reads back (bounded by ``attempts`` and ``timeout_s``).
        Returns the number of attempts it took, so flakiness shows up in logs.
        """
        combo = self._card_control("combobox", label_or_card_input, card)
        deadline = time.monotonic() + timeout_s
        await combo.wait_for(state="visible", timeout=timeout_s * 1000)
        await asyncio.sleep(settle)
        last_seen = ""
        for attempt in range(1, attempts + 1):
            remaining_ms = max(500.0, (deadline - time.monotonic()) * 1000)
            await combo.click(timeout=remaining_ms)
            await self.page.get_by_role("option", name=option, exact=True).click(
                timeout=remaining_ms
            )
            # Give a pending re-render the chance to wipe the pick before trusting the read-back.
            await asyncio.sleep(settle)
            last_seen = await self._combobox_value(combo)
            if last_seen == option:
                logger.info("picked %r (attempt %d)", option, attempt)
                return attempt
            logger.info(
                "pick %r did not stick (read %r); attempt %d/%d",
                option,
                last_seen,
                attempt,
                attempts,
            )
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"could not pick {option!r}: combobox reads {last_seen!r}")

    @staticmethod
    async def _combobox_value(combo: Locator) -> str:
        """What a combobox shows as chosen: an <input>'s value, else the button's text."""
        tag = await combo.evaluate("el => el.tagName.toLowerCase()")
        if tag == "input":
            return (await combo.input_value()).strip()
        return (await combo.inner_text()).strip()

    async def fill(
        self,
        input_label_or_placeholder: str | Locator,
        text: str,
        *,
        card: Locator | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        """Fill an Input.Text found by its label, else its placeholder, within a card."""
        if isinstance(input_label_or_placeholder, str):
            scope = card if card is not None else self.last_card()
            by_label = scope.get_by_label(input_label_or_placeholder)
            by_placeholder = scope.get_by_placeholder(input_label_or_placeholder)
            target = by_label.or_(by_placeholder).first
        else:
            target = input_label_or_placeholder
        await target.fill(text, timeout=timeout_s * 1000)
        value = await target.input_value(timeout=timeout_s * 1000)
        if value != text:
            raise AssertionError(f"input reads {value!r} after filling {text!r}")

    async def click(
        self, button_name: str, *, card: Locator | None = None, timeout_s: float = 10.0
    ) -> None:
        """Click a button by its accessible name (in ``card`` if given, else anywhere)."""
        scope: Page | Locator = card if card is not None else self.page
        await scope.get_by_role("button", name=button_name).last.click(timeout=timeout_s * 1000)

    # -- evidence ---------------------------------------------------------------------------

    async def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        """Save a PNG under ``tests/e2e/artifacts/`` (gitignored) and return its path.

        Names are numbered in call order so a test's screenshots sort as a storyboard.
        """
        self._shots += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "shot"
        prefix = f"{self.prefix}-" if self.prefix else ""
        path = self.artifacts_dir / f"{prefix}{self._shots:02d}-{safe}.png"
        await self.page.screenshot(path=str(path), full_page=full_page, timeout=10_000)
        logger.info("screenshot %s", path)
        return path


async def wait_until(
    predicate: Any, timeout_s: float, *, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll a sync or async predicate until truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:.1f}s waiting for {what}")
        await asyncio.sleep(interval)


__all__ = [
    "ARTIFACTS_DIR",
    "CHROMIUM_ARGS",
    "MockTenant",
    "MockUser",
    "PlaygroundError",
    "PlaygroundPage",
    "PlaygroundServer",
    "PlaywrightTimeoutError",
    "e2e_available",
    "free_port",
    "launch_offline_chromium",
    "local_cloud_adapter",
    "serve_bot",
    "start_playground",
    "wait_until",
]
