"""Process-wide settings from environment variables, with mcp-proxy-server's names and defaults."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from mcp_supervisor.config.models import Supervision
from mcp_supervisor.errors import ConfigError

log = logging.getLogger("mcp_supervisor.config")

DEFAULT_SEPARATOR = "--"
_SEPARATOR_PATTERN = re.compile(r"[A-Za-z0-9_-]{2,}")
_TRUE = {"1", "true", "yes", "on"}

# Tool pinning (gateway/server/pinning/): what a definition may weigh before it is held as suspicious.
TOOL_PINNING_MODES = ("enforce", "warn", "off", "approve")
# The choices of the other mode settings; the first is the default.
SANDBOX_MODES = ("auto", "required", "off")
WORKER_SPAWN_MODES = ("fork", "spawn")
TOOL_SEARCH_MODES = ("off", "on", "auto")
# The event loop of the gateway and the workers (mcp_supervisor/event_loop.py).
EVENT_LOOPS = ("uvloop", "asyncio")
TOOL_DESCRIPTION_MAX_BYTES = 16 * 1024
TOOL_SCHEMA_MAX_BYTES = 64 * 1024


# The gateway's own secrets. Backends and install commands are third-party code: they inherit the proxy's
# environment (mcp-proxy-server's rule) minus these, unless a server's own `env` sets them on purpose.
GATEWAY_SECRET_ENV = (
    "ALLOWED_KEYS",
    "ALLOWED_TOKENS",
    "ADMIN_PASSWORD",
    "SESSION_SECRET",
    "OAUTH_CLIENT_SECRET",
    "REQUEST_STATE_SECRET",
)
# And minus the tree's own variables: they name the config and runtime directories (where the sockets, the
# CLI's credentials and every backend's config live) and the processes of the tree.
TREE_ENV_PREFIX = "MCP_SUPERVISOR_"


def without_gateway_secrets(env: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in env.items()
        if name not in GATEWAY_SECRET_ENV and not name.startswith(TREE_ENV_PREFIX)
    }


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    config_dir: Path
    host: str = "127.0.0.1"
    port: int = 3663
    allowed_keys: tuple[str, ...] = ()
    allowed_tokens: tuple[str, ...] = ()
    separator: str = DEFAULT_SEPARATOR
    log_level: str = "INFO"
    # Extra Host / Origin values accepted by the DNS-rebinding check (comma-separated env vars).
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 4 * 1024 * 1024
    # How long a relayed request may wait for its backend before the client gets an error.
    request_timeout_s: float = 300.0
    enable_admin_ui: bool = False
    admin_username: str = "admin"
    # Empty = generated once into <config>/.admin_password (admin/auth.py); a well-known weak one is refused.
    admin_password: str = ""
    # Signs admin session cookies; empty = generated once into config/.session_secret.
    session_secret: str = ""
    admin_session_hours: float = 12.0
    # Root of install directories (TOOLS_FOLDER, as in mcp-proxy-server); relative to the working directory.
    tools_folder: Path = Path("tools")
    enable_web_terminal: bool = False
    terminal_idle_timeout_s: float = 900.0
    # How long after the gateway starts a client's initialize (and first lists) wait for backends still starting;
    # then it is answered with what is ready, and the rest arrive with list_changed.
    startup_wait_s: float = 10.0
    # Items per page of the aggregated list methods.
    page_size: int = 1000
    # Global supervision defaults; each server may override them in mcp_server.json.
    supervision: Supervision = Supervision()
    # Slow clients: a request's headers and its body must arrive within these; at most this many connections.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 4096
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (uvicorn's rule); none by default.
    forwarded_allow_ips: tuple[str, ...] = ()
    # SANDBOX: auto (what the host offers, reported per backend), required (no start without it), off.
    sandbox_mode: str = "auto"
    # WORKER_SPAWN: fork (workers forked by a zygote, spawned where forking is unsafe) or spawn (always exec).
    worker_spawn: str = "fork"
    # Where each backend's own writable state (its HOME) lives: <state_dir>/<key>.
    state_dir: Path = Path(".")
    # How long fetching an npx or uvx backend's package into the shared package cache may take.
    package_fetch_timeout_s: float = 300.0
    # How long a backend's server→client request (sampling, elicitation, roots) waits for the client's answer.
    server_request_timeout_s: float = 10.0
    # 2026-07-28 clients: how long a backend's server→client request is held for the client's retry (MRTR),
    # the key that seals requestState (shared by replicas; empty = random per gateway process), and how long
    # a client may cache the catalog while every backend is up (0 while any is starting or down).
    input_required_timeout_s: float = 120.0
    request_state_secret: str = ""
    catalog_ttl_s: float = 60.0
    # Bytes of 2026-07-28 calls held for their client's retry (the call and what it asks), per credential and
    # in all: a call that would pass either gets an error at once instead of being held.
    held_bytes_per_credential: int = 64 * 1024 * 1024
    held_bytes: int = 256 * 1024 * 1024
    # list_changed reaches each client at most once per this window (the last change is never lost).
    list_changed_debounce_s: float = 0.2
    # Client sessions: in all, per credential, and how long an idle one lives (much shorter under load).
    max_sessions: int = 10_000
    max_sessions_per_credential: int = 1000
    session_idle_timeout_s: float = 3600.0
    session_idle_timeout_under_load_s: float = 60.0
    # A /mcp session's sealed id (gateway/frontends/sealed_sessions.py) is refused this long after its `initialize`.
    session_max_lifetime_s: float = 86400.0
    # Bytes of notifications buffered for slow clients, all sessions together (past it, the oldest are dropped).
    notification_buffer_bytes: int = 64 * 1024 * 1024
    # Undelivered replies one session may hold before its client gets back-pressure, and how long that lasts
    # before the session is ended as too slow.
    session_reply_backlog_bytes: int = 16 * 1024 * 1024
    slow_client_timeout_s: float = 30.0
    # OAuth 2.1 resource server (gateway/frontends/oauth.py): on when OAUTH_ISSUER is set, beside the static
    # credentials.
    oauth_issuers: tuple[str, ...] = ()
    # The gateway's canonical URL (RFC 8707): every access token's audience must be it.
    oauth_resource: str = ""
    oauth_required_scopes: tuple[str, ...] = ()
    # RFC 7662 introspection of opaque tokens, authenticated as this client.
    oauth_introspection_url: str = ""
    oauth_client_id: str = ""
    oauth_client_secret: str = ""
    oauth_clock_skew_s: int = 10
    # The audit trail (gateway/server/audit.py): a file path, "-" for stderr, empty = off.
    audit_log: str = ""
    audit_arguments: bool = False
    audit_max_bytes: int = 10 * 1024 * 1024
    audit_backups: int = 5
    # How often the supervisor samples each child's process tree (RSS, CPU) for status and /metrics.
    sample_interval_s: float = 2.0
    # uvicorn's access log (one line per HTTP request) in the gateway's log: off unless asked for.
    access_log: bool = False
    # Tool search (gateway/server/tool_search/): off, on, or auto (on for a client whose view has more than
    # tool_search_threshold tools); clients.json profiles may override it with "toolSearch".
    tool_search: str = "off"
    tool_search_threshold: int = 64
    # What a backend may list (gateway/server/validation.py): bigger descriptions and more tools are withheld.
    tool_description_max_bytes: int = TOOL_DESCRIPTION_MAX_BYTES
    max_tools_per_backend: int = 1000
    # TOOL_PINNING: enforce (a changed or suspicious definition is held until approved), warn (served and
    # reported), off, approve (every new tool and prompt is held too); and the size limits of a definition.
    tool_pinning: str = "enforce"
    tool_schema_max_bytes: int = TOOL_SCHEMA_MAX_BYTES
    # MCP_SUPERVISOR_EVENT_LOOP: the gateway's and the workers' event loop, uvloop (libuv, C) or asyncio's own.
    event_loop: str = "uvloop"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.allowed_keys or self.allowed_tokens or self.oauth_issuers)

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.oauth_issuers)


def _split_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _credentials(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """An empty variable means unset (compose's `${ALLOWED_KEYS:-}`); one that holds only commas and blanks is
    a mistake that would otherwise turn auth off without a word."""
    raw = env.get(name) or ""
    values = _split_list(raw)
    if raw.strip() and not values:
        raise ConfigError(
            f"Environment variable {name}={raw!r} holds no credential: set at least one, or unset it to turn "
            "client authentication off."
        )
    return values


def parse_separator(raw: str | None) -> str:
    """mcp-proxy-server's rule: trimmed, at least two of [A-Za-z0-9_-]; anything else warns and uses the default."""
    if raw is None or not raw.strip():
        return DEFAULT_SEPARATOR
    candidate = raw.strip()
    if not _SEPARATOR_PATTERN.fullmatch(candidate):
        log.warning(
            "SERVER_TOOLNAME_SEPERATOR=%r is not at least two of [A-Za-z0-9_-]; using %r.",
            raw,
            DEFAULT_SEPARATOR,
        )
        return DEFAULT_SEPARATOR
    return candidate


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int = 2**31) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"Environment variable {name}={raw!r} is not an integer.") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"Environment variable {name}={value} is outside {minimum}..{maximum}.")
    return value


def _float(env: Mapping[str, str], name: str, default: float, allow_zero: bool = False) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"Environment variable {name}={raw!r} is not a number.") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"Environment variable {name}={value} must be positive.")
    return value


_LOG_LEVELS = {"error": "ERROR", "warn": "WARNING", "warning": "WARNING", "info": "INFO", "debug": "DEBUG"}


def load_settings(env: Mapping[str, str] | None = None, config_dir: Path | None = None) -> Settings:
    env = os.environ if env is None else env
    if config_dir is None:
        config_dir = Path(env.get("MCP_SUPERVISOR_CONFIG_DIR") or "config")
    level = _LOG_LEVELS.get((env.get("LOGGING") or "info").strip().lower(), "INFO")
    return Settings(
        config_dir=config_dir.resolve(),
        # A blank HOST is the default, not "every interface" (which would also switch the Host check off).
        host=(env.get("HOST") or "").strip() or "127.0.0.1",
        port=_int(env, "PORT", 3663, 0, 65535),
        allowed_keys=_credentials(env, "ALLOWED_KEYS"),
        allowed_tokens=_credentials(env, "ALLOWED_TOKENS"),
        # mcp-proxy-server spells it SEPERATOR; the correct spelling is accepted too.
        separator=parse_separator(env.get("SERVER_TOOLNAME_SEPERATOR") or env.get("SERVER_TOOLNAME_SEPARATOR")),
        log_level=level,
        allowed_hosts=_split_list(env.get("ALLOWED_HOSTS")),
        allowed_origins=_split_list(env.get("ALLOWED_ORIGINS")),
        max_body_bytes=_int(env, "MAX_REQUEST_BODY_BYTES", 4 * 1024 * 1024, 1024),
        request_timeout_s=_float(env, "REQUEST_TIMEOUT_SECONDS", 300.0),
        enable_admin_ui=(env.get("ENABLE_ADMIN_UI") or "").strip().lower() in _TRUE,
        admin_username=env.get("ADMIN_USERNAME") or "admin",
        admin_password=env.get("ADMIN_PASSWORD") or "",
        session_secret=(env.get("SESSION_SECRET") or "").strip(),
        admin_session_hours=_float(env, "ADMIN_SESSION_HOURS", 12.0),
        tools_folder=Path((env.get("TOOLS_FOLDER") or "").strip() or "tools").resolve(),
        enable_web_terminal=(env.get("ENABLE_WEB_TERMINAL") or "").strip().lower() in _TRUE,
        terminal_idle_timeout_s=_float(env, "TERMINAL_IDLE_TIMEOUT_SECONDS", 900.0),
        supervision=_supervision_from_env(env),
        page_size=_int(env, "PAGE_SIZE", 1000, 1),
        header_timeout_s=_float(env, "HEADER_TIMEOUT_SECONDS", 10.0),
        body_timeout_s=_float(env, "BODY_TIMEOUT_SECONDS", 30.0),
        max_connections=_int(env, "MAX_CONNECTIONS", 4096, 1),
        forwarded_allow_ips=_split_list(env.get("FORWARDED_ALLOW_IPS")),
        startup_wait_s=_float(env, "STARTUP_WAIT_SECONDS", 10.0, allow_zero=True),
        sandbox_mode=_choice(env, "SANDBOX", SANDBOX_MODES),
        worker_spawn=_choice(env, "WORKER_SPAWN", WORKER_SPAWN_MODES),
        state_dir=_state_dir(env, config_dir.resolve()),
        package_fetch_timeout_s=_float(env, "PACKAGE_FETCH_TIMEOUT_SECONDS", 300.0),
        server_request_timeout_s=_float(env, "SERVER_REQUEST_TIMEOUT_SECONDS", 10.0),
        input_required_timeout_s=_float(env, "INPUT_REQUIRED_TIMEOUT_SECONDS", 120.0),
        request_state_secret=(env.get("REQUEST_STATE_SECRET") or "").strip(),
        catalog_ttl_s=_float(env, "CATALOG_TTL_SECONDS", 60.0, allow_zero=True),
        held_bytes_per_credential=_int(env, "HELD_REQUESTS_MB_PER_CREDENTIAL", 64, 1, 1 << 20) * 1024 * 1024,
        held_bytes=_int(env, "HELD_REQUESTS_MB", 256, 1, 1 << 20) * 1024 * 1024,
        list_changed_debounce_s=_float(env, "LIST_CHANGED_DEBOUNCE_SECONDS", 0.2, allow_zero=True),
        audit_log=(env.get("AUDIT_LOG") or "").strip(),
        audit_arguments=(env.get("AUDIT_ARGUMENTS") or "").strip().lower() in _TRUE,
        audit_max_bytes=_int(env, "AUDIT_LOG_MAX_MB", 10, 1, 1 << 20) * 1024 * 1024,
        audit_backups=_int(env, "AUDIT_LOG_BACKUPS", 5, 0, 1000),
        sample_interval_s=_float(env, "MCP_SUPERVISOR_SAMPLE_SECONDS", 2.0),
        access_log=(env.get("MCP_SUPERVISOR_ACCESS_LOG") or "").strip() == "1",
        **_sessions_from_env(env),
        tool_search=_choice(env, "TOOL_SEARCH", TOOL_SEARCH_MODES),
        tool_search_threshold=_int(env, "TOOL_SEARCH_THRESHOLD", 64, 0),
        tool_description_max_bytes=_int(env, "TOOL_DESCRIPTION_MAX_BYTES", TOOL_DESCRIPTION_MAX_BYTES, 1),
        max_tools_per_backend=_int(env, "MAX_TOOLS_PER_BACKEND", 1000, 1),
        tool_pinning=_choice(env, "TOOL_PINNING", TOOL_PINNING_MODES),
        tool_schema_max_bytes=_int(env, "TOOL_SCHEMA_MAX_BYTES", TOOL_SCHEMA_MAX_BYTES, 1),
        event_loop=_choice(env, "MCP_SUPERVISOR_EVENT_LOOP", EVENT_LOOPS),
        **_oauth_from_env(env),
    )


def _sessions_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Client sessions' quotas, lifetimes and buffers."""
    return {
        "max_sessions": _int(env, "MAX_SESSIONS", 10_000, 1),
        "max_sessions_per_credential": _int(env, "MAX_SESSIONS_PER_CREDENTIAL", 1000, 1),
        "session_idle_timeout_s": _float(env, "SESSION_IDLE_TIMEOUT_SECONDS", 3600.0),
        "session_idle_timeout_under_load_s": _float(env, "SESSION_IDLE_TIMEOUT_UNDER_LOAD_SECONDS", 60.0),
        "session_max_lifetime_s": _float(env, "SESSION_MAX_LIFETIME_SECONDS", 86400.0),
        "notification_buffer_bytes": _int(env, "NOTIFICATION_BUFFER_MB", 64, 1, 1 << 20) * 1024 * 1024,
        "session_reply_backlog_bytes": _int(env, "SESSION_REPLY_BACKLOG_MB", 16, 1, 1 << 20) * 1024 * 1024,
        "slow_client_timeout_s": _float(env, "SLOW_CLIENT_TIMEOUT_SECONDS", 30.0),
    }


def _oauth_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    # Compared exactly as written: an issuer identifier is a string (Auth0's ends with a slash, others do not).
    issuers = _split_list(env.get("OAUTH_ISSUER"))
    resource = (env.get("OAUTH_RESOURCE") or "").strip()
    if not issuers:
        return {}
    for issuer in issuers:
        if not issuer.startswith(("https://", "http://")):
            raise ConfigError(f"Environment variable OAUTH_ISSUER holds {issuer!r}, which is not an http(s) URL.")
    if not resource.startswith(("https://", "http://")):
        raise ConfigError(
            "Environment variable OAUTH_RESOURCE must be the gateway's canonical URL "
            "(e.g. https://mcp.example.com/mcp) when OAUTH_ISSUER is set."
        )
    introspection = (env.get("OAUTH_INTROSPECTION_URL") or "").strip()
    client_id = (env.get("OAUTH_CLIENT_ID") or "").strip()
    if introspection and not client_id:
        raise ConfigError("Environment variable OAUTH_CLIENT_ID is required when OAUTH_INTROSPECTION_URL is set.")
    return {
        "oauth_issuers": issuers,
        "oauth_resource": resource,
        "oauth_required_scopes": tuple(
            scope for part in _split_list(env.get("OAUTH_REQUIRED_SCOPES")) for scope in part.split()
        ),
        "oauth_introspection_url": introspection,
        "oauth_client_id": client_id,
        "oauth_client_secret": env.get("OAUTH_CLIENT_SECRET") or "",
        "oauth_clock_skew_s": _int(env, "OAUTH_CLOCK_SKEW_SECONDS", 10, 0, 600),
    }


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (case-insensitive); unset or blank is the first."""
    raw = env.get(name)
    value = (raw or "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"Environment variable {name}={raw!r} must be one of {', '.join(choices)}.")
    return value


def _state_dir(env: Mapping[str, str], config_dir: Path) -> Path:
    """MCP_SUPERVISOR_STATE_DIR, else per config dir under $XDG_STATE_HOME (~/.local/state): outside the config
    dir (which backends must not see) and outside the runtime dir (which is wiped and hidden)."""
    explicit = (env.get("MCP_SUPERVISOR_STATE_DIR") or "").strip()
    if explicit:
        return Path(explicit).resolve()
    base = (env.get("XDG_STATE_HOME") or "").strip() or str(Path.home() / ".local" / "state")
    digest = hashlib.sha256(str(config_dir).encode()).hexdigest()[:12]
    return Path(base) / "mcp-supervisor" / digest / "backends"


# Environment variable → supervision field, for the global defaults.
SUPERVISION_ENV = {
    "START_TIMEOUT_SECONDS": "startTimeout",
    "STOP_GRACE_SECONDS": "stopGrace",
    "HEARTBEAT_TIMEOUT_SECONDS": "heartbeatTimeout",
    "RESTART_BACKOFF_BASE_SECONDS": "backoffBase",
    "RESTART_BACKOFF_MAX_SECONDS": "backoffMax",
    "RESTART_STABLE_SECONDS": "stableAfter",
    "RESTART_MAX_COUNT": "maxRestarts",
    "RESTART_WINDOW_SECONDS": "restartWindow",
    "MAX_RSS_MB": "maxRssMb",
    "FATAL_COOLDOWN_SECONDS": "fatalCooldown",
}


def _supervision_from_env(env: Mapping[str, str]) -> Supervision:
    values: dict[str, float] = {}
    for variable, field in SUPERVISION_ENV.items():
        if env.get(variable, "").strip():
            values[field] = (
                _int(env, variable, 0, 0) if field == "maxRestarts" else _float(env, variable, 0.0, allow_zero=True)
            )
    return Supervision(**values)  # type: ignore[arg-type]
