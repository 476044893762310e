"""Service settings, read once from the environment.

Bot Framework settings keep their usual names (``MicrosoftAppId`` and friends) so that
an Azure Bot Service deployment configures this bot exactly as it would any other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

APP_TYPES = ("MultiTenant", "SingleTenant", "UserAssignedMSI")
#: New Azure Bot registrations are single-tenant (multi-tenant ones can no longer be made).
DEFAULT_APP_TYPE = "SingleTenant"


def default_database_path() -> Path:
    """The SQLite file used when DATABASE_URL is not set: in the user's data directory
    (``~/.local/share/qabot/qabot.db`` on Linux), never the folder the command ran in."""
    return platformdirs.user_data_path("qabot", appauthor=False) / "qabot.db"


def default_database_url() -> str:
    return f"sqlite+aiosqlite:///{default_database_path()}"


#: Kept for callers that build Settings by hand; ``from_env`` reads the data directory.
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///qabot.db"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def describe_database(url: str) -> str:
    """Where the data is, for people: the SQLite file, or the server URL without password."""
    from sqlalchemy.engine import make_url

    path = sqlite_file(url)
    if path is not None:
        return f"SQLite file {path.resolve()}"
    return make_url(url).render_as_string(hide_password=True)


class SettingsError(ValueError):
    """An environment variable has a value the service cannot use."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a whole number") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r}: must be greater than zero")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment."""

    database_url: str = DEFAULT_DATABASE_URL
    port: int = 3978
    host: str = "0.0.0.0"
    app_id: str = ""
    app_password: str = ""
    app_type: str = DEFAULT_APP_TYPE
    app_tenant_id: str = ""
    allowed_tenants: frozenset[str] = field(default_factory=frozenset)
    framework_path: str = ""
    max_body_bytes: int = 256 * 1024
    tenant_rate: float = 25.0
    outbox_poll_seconds: float = 1.0
    outbox_max_attempts: int = 8
    outbox_concurrency: int = 8
    scheduler_enabled: bool = True
    metrics_token: str = ""
    log_format: str = "json"
    #: Where the Bot Framework's token-signing keys are described (Bot Framework's own
    #: setting name); empty: Microsoft's public cloud. For sovereign clouds and tests.
    openid_metadata_url: str = ""

    @property
    def local_mode(self) -> bool:
        """No app id means no JWT checks: only for the Agents Playground and tests."""
        return not self.app_id

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        tenants = frozenset(
            t.strip() for t in env.get("QABOT_ALLOWED_TENANTS", "").split(",") if t.strip()
        )
        app_id = env.get("MicrosoftAppId", "").strip()
        app_type = env.get("MicrosoftAppType", "").strip() or DEFAULT_APP_TYPE
        if app_type not in APP_TYPES:
            raise SettingsError(f"MicrosoftAppType={app_type!r}: expected one of "
                                f"{', '.join(APP_TYPES)}")
        if app_id and app_type == "SingleTenant" and not env.get("MicrosoftAppTenantId", "").strip():
            raise SettingsError("MicrosoftAppType=SingleTenant needs MicrosoftAppTenantId "
                                "(the council's Microsoft Entra tenant id)")
        if app_id and app_type != "UserAssignedMSI" and not env.get("MicrosoftAppPassword", ""):
            raise SettingsError("MicrosoftAppId is set but MicrosoftAppPassword is empty")
        log_format = env.get("QABOT_LOG_FORMAT", "json").strip() or "json"
        if log_format not in ("json", "text"):
            raise SettingsError(f"QABOT_LOG_FORMAT={log_format!r}: expected json or text")
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or default_database_url(),
            port=_int(env, "PORT", 3978),
            host=env.get("HOST", "0.0.0.0").strip() or "0.0.0.0",
            app_id=app_id,
            app_password=env.get("MicrosoftAppPassword", "").strip(),
            app_type=app_type,
            app_tenant_id=env.get("MicrosoftAppTenantId", "").strip(),
            allowed_tenants=tenants,
            framework_path=env.get("QABOT_FRAMEWORK", "").strip(),
            max_body_bytes=_int(env, "QABOT_MAX_BODY_BYTES", 256 * 1024),
            tenant_rate=_float(env, "QABOT_TENANT_RATE", 25.0),
            outbox_poll_seconds=_float(env, "QABOT_OUTBOX_POLL_SECONDS", 1.0),
            outbox_max_attempts=_int(env, "QABOT_OUTBOX_MAX_ATTEMPTS", 8),
            outbox_concurrency=_int(env, "QABOT_OUTBOX_CONCURRENCY", 8),
            scheduler_enabled=env.get("QABOT_SCHEDULER", "on").strip().lower()
            not in ("off", "0", "false", "no"),
            metrics_token=env.get("QABOT_METRICS_TOKEN", "").strip(),
            log_format=log_format,
            openid_metadata_url=env.get("BotOpenIdMetadata", "").strip(),
        )
