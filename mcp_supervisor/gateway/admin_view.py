"""What the gateway offers its admin UI: a few queries and commands, and nothing else of its internals.

`admin/` imports this module (plus `config/` and `protocol/`) and no other part of the gateway, so the gateway's
layers can change behind it. `AdminView` is the contract; `GatewayAdminView` serves it from a running gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from mcp_supervisor.config.clients import Profile
from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.frontends.dns_rebinding import RequestGuard
from mcp_supervisor.gateway.server.access import visible_items
from mcp_supervisor.gateway.server.catalog import qualified_name
from mcp_supervisor.gateway.server.pinning.policy import Pinning
from mcp_supervisor.gateway.server.pinning.review import diff_lines, row
from mcp_supervisor.gateway.server.pinning.store import Request as PinRequest
from mcp_supervisor.protocol.endpoints import Endpoints
from mcp_supervisor.protocol.messages import BackendStatus
from mcp_supervisor.protocol.socket_auth import Credentials

if TYPE_CHECKING:
    from mcp_supervisor.gateway.runtime import GatewayRuntime

# The rule that names a backend tool in tool_config.json (`<server_key><SEP><tool>`), as the catalog applies it.
__all__ = [
    "AdminView",
    "GatewayAdminView",
    "HeaderCheck",
    "LinkedBackend",
    "PinRequest",
    "Pinning",
    "diff_lines",
    "qualified_name",
    "row",
]


class LinkedBackend(Protocol):
    """A backend whose worker is linked: the tools it lists, and the prefix its tools are exposed with."""

    @property
    def name_prefix(self) -> str | None: ...

    @property
    def tools(self) -> list[dict[str, Any]]: ...


class HeaderCheck(Protocol):
    """The DNS-rebinding guard (Host / Origin) the client routes use: (status, message) to refuse, or None."""

    def check(self, headers: Mapping[str, str]) -> tuple[int, str] | None: ...


class AdminView(Protocol):
    """Everything the admin reads from or asks of the gateway it is mounted in."""

    @property
    def settings(self) -> Settings: ...

    @property
    def endpoints(self) -> Endpoints: ...

    @property
    def credentials(self) -> Credentials:
        """The gateway's own credentials toward the supervisor (admin commands go with them)."""
        ...

    def statuses(self) -> Mapping[str, BackendStatus]:
        """The supervisor's status of every configured backend, by key."""
        ...

    def linked(self) -> Mapping[str, LinkedBackend]:
        """The backends linked to this gateway now, by key."""
        ...

    def gateway_status(self) -> BackendStatus | None: ...

    def config_error(self) -> str:
        """Why the supervisor refused the config files on disk ("" = it did not)."""
        ...

    def running_servers(self) -> bytes:
        """The raw mcp_server.json the supervisor runs (what the admin shows while the file is broken)."""
        ...

    def tool_config(self) -> ToolConfig: ...

    def set_tool_config(self, tool_config: ToolConfig) -> None:
        """Apply a tool_config.json here at once (the supervisor's broadcast reaches the other gateways)."""
        ...

    def visible(self, profile: Profile, kind: str) -> list[dict[str, Any]]:
        """The live catalog's items of one list (`tools`, `prompts`, `resources`) a client profile may see."""
        ...

    @property
    def pins(self) -> Pinning:
        """Tool pinning: the pinned and held definitions, and the operator's approve / reject."""
        ...

    def request_guard(self) -> HeaderCheck: ...

    def on_status(self, listener: Callable[[BackendStatus, str], None]) -> None:
        """Call `listener(status, event)` after every supervisor event about a backend."""
        ...

    def on_config_error(self, listener: Callable[[str], None]) -> None:
        """Call `listener(error)` whenever the config error changes ("" = none)."""
        ...


class GatewayAdminView:
    """`AdminView` served from a running gateway."""

    def __init__(self, runtime: GatewayRuntime) -> None:
        self._runtime = runtime

    @property
    def settings(self) -> Settings:
        return self._runtime.settings

    @property
    def endpoints(self) -> Endpoints:
        return self._runtime.endpoints

    @property
    def credentials(self) -> Credentials:
        return self._runtime.credentials

    @property
    def pins(self) -> Pinning:
        return self._runtime.core.pins

    def statuses(self) -> Mapping[str, BackendStatus]:
        return self._runtime.backends.statuses

    def linked(self) -> Mapping[str, LinkedBackend]:
        return self._runtime.backends.links

    def gateway_status(self) -> BackendStatus | None:
        return self._runtime.supervisor.gateway_status

    def config_error(self) -> str:
        return self._runtime.supervisor.config_error

    def running_servers(self) -> bytes:
        return self._runtime.supervisor.running_servers

    def tool_config(self) -> ToolConfig:
        return self._runtime.core.catalog.tool_config

    def set_tool_config(self, tool_config: ToolConfig) -> None:
        self._runtime.core.set_tool_config(tool_config)

    def visible(self, profile: Profile, kind: str) -> list[dict[str, Any]]:
        return visible_items(profile, self._runtime.core.catalog, kind)

    def request_guard(self) -> HeaderCheck:
        return RequestGuard(self._runtime.settings)

    def on_status(self, listener: Callable[[BackendStatus, str], None]) -> None:
        self._runtime.backends.status_listeners.append(listener)

    def on_config_error(self, listener: Callable[[str], None]) -> None:
        self._runtime.supervisor.config_listeners.append(listener)
