"""The supervisor's three config files: read, validated, and their changes broadcast to the gateway.

mcp_server.json decides which workers run (the supervisor acts on its diff); tool_config.json and clients.json
are only validated here and applied by the gateway, restarting nothing. A broken file at start is fatal; on
reload it keeps the running one, and its error is shown (`status`, the admin) until a good version comes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mcp_supervisor.config.clients import CLIENTS_FILE
from mcp_supervisor.config.loader import SERVERS_FILE, TOOLS_FILE, load_servers, parse_clients_file, parse_tool_config
from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.protocol.messages import ClientsUpdate, CommandResult, ConfigStatus, ToolConfigUpdate

log = logging.getLogger("mcp_supervisor.supervisor")

Broadcast = Callable[[ClientsUpdate | ToolConfigUpdate | ConfigStatus], None]

# The files the gateway applies: how each is validated, and the message that carries its new bytes.
_VALIDATORS: dict[str, Callable[[bytes, str], object]] = {
    TOOLS_FILE: parse_tool_config,
    CLIENTS_FILE: parse_clients_file,
}
_UPDATES: dict[str, type[ClientsUpdate] | type[ToolConfigUpdate]] = {
    TOOLS_FILE: ToolConfigUpdate,
    CLIENTS_FILE: ClientsUpdate,
}


class ConfigFiles:
    def __init__(self, config_dir: Path, broadcast: Broadcast) -> None:
        self.config_dir = config_dir
        # Sends a message to every subscriber (the gateway); a no-op until the control socket exists.
        self._broadcast = broadcast
        self.errors: dict[str, str] = {}  # file name -> why its last version was not applied
        self.running_servers = b""  # the bytes of the mcp_server.json in force
        self._applied: dict[str, bytes] = {TOOLS_FILE: b"", CLIENTS_FILE: b""}

    @property
    def tool_config(self) -> bytes:
        return self._applied[TOOLS_FILE]

    @property
    def clients(self) -> bytes:
        return self._applied[CLIENTS_FILE]

    @property
    def error_text(self) -> str:
        return " ".join(self.errors.values())

    def load(self) -> dict[str, ServerEntry]:
        """Every file at start, the active servers returned: a broken one raises ConfigError (exit 2)."""
        servers = load_servers(self.config_dir).active()
        self.running_servers = self._servers_bytes()
        for name in (TOOLS_FILE, CLIENTS_FILE):
            self._applied[name] = self._read_optional(name)
        return servers

    def reload_servers(self) -> dict[str, ServerEntry]:
        """mcp_server.json's active servers; ConfigError (recorded and broadcast) when it is broken."""
        try:
            servers = load_servers(self.config_dir).active()
        except ConfigError as exc:
            self._record(SERVERS_FILE, str(exc))
            raise
        self.running_servers = self._servers_bytes()
        self._record(SERVERS_FILE, None)
        return servers

    def reload(self, name: str) -> CommandResult:
        """tool_config.json or clients.json: validated here, applied by the gateway, restarting nothing."""
        try:
            data = self._read_optional(name)
        except ConfigError as exc:
            self._record(name, str(exc))
            log.error("%s not applied, the running one stays: %s", name, exc)
            return CommandResult(ok=False, message=str(exc))
        self._record(name, None)
        self._applied[name] = data
        self._broadcast(_UPDATES[name](data=data))
        log.info("%s applied.", name)
        return CommandResult(ok=True, message=f"{name} applied.")

    def _read_optional(self, name: str) -> bytes:
        """An optional config file's bytes, validated (b"" when it does not exist); ConfigError otherwise."""
        path = self.config_dir / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise ConfigError(f"{path}: the file cannot be read ({exc.strerror}).") from None
        _VALIDATORS[name](data, str(path))
        return data

    def _servers_bytes(self) -> bytes:
        """The bytes of the mcp_server.json just loaded (a write racing the read is caught by the next reload)."""
        try:
            return (self.config_dir / SERVERS_FILE).read_bytes()
        except OSError:
            return b""

    def _record(self, file_name: str, error: str | None) -> None:
        """Record a file's error (None = applied); subscribers hear of every change, not only at Subscribe."""
        before = self.error_text
        if error is None:
            self.errors.pop(file_name, None)
        else:
            self.errors[file_name] = error
        after = self.error_text
        if after != before:
            self._broadcast(ConfigStatus(config_error=after, running_servers=self.running_servers))
