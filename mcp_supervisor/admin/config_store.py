"""The admin's reads and writes of `mcp_server.json` and `tool_config.json`.

Every write is validated with the supervisor's own loader first (a rejected write changes nothing), keeps
fields and top-level sections this version does not know (mcp-proxy-server's admin UI drops them; we do not), and is
atomic: a temp file in the same directory, fsync, rename, so the supervisor's watcher never reads half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_supervisor.config.clients import CLIENTS_FILE
from mcp_supervisor.config.loader import (
    SERVER_KEY_PATTERN,
    SERVERS_FILE,
    TOOLS_FILE,
    parse_clients_file,
    parse_servers,
    parse_tool_config,
)
from mcp_supervisor.errors import ConfigError

# The override fields the admin writes (mcp-proxy-server's code spelling); the README spelling is read and replaced.
OVERRIDE_ALIASES = {"exposedName": "displayName", "exposedDescription": "description"}


class NotFound(ConfigError):
    """The named server or tool is not in the file."""


class Conflict(ConfigError):
    """The write would clash with what is there (an existing key)."""


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one rename, keeping the old file's permissions."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _encode(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def _validated_write(path: Path, document: object, parse: Callable[[bytes, str], object]) -> None:
    """Write `document` to `path` only if the supervisor's own loader (`parse`) accepts it."""
    if not isinstance(document, dict):
        raise ConfigError(f"{path.name}: the top level must be a JSON object.")
    data = _encode(document)
    parse(data, path.name)
    atomic_write(path, data)


def check_server_key(key: str) -> None:
    if not SERVER_KEY_PATTERN.fullmatch(key):
        raise ConfigError(
            f'"{key}" is not a valid server key: 1-64 characters of letters, digits, "_", "-" or "." (not first).'
        )


class ConfigStore:
    def __init__(self, config_dir: Path) -> None:
        self.servers_path = config_dir / SERVERS_FILE
        self.tools_path = config_dir / TOOLS_FILE
        self.clients_path = config_dir / CLIENTS_FILE

    # ------------------------------------------------------------------ mcp_server.json

    def read_servers(self) -> dict[str, Any]:
        """The whole file as JSON; a missing file reads as no servers."""
        if not self.servers_path.exists():
            return {"mcpServers": {}}
        return self._read_object(self.servers_path)

    def write_servers(self, document: object) -> None:
        _validated_write(self.servers_path, document, parse_servers)

    def server_entry(self, key: str) -> dict[str, Any] | None:
        entry = self._servers_section(self.read_servers()).get(key)
        return entry if isinstance(entry, dict) else None

    def put_server(self, key: str, entry: object, create: bool) -> None:
        """Add (`create`) or replace one entry; every other entry and section stays as it is."""
        check_server_key(key)
        if not isinstance(entry, dict):
            raise ConfigError(f'Server "{key}": the entry must be a JSON object.')
        document = self.read_servers()
        servers = self._servers_section(document)
        if create and key in servers:
            raise Conflict(f'A server "{key}" exists already.')
        if not create and key not in servers:
            raise NotFound(f'No server "{key}" in {SERVERS_FILE}.')
        servers[key] = entry
        self.write_servers(document)

    def delete_server(self, key: str) -> None:
        document = self.read_servers()
        servers = self._servers_section(document)
        if key not in servers:
            raise NotFound(f'No server "{key}" in {SERVERS_FILE}.')
        del servers[key]
        self.write_servers(document)

    @staticmethod
    def _servers_section(document: dict[str, Any]) -> dict[str, Any]:
        servers = document.setdefault("mcpServers", {})
        if not isinstance(servers, dict):
            raise ConfigError(f'{SERVERS_FILE}: "mcpServers" must be an object.')
        return servers

    # ------------------------------------------------------------------ tool_config.json

    def read_tools(self) -> dict[str, Any]:
        if not self.tools_path.exists():
            return {"tools": {}}
        document = self._read_object(self.tools_path)
        document.setdefault("tools", {})
        return document

    def write_tools(self, document: object) -> None:
        _validated_write(self.tools_path, document, parse_tool_config)

    def tools_with_override(self, config_key: str, changes: dict[str, Any]) -> dict[str, Any]:
        """The whole tool_config document with one tool's override changed (not written: the caller checks
        the result against the live catalog first). `changes` may hold enabled, exposedName,
        exposedDescription; an empty string or null clears a name or description."""
        document = self.read_tools()
        tools = document["tools"]
        if not isinstance(tools, dict):
            raise ConfigError(f'{TOOLS_FILE}: "tools" must be an object.')
        current = tools.get(config_key)
        override: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
        for field, value in changes.items():
            if field == "enabled":
                if not isinstance(value, bool):
                    raise ConfigError(f'Tool "{config_key}": "enabled" must be true or false.')
                override["enabled"] = value
            elif field in OVERRIDE_ALIASES:
                if value is not None and not isinstance(value, str):
                    raise ConfigError(f'Tool "{config_key}": "{field}" must be a string.')
                override.pop(OVERRIDE_ALIASES[field], None)
                if value and value.strip():
                    override[field] = value.strip()
                else:
                    override.pop(field, None)
            else:
                raise ConfigError(f'Tool "{config_key}": unknown field "{field}".')
        if override == {} or override == {"enabled": True}:
            tools.pop(config_key, None)  # nothing left to override: keep the file small
        else:
            tools[config_key] = override
        return document

    # ------------------------------------------------------------------ clients.json

    def read_clients(self) -> dict[str, Any] | None:
        """The file as JSON, or None without one (everyone sees everything: not the same as no clients)."""
        if not self.clients_path.exists():
            return None
        return self._read_object(self.clients_path)

    def write_clients(self, document: object) -> None:
        _validated_write(self.clients_path, document, parse_clients_file)

    def delete_clients(self) -> None:
        if not self.clients_path.exists():
            raise NotFound(f"There is no {CLIENTS_FILE}: everyone sees everything already.")
        self.clients_path.unlink()

    @staticmethod
    def _read_object(path: Path) -> dict[str, Any]:
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: the file cannot be read as JSON ({exc}).") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: the top level must be a JSON object.")
        return document
