"""The gateway as one MCP server: lifecycle, local methods, and routing of the rest to backends.

Transport-agnostic: front ends hand it classified messages and a session, it hands back reply bytes.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from mcp_supervisor import __version__
from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway import jsonrpc
from mcp_supervisor.gateway.backends import Backends, BackendUnavailable
from mcp_supervisor.gateway.catalog import AggregatedTools, aggregate_tools
from mcp_supervisor.gateway.jsonrpc import Incoming, JsonRpcFault
from mcp_supervisor.gateway.sessions import ClientSession, SessionStore

log = logging.getLogger("mcp_supervisor.gateway")

# How long after the gateway starts a tools/list may wait for backends that are still starting.
STARTUP_WINDOW_S = 15.0

_TOOLS_LIST_CHANGED = jsonrpc.encode_json({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})


def negotiate_version(requested: object) -> str:
    """Echo a version we speak; otherwise answer with our latest and let the client decide."""
    if isinstance(requested, str) and requested in HANDSHAKE_PROTOCOL_VERSIONS:
        return requested
    return LATEST_HANDSHAKE_VERSION


class GatewayCore:
    def __init__(self, settings: Settings, backends: Backends, sessions: SessionStore, tool_config: ToolConfig):
        self.settings = settings
        self.backends = backends
        self.sessions = sessions
        self._tool_config = tool_config
        self._tools: AggregatedTools | None = None
        self._tools_result: bytes | None = None

    # ------------------------------------------------------------------ catalog

    def catalog_changed(self) -> None:
        """A backend came, went or changed its tools: rebuild lazily and tell every client session."""
        self._tools = None
        self._tools_result = None
        self.sessions.broadcast(_TOOLS_LIST_CHANGED)

    def set_tool_config(self, tool_config: ToolConfig) -> None:
        if tool_config == self._tool_config:
            return  # the same file again (a snapshot after a gateway restart): nothing to announce
        self._tool_config = tool_config
        self.catalog_changed()

    @property
    def tools(self) -> AggregatedTools:
        if self._tools is None:
            catalogs = {key: link.tools for key, link in self.backends.links.items()}
            self._tools = aggregate_tools(catalogs, self._tool_config, self.settings.separator)
            for problem in self._tools.problems:
                log.warning("%s", problem)
        return self._tools

    def _tools_list_result(self) -> bytes:
        if self._tools_result is None:
            self._tools_result = jsonrpc.encode_json({"tools": self.tools.tools})
        return self._tools_result

    # ------------------------------------------------------------------ lifecycle

    def initialize(self, session: ClientSession, message: Incoming) -> bytes:
        """Negotiate the version and record what the client is, for this session only."""
        assert message.id is not None
        if session.initialize_seen:
            return jsonrpc.error_bytes(message.id, jsonrpc.INVALID_REQUEST, "The session is already initialized.")
        params = message.params
        client_info = params.get("clientInfo")
        capabilities = params.get("capabilities")
        session.protocol_version = negotiate_version(params.get("protocolVersion"))
        session.client_info = client_info if isinstance(client_info, dict) else {}
        session.capabilities = capabilities if isinstance(capabilities, dict) else {}
        session.initialize_seen = True
        result = {
            "protocolVersion": session.protocol_version,
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": "mcp-supervisor", "version": __version__},
        }
        return jsonrpc.result_bytes(message.id, result)

    async def handle(self, session: ClientSession, message: Incoming) -> bytes | None:
        """Any client message; the reply for a request, None for a notification or a response."""
        if message.method == "initialize" and message.id is not None:
            return self.initialize(session, message)
        if message.is_request:
            return await self.handle_request(session, message)
        await self.handle_notification(session, message)
        return None

    # ------------------------------------------------------------------ messages

    async def handle_notification(self, session: ClientSession, message: Incoming) -> None:
        if message.method == "notifications/initialized":
            session.initialized = True
        # notifications/cancelled and the rest are relayed by later work; unknown notifications are ignored,
        # as JSON-RPC requires.

    async def handle_request(self, session: ClientSession, message: Incoming) -> bytes:
        assert message.id is not None and message.method is not None
        try:
            match message.method:
                case "ping":
                    return jsonrpc.result_bytes(message.id, {})
                case "tools/list":
                    await self.backends.settle_startup(STARTUP_WINDOW_S)
                    return jsonrpc.spliced_result(message.id, self._tools_list_result())
                case "tools/call":
                    return await self._call_tool(message)
                case "initialize":
                    raise JsonRpcFault(jsonrpc.INVALID_REQUEST, "The session is already initialized.")
                case method:
                    raise JsonRpcFault(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method}.")
        except JsonRpcFault as fault:
            return jsonrpc.error_bytes(message.id, fault.code, fault.message)
        except BackendUnavailable as exc:
            return jsonrpc.error_bytes(message.id, jsonrpc.BACKEND_UNAVAILABLE, str(exc), {"backend": exc.key})

    async def _call_tool(self, message: Incoming) -> bytes:
        assert message.id is not None
        params = message.params
        name = params.get("name")
        if not isinstance(name, str):
            raise JsonRpcFault(jsonrpc.INVALID_PARAMS, 'Invalid params: tools/call needs a string "name".')
        route = self.tools.routes.get(name)
        if route is None:
            down = {k: tools for k, tools in self.backends.last_tools.items() if k not in self.backends.links}
            stale = aggregate_tools(down, self._tool_config, self.settings.separator).routes.get(name)
            if stale is not None:
                # A tool of a backend that is down (restarting, crashed): say which backend, not "unknown".
                self.backends.require_link(stale.server_key)
            raise JsonRpcFault(jsonrpc.INVALID_PARAMS, f"Unknown tool: {name!r} is not exposed by this gateway.")
        forwarded: dict[str, Any] = {**params, "name": route.original_name}
        result, error = await self.backends.call(
            route.server_key, "tools/call", forwarded, self.settings.request_timeout_s
        )
        if error:
            return jsonrpc.spliced_error(message.id, error)
        return jsonrpc.spliced_result(message.id, result)
