"""Reading and validating the configuration files.

Every failure raises `ConfigError` with one sentence naming the file, the key and what is wrong, e.g.
``config/mcp_server.json: server "time": "command" is required for a stdio server.`` Parsing is pure
(`parse_servers`, `parse_tool_config` take bytes) so it is unit-tested without files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec

from mcp_supervisor.config.clients import CLIENTS_FILE, ClientsConfig, parse_clients
from mcp_supervisor.config.models import (
    BACKEND_PROTOCOLS,
    SERVER_FIELDS,
    BackendProtocol,
    OAuthClient,
    ServerEntry,
    ServersConfig,
    Supervision,
    ToolConfig,
    ToolOverride,
    TransportType,
)
from mcp_supervisor.errors import ConfigError, SupervisorError
from mcp_supervisor.system.sandbox import SandboxPolicy

SERVERS_FILE = "mcp_server.json"
TOOLS_FILE = "tool_config.json"

# Server keys become part of tool names, ZeroMQ identities, process titles and file names.
# Not starting with "." so that "." and ".." can never name a directory. Always used with fullmatch:
# "$" would also match before a trailing newline.
# Names of the tree's own processes: a backend keyed so would share their status rows, log files and titles.
RESERVED_KEYS = frozenset({"gateway", "supervisor"})
SERVER_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")

NAME_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]{0,64}")

_TYPE_ALIASES: dict[str, TransportType] = {
    "stdio": "stdio",
    "sse": "sse",
    "http": "http",
    "streamable-http": "http",
    "streamable_http": "http",
    "streamablehttp": "http",
}


def _decode_object(data: bytes, source: str) -> dict[str, Any]:
    # The standard library's parser, not msgspec's: only it lets us see every key of an object, and a key given
    # twice would otherwise be decided silently by whichever comes last (a server entry pasted twice, say).
    try:
        document = json.loads(data, object_pairs_hook=_without_duplicates)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{source}: the file is not valid JSON ({exc}).") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"{source}: the key {exc.key!r} appears twice in one object; keep one of them.") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the top level must be a JSON object, not {_json_kind(document)}.")
    return document


class _DuplicateKey(SupervisorError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _parse_flag(value: object, where: str, field: str) -> bool:
    """mcp-proxy-server accepts `false` and `"false"` alike; so do we (and "true"/"1"/"0"/"yes"/"no")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "false", "0", "no"}:
        return value.strip().lower() in {"true", "1", "yes"}
    raise ConfigError(f'{where}: "{field}" must be true or false, not {_json_kind(value)}.')


def _string_list(value: object, where: str, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f'{where}: "{field}" must be an array of strings.')
    return tuple(value)


def _string_map(value: object, where: str, field: str) -> dict[str, str]:
    """Environment and header maps: scalar values are turned into strings, nested values refused."""
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: "{field}" must be an object of strings, not {_json_kind(value)}.')
    result: dict[str, str] = {}
    for name, item in value.items():
        if isinstance(item, bool):
            result[name] = "true" if item else "false"
        elif isinstance(item, (str, int, float)):
            result[name] = str(item)
        else:
            raise ConfigError(f'{where}: "{field}.{name}" must be a string, not {_json_kind(item)}.')
    return result


def _or_empty(entry: dict[str, Any], field: str) -> object:
    """A missing or null map is an empty one; any other non-object is an error reported by the caller."""
    value = entry.get(field)
    return {} if value is None else value


def _optional_string(entry: dict[str, Any], where: str, field: str) -> str | None:
    value = entry.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f'{where}: "{field}" must be a string, not {_json_kind(value)}.')
    return value or None


def _infer_type(entry: dict[str, Any], where: str) -> TransportType:
    raw = entry.get("type", entry.get("transport"))
    if raw is None:
        # Claude-Desktop-style entries carry no type: a command means stdio, a URL ending in /sse means SSE.
        if entry.get("command"):
            return "stdio"
        url = entry.get("url")
        if isinstance(url, str) and url:
            return "sse" if url.rstrip("/").endswith("/sse") else "http"
        raise ConfigError(f'{where}: "type" is required (one of "stdio", "sse", "http").')
    if not isinstance(raw, str) or raw.strip().lower() not in _TYPE_ALIASES:
        raise ConfigError(f'{where}: "type" must be one of "stdio", "sse", "http", not {raw!r}.')
    return _TYPE_ALIASES[raw.strip().lower()]


def parse_server_entry(key: str, entry: object, source: str) -> ServerEntry:
    where = f'{source}: server "{key}"'
    if key.lower() in RESERVED_KEYS:
        raise ConfigError(
            f"{where}: the key is reserved for the tree's own {key.lower()} (its status row, log and process "
            "title): choose another one."
        )
    if not SERVER_KEY_PATTERN.fullmatch(key):
        raise ConfigError(
            f"{where}: the key must be 1-64 characters of letters, digits, '_', '-' or '.' (not first), "
            "because it becomes part of tool names, process titles and directory names."
        )
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: the entry must be a JSON object, not {_json_kind(entry)}.")
    transport = _infer_type(entry, where)
    command = _optional_string(entry, where, "command")
    url = _optional_string(entry, where, "url")
    if transport == "stdio" and not command:
        raise ConfigError(f'{where}: "command" is required for a stdio server.')
    if transport != "stdio":
        if not url:
            raise ConfigError(f'{where}: "url" is required for a {transport} server.')
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f'{where}: "url" must start with http:// or https://, not {url!r}.')
    return ServerEntry(
        key=key,
        type=transport,
        name=_optional_string(entry, where, "name"),
        active=_parse_flag(entry.get("active", True), where, "active"),
        command=command,
        args=_string_list(entry.get("args", []), where, "args"),
        env=_string_map(_or_empty(entry, "env"), where, "env"),
        cwd=_optional_string(entry, where, "cwd"),
        url=url,
        apiKey=_optional_string(entry, where, "apiKey"),
        bearerToken=_optional_string(entry, where, "bearerToken"),
        headers=_string_map(_or_empty(entry, "headers"), where, "headers"),
        installDirectory=_optional_string(entry, where, "installDirectory"),
        installCommands=_string_list(entry.get("installCommands", []), where, "installCommands"),
        supervision=_supervision(_or_empty(entry, "supervision"), where),
        namePrefix=_name_prefix(entry, where),
        sandbox=_sandbox(_or_empty(entry, "sandbox"), where),
        roots=_roots(entry.get("roots", []), where),
        oauth=_oauth(entry.get("oauth"), transport, where),
        protocol=_protocol(entry.get("protocol"), transport, where),
        extra={name: value for name, value in entry.items() if name not in SERVER_FIELDS},
    )


_SUPERVISION_FIELDS = {
    name: field.type
    for name, field in zip(Supervision.__struct_fields__, msgspec.structs.fields(Supervision), strict=True)
}


def _supervision(value: object, where: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: "supervision" must be an object, not {_json_kind(value)}.')
    result: dict[str, float] = {}
    for name, item in value.items():
        if name not in _SUPERVISION_FIELDS:
            known = ", ".join(sorted(_SUPERVISION_FIELDS))
            raise ConfigError(f'{where}: "supervision.{name}" is not a supervision setting (known: {known}).')
        if isinstance(item, bool) or not isinstance(item, (int, float)) or item < 0:
            raise ConfigError(f'{where}: "supervision.{name}" must be a non-negative number.')
        result[name] = int(item) if name == "maxRestarts" else float(item)
    return result


def _sandbox(value: object, where: str) -> SandboxPolicy:
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: "sandbox" must be an object, not {_json_kind(value)}.')
    try:
        return msgspec.convert(value, SandboxPolicy)
    except msgspec.ValidationError as exc:
        known = ", ".join(sorted(SandboxPolicy.__struct_encode_fields__))
        raise ConfigError(f'{where}: "sandbox" is invalid: {exc} (fields: {known}).') from None


def _roots(value: object, where: str) -> tuple[str, ...]:
    """Absolute paths or `file://` URIs, stored as URIs (what `roots/list` answers with)."""
    uris: list[str] = []
    for item in _string_list(value, where, "roots"):
        if item.startswith("file://"):
            uris.append(item)
        elif Path(item).is_absolute():
            uris.append(Path(item).as_uri())
        else:
            raise ConfigError(f'{where}: "roots" entries must be absolute paths or file:// URIs, not {item!r}.')
    return tuple(uris)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _oauth(value: object, transport: TransportType, where: str) -> OAuthClient | None:
    if value is None:
        return None
    if transport == "stdio":
        raise ConfigError(f'{where}: "oauth" applies to sse and http servers only, not to a stdio server.')
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: "oauth" must be an object, not {_json_kind(value)}.')
    known = ("tokenUrl", "clientId", "clientSecretEnv", "scopes", "resource")
    for name in value:
        if name not in known:
            raise ConfigError(f'{where}: "oauth.{name}" is not an OAuth setting (known: {", ".join(known)}).')
    for name in ("tokenUrl", "clientId", "clientSecretEnv"):
        if not isinstance(value.get(name), str) or not value[name]:
            raise ConfigError(f'{where}: "oauth.{name}" is required and must be a non-empty string.')
    if not value["tokenUrl"].startswith(("http://", "https://")):
        raise ConfigError(f'{where}: "oauth.tokenUrl" must start with http:// or https://, not {value["tokenUrl"]!r}.')
    if not _ENV_NAME.fullmatch(value["clientSecretEnv"]):
        raise ConfigError(
            f'{where}: "oauth.clientSecretEnv" must name an environment variable (the secret itself does not '
            f"belong in the file), not {value['clientSecretEnv']!r}."
        )
    scopes = value.get("scopes", [])
    if isinstance(scopes, str):
        scopes = scopes.split()  # "a b" as in an OAuth scope parameter
    resource = value.get("resource")
    if resource is not None and (not isinstance(resource, str) or not resource.startswith(("http://", "https://"))):
        raise ConfigError(f'{where}: "oauth.resource" must be an http:// or https:// URL (RFC 8707).')
    return OAuthClient(
        tokenUrl=value["tokenUrl"],
        clientId=value["clientId"],
        clientSecretEnv=value["clientSecretEnv"],
        scopes=_string_list(scopes, where, "oauth.scopes"),
        resource=resource or None,
    )


def _protocol(value: object, transport: TransportType, where: str) -> BackendProtocol:
    if value is None:
        return "auto"
    for known in BACKEND_PROTOCOLS:
        if value == known:
            if known == "2026-07-28" and transport == "sse":
                raise ConfigError(
                    f'{where}: "protocol" cannot be "2026-07-28" for an sse server: the HTTP+SSE transport '
                    'exists only in the handshake era (use "http" for a 2026-07-28 backend).'
                )
            return known
    choices = ", ".join(f'"{name}"' for name in BACKEND_PROTOCOLS)
    shown = repr(value) if isinstance(value, str) else _json_kind(value)
    raise ConfigError(f'{where}: "protocol" must be one of {choices}, not {shown}.')


def _name_prefix(entry: dict[str, Any], where: str) -> str | None:
    value = entry.get("namePrefix")
    if value is None:
        return None
    if not isinstance(value, str) or not NAME_PREFIX_PATTERN.fullmatch(value):
        raise ConfigError(f'{where}: "namePrefix" must be a string of at most 64 of [A-Za-z0-9_.-] ("" for none).')
    return value


def effective_supervision(defaults: Supervision, entry: ServerEntry) -> Supervision:
    """The global defaults with this server's own settings on top."""
    return msgspec.structs.replace(defaults, **entry.supervision) if entry.supervision else defaults


def parse_servers(data: bytes, source: str = SERVERS_FILE) -> ServersConfig:
    document = _decode_object(data, source)
    servers = document.get("mcpServers")
    if servers is None:
        raise ConfigError(f'{source}: the top-level object needs an "mcpServers" object.')
    if not isinstance(servers, dict):
        raise ConfigError(f'{source}: "mcpServers" must be an object, not {_json_kind(servers)}.')
    return ServersConfig(servers={key: parse_server_entry(key, entry, source) for key, entry in servers.items()})


def _parse_override(name: str, entry: object, source: str) -> ToolOverride:
    where = f'{source}: tool "{name}"'
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: the entry must be a JSON object, not {_json_kind(entry)}.")
    # mcp-proxy-server's README says displayName/description, its code exposedName/exposedDescription: accept both.
    exposed_name = _optional_string(entry, where, "exposedName") or _optional_string(entry, where, "displayName")
    description = _optional_string(entry, where, "exposedDescription") or _optional_string(entry, where, "description")
    return ToolOverride(
        enabled=_parse_flag(entry.get("enabled", True), where, "enabled"),
        exposed_name=exposed_name,
        exposed_description=description,
    )


def parse_tool_config(data: bytes, source: str = TOOLS_FILE) -> ToolConfig:
    if not data.strip():
        return ToolConfig()
    document = _decode_object(data, source)
    tools = document.get("tools", {})
    if not isinstance(tools, dict):
        raise ConfigError(f'{source}: "tools" must be an object, not {_json_kind(tools)}.')
    return ToolConfig(tools={name: _parse_override(name, entry, source) for name, entry in tools.items()})


def parse_clients_file(data: bytes, source: str = CLIENTS_FILE) -> ClientsConfig:
    """An empty file is no file: everyone sees everything."""
    if not data.strip():
        return ClientsConfig()
    return parse_clients(_decode_object(data, source), source)


def load_clients(config_dir: Path) -> ClientsConfig:
    path = config_dir / CLIENTS_FILE
    if not path.exists():
        return ClientsConfig()
    return parse_clients_file(_read(path), str(path))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: the file cannot be read ({exc.strerror}).") from None


def load_servers(config_dir: Path) -> ServersConfig:
    path = config_dir / SERVERS_FILE
    if not path.exists():
        raise ConfigError(f'{path}: the file does not exist; create it with an "mcpServers" object.')
    return parse_servers(_read(path), str(path))


def load_tool_config(config_dir: Path) -> ToolConfig:
    """A missing tool_config.json is an empty one: every tool enabled, names unchanged."""
    path = config_dir / TOOLS_FILE
    if not path.exists():
        return ToolConfig()
    return parse_tool_config(_read(path), str(path))
