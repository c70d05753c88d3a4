"""Typed models of the configuration files (`mcp_server.json`, `tool_config.json`: mcp-proxy-server's formats).

The files are written by other tools too (mcp-proxy-server's admin UI, editors, scripts), so a server entry keeps every
field it does not know in `extra`; they survive a round trip through `config/writer.py`-style code untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from mcp_supervisor.system.sandbox import SandboxPolicy

TransportType = Literal["stdio", "sse", "http"]
# Which protocol era the worker speaks to a backend: "auto" probes `server/discover` and falls back to the
# `initialize` handshake (worker/era.py); "legacy" and "2026-07-28" pin one era and skip the probe.
BackendProtocol = Literal["auto", "legacy", "2026-07-28"]
BACKEND_PROTOCOLS: tuple[BackendProtocol, ...] = ("auto", "legacy", "2026-07-28")

# Field names of a server entry exactly as they appear in mcp_server.json.
SERVER_FIELDS: frozenset[str] = frozenset(
    {
        "type",
        "name",
        "active",
        "command",
        "args",
        "env",
        "cwd",
        "url",
        "apiKey",
        "bearerToken",
        "headers",
        "installDirectory",
        "installCommands",
        "supervision",
        "namePrefix",
        "sandbox",
        "roots",
        "oauth",
        "protocol",
    }
)


class Supervision(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How one backend's worker is supervised. Defaults come from the environment (`config/settings.py`);
    a server entry's optional `"supervision"` object overrides them field by field (same camelCase names)."""

    startTimeout: float = 30.0  # spawn → backend initialized, else killed and counted as a crash
    stopGrace: float = 6.0  # SIGTERM → SIGKILL of the group
    heartbeatTimeout: float = 5.0  # no heartbeat from the worker's event loop for this long → hung → replaced
    backoffBase: float = 0.5  # delay before the 2nd consecutive restart; doubles, with jitter
    backoffMax: float = 30.0
    stableAfter: float = 60.0  # a run this long resets the crash streak
    maxRestarts: int = 5  # more crashes than this within restartWindow → FATAL
    restartWindow: float = 60.0
    maxRssMb: float = 0.0  # worker + backend RSS limit; 0 = none
    fatalCooldown: float = 300.0  # FATAL is not final: tried again after this long (0 = never)


class OAuthClient(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A remote backend's `"oauth"` object: the client-credentials grant its worker uses (worker/oauth_client.py).
    The secret itself is not in the file: `clientSecretEnv` names the environment variable that holds it."""

    tokenUrl: str
    clientId: str
    clientSecretEnv: str
    scopes: tuple[str, ...] = ()
    resource: str | None = None


class ServerEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One `mcpServers.<key>` entry, normalized (type inferred, `active` a bool, env values strings)."""

    key: str
    type: TransportType
    name: str | None = None
    active: bool = True
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = msgspec.field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    apiKey: str | None = None
    bearerToken: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    installDirectory: str | None = None
    installCommands: tuple[str, ...] = ()
    # Prefix of this backend's tool and prompt names; None = `<key><SEP>`, "" = the backend's own names.
    namePrefix: str | None = None
    # Only the fields the file sets; merged over the global defaults by `effective_supervision`.
    supervision: dict[str, float] = msgspec.field(default_factory=dict)
    # The optional `"sandbox"` object of a stdio backend (system/sandbox.py); defaults: sandboxed, network on.
    sandbox: SandboxPolicy = msgspec.field(default_factory=SandboxPolicy)
    # The roots its worker answers the backend's `roots/list` with, as `file://` URIs (the file may give
    # absolute paths). Empty: a client's roots while one of its requests is in flight, else an empty list.
    roots: tuple[str, ...] = ()
    # sse/http: OAuth client credentials toward the backend (the token replaces `bearerToken`).
    oauth: OAuthClient | None = None
    # The protocol era toward the backend (see BackendProtocol); SSE backends are handshake-era by definition.
    protocol: BackendProtocol = "auto"
    # Fields this version does not know, kept verbatim so writers can round-trip them.
    extra: dict[str, object] = msgspec.field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.name or self.key

    def outbound_headers(self) -> dict[str, str]:
        """HTTP headers for SSE/HTTP backends: `bearerToken` wins over `apiKey`, as in mcp-proxy-server."""
        headers = dict(self.headers)
        if self.bearerToken:
            headers["Authorization"] = f"Bearer {self.bearerToken}"
        elif self.apiKey:
            headers["X-Api-Key"] = self.apiKey
        return headers


class ServersConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The whole `mcp_server.json`: every entry, active or not, in file order."""

    servers: dict[str, ServerEntry]

    def active(self) -> dict[str, ServerEntry]:
        return {key: entry for key, entry in self.servers.items() if entry.active}


class ToolOverride(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One `tools.<key><SEP><tool>` entry of `tool_config.json`; empty strings count as unset."""

    enabled: bool = True
    exposed_name: str | None = None
    exposed_description: str | None = None


class ToolConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The whole `tool_config.json`, keyed by qualified tool name (`<server_key><SEP><tool>`)."""

    tools: dict[str, ToolOverride] = msgspec.field(default_factory=dict)

    def override_for(self, qualified_name: str) -> ToolOverride | None:
        return self.tools.get(qualified_name)


def oauth_secret_names(servers: Mapping[str, ServerEntry]) -> frozenset[str]:
    """The environment variables named by `oauth.clientSecretEnv`: a remote backend's secret is its worker's,
    never something a local backend or an install command inherits."""
    return frozenset(entry.oauth.clientSecretEnv for entry in servers.values() if entry.oauth is not None)
