"""The gateway as one MCP server: lifecycle, local methods, and routing of the rest to backends.

Transport-agnostic: front ends hand it classified messages and a request's context (a handshake-era
transport derives it from its session), it hands back reply bytes. Its collaborators get what they use, not
the core: requests go through a table of routes (routes.py), to backends through backend_calls.py;
subscriptions, log lines and 2026-07-28 requests have their own modules.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mcp_supervisor import __version__
from mcp_supervisor.config.clients import ClientsConfig, Profile
from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.dataplane.backends import Backends, BackendUnavailable, CallContext
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.access import Profiles, Viewer
from mcp_supervisor.gateway.server.audit import open_audit
from mcp_supervisor.gateway.server.backend_calls import BackendCalls
from mcp_supervisor.gateway.server.catalog_view import catalog_view
from mcp_supervisor.gateway.server.debounce import Debounced
from mcp_supervisor.gateway.server.jsonrpc import Incoming, JsonRpcFault
from mcp_supervisor.gateway.server.kinds import LISTS, PROMPTS, TOOLS
from mcp_supervisor.gateway.server.listen_streams import Listener, Listeners
from mcp_supervisor.gateway.server.log_routing import LogRouting
from mcp_supervisor.gateway.server.modern_requests import ModernPorts, ModernRequests
from mcp_supervisor.gateway.server.notification_fields import defined_fields, update_from_owner
from mcp_supervisor.gateway.server.pinning.policy import Pinning
from mcp_supervisor.gateway.server.request_context import RequestContext
from mcp_supervisor.gateway.server.routes import (
    CompletionRoute,
    Kit,
    ListRoute,
    NamedRoute,
    Reply,
    ResourceRoute,
    Route,
    Router,
    SessionRoute,
)
from mcp_supervisor.gateway.server.server_requests import ServerRequests
from mcp_supervisor.gateway.server.sessions import ClientSession, SessionStore
from mcp_supervisor.gateway.server.subscriptions import ResourceSubscriptions
from mcp_supervisor.gateway.server.tool_search import ToolSearch
from mcp_supervisor.gateway.server.tool_search.routes import MetaToolRoute, SearchListRoute
from mcp_supervisor.protocol import error_codes
from mcp_supervisor.protocol.versions import HANDSHAKE_VERSIONS
from mcp_supervisor.tasks import BackgroundTasks

log = logging.getLogger("mcp_supervisor.gateway")

_LIST_CHANGED = {
    kind: jsonrpc.encode_json({"jsonrpc": "2.0", "method": f"notifications/{kind}/list_changed"})
    for kind in ("tools", "prompts", "resources")
}


def negotiate_version(requested: object) -> str:
    """Echo a version we speak; otherwise answer with our latest and let the client decide."""
    if isinstance(requested, str) and requested in HANDSHAKE_VERSIONS:
        return requested
    return HANDSHAKE_VERSIONS[0]


class GatewayCore:
    def __init__(self, settings: Settings, backends: Backends, sessions: SessionStore, tool_config: ToolConfig):
        self.settings = settings
        self.backends = backends
        self.sessions = sessions
        self.catalog = catalog_view(settings, backends, tool_config)
        self.server_requests = ServerRequests(backends, settings.server_request_timeout_s)
        self._background = BackgroundTasks()
        self.profiles = Profiles(settings)
        self.audit = open_audit(settings)
        sessions.on_close = self._session_closed
        self.listeners = Listeners(settings.max_sessions, settings.max_sessions_per_credential)
        self.backend_calls = BackendCalls(
            backends, settings.request_timeout_s, self.audit, self.profiles, self.server_requests
        )
        self.subscriptions = ResourceSubscriptions(
            backends, self.catalog, sessions, self.listeners, self.profiles, self.keep, settings.request_timeout_s
        )
        self.logs = LogRouting(backends, sessions, settings.request_timeout_s)
        self.tool_search = ToolSearch(settings)
        # Tool pinning (pinning/): screens every catalog it builds, and names a held tool when it is called.
        self.pins = Pinning(settings, self.catalog_changed, self.audit.record_event if self.audit else None)
        self.catalog.screen = self.pins.screen
        self.router = Router(self._routes())
        self.modern = ModernRequests(
            settings,
            ModernPorts(
                serve=self.handle_request,
                answer_input=self.server_requests.answer,
                cancel=backends.cancel,
                keep=self.keep,
                settle=self._settle,
                capabilities=self.catalog.capabilities,
                owner=self.router.owner,
                in_flux=lambda: backends.in_flux,
                private_views=lambda: self.profiles.present,
            ),
        )
        self._list_changed = Debounced(settings.list_changed_debounce_s, self._deliver_list_changed)

    def _routes(self) -> list[Route]:
        """The request table: one route per method (hooks for a new method or kind go here)."""
        kit = Kit(self.catalog, self.profiles, self._settle, self.backend_calls.forward, self.settings.page_size)
        lists = [ListRoute(kind, kit) for kind in LISTS]
        tools = NamedRoute(TOOLS, kit, self.backends, self.server_requests, self.pins.refusal)
        return [
            Reply("ping", {}),
            # Tool search (a client in search mode) claims tools/list and its meta-tools' calls first.
            SearchListRoute(self.tool_search, self, lists[0]),  # LISTS starts with tools/list
            MetaToolRoute(self.tool_search, self, tools),
            *lists,
            tools,
            NamedRoute(PROMPTS, kit, self.backends, self.server_requests, self.pins.refusal),
            ResourceRoute(kit),
            SessionRoute(
                ("resources/subscribe", "resources/unsubscribe"),
                lambda call, session, method: self.subscriptions.subscription(
                    call, session, method, call.params, self.backend_calls.call
                ),
            ),
            CompletionRoute(kit),
            SessionRoute(
                ("logging/setLevel",),
                lambda call, session, method: self.logs.set_level(session, call.request_id, call.params),
            ),
            Reply("initialize", fault=JsonRpcFault(error_codes.INVALID_REQUEST, "The session is already initialized.")),
        ]

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a background task until it ends (the loop keeps only weak references)."""
        self._background.hold(task)

    async def _settle(self) -> None:
        await self.backends.settle_startup(self.settings.startup_wait_s)

    # ------------------------------------------------------------------ catalog

    def catalog_changed(self) -> None:
        """A backend came, went or changed its catalog: rebuild and tell every client session."""
        self.catalog.update(self.backends.links)
        # Pinning screens what a backend lists as it arrives, not when a client first lists that kind: a
        # prompt nobody listed before the backend changed it must not be pinned first in its changed form.
        self.pins.screen_now(self.catalog)
        self._announce("tools", "prompts", "resources")

    def _announce(self, *kinds: str) -> None:
        """list_changed to every handshake-era session, and to the listen streams that asked for it: at most
        once per LIST_CHANGED_DEBOUNCE_SECONDS (debounce.py)."""
        self._list_changed.announce(*kinds)

    def _deliver_list_changed(self, kind: str) -> None:
        self.sessions.broadcast(_LIST_CHANGED[kind])
        self.listeners.list_changed(kind)

    def set_tool_config(self, tool_config: ToolConfig) -> None:
        if tool_config == self.catalog.tool_config:
            return  # the same file again (a snapshot after a gateway restart): nothing to announce
        self.catalog.update(self.backends.links, tool_config)
        self._announce("tools")

    @property
    def clients(self) -> ClientsConfig:
        return self.profiles.clients

    def set_clients(self, clients: ClientsConfig) -> None:
        """clients.json changed: every session's view may have changed, so every list is announced."""
        if self.profiles.set(clients):
            self._announce("tools", "prompts", "resources")

    def profile(self, viewer: Viewer) -> Profile:
        """What this session's (or request's) principal may see (clients.json)."""
        return self.profiles.of(viewer)

    # ------------------------------------------------------------------ lifecycle

    async def initialize(self, session: ClientSession, message: Incoming) -> bytes:
        """Negotiate the version and record what the client is, for this session only."""
        assert message.id is not None
        if session.initialize_seen:
            return jsonrpc.error_bytes(message.id, error_codes.INVALID_REQUEST, "The session is already initialized.")
        params = message.params
        client_info = params.get("clientInfo")
        capabilities = params.get("capabilities")
        session.protocol_version = negotiate_version(params.get("protocolVersion"))
        session.client_info = client_info if isinstance(client_info, dict) else {}
        session.capabilities = capabilities if isinstance(capabilities, dict) else {}
        session.initialize_seen = True
        try:
            await self._settle()  # so capabilities reflect them all
            result = {
                "protocolVersion": session.protocol_version,
                "capabilities": self.catalog.capabilities(),
                "serverInfo": {"name": "mcp-supervisor", "version": __version__},
            }
            return jsonrpc.result_bytes(message.id, result)
        finally:
            # Set here, before the front end pushes the reply (no await between): what was held goes after it.
            session.initialize_answered.set()

    async def handle(self, session: ClientSession, message: Incoming) -> bytes | None:
        """Any message of a handshake-era session (a single-stream transport: related messages go where the
        session's server-initiated messages go); the reply for a request, None for a notification or a
        response."""
        if message.method == "initialize" and message.id is not None:
            return await self.initialize(session, message)
        if session.initialize_seen and not session.initialize_answered.is_set():
            # A client that pipelines (stdio: initialize, initialized, a call, in one write) must not have its
            # call answered "Unknown tool" while initialize still waits for the backends: it waits its turn.
            await session.initialize_answered.wait()
        if message.is_request:
            return await self.handle_request(session.request_context(), message)
        await self.handle_notification(session, message)
        return None

    # ------------------------------------------------------------------ messages

    async def handle_notification(self, session: ClientSession, message: Incoming) -> None:
        match message.method:
            case None:
                self.server_requests.from_client(session, message)  # a response to a server→client request
            case "notifications/initialized":
                session.initialized = True
            case "notifications/cancelled":
                request_id = message.params.get("requestId")
                rid = session.in_flight.get(request_id) if isinstance(request_id, (int, str)) else None
                if rid is not None:
                    await self.backends.cancel(rid, str(message.params.get("reason") or "no reason given"))
            case _:
                pass  # unknown notifications are ignored, as JSON-RPC requires

    def _session_closed(self, session: ClientSession) -> None:
        """Release what the session held at shared backends: its server requests, its subscriptions."""
        self.server_requests.session_closed(session)
        self.subscriptions.session_closed(session)

    def on_backend_message(self, key: str, generation: int, message: dict[str, Any]) -> None:
        """A backend's own request or notification (progress was routed already): send it where it belongs."""
        if isinstance(message.get("id"), (int, str)):
            self.server_requests.from_backend(key, generation, message)
            return
        message = defined_fields(message)  # notification_fields.py: its method's fields and _meta only
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        assert isinstance(params, dict)
        match message.get("method"):
            case "notifications/cancelled":
                self.server_requests.backend_cancelled(key, params.get("requestId"), params.get("reason"))
            case "notifications/message":
                self.logs.route(key, message, params)
            case "notifications/resources/updated":
                if not update_from_owner(self.catalog.resources.route(str(params.get("uri"))), key, params.get("uri")):
                    self.backends.metrics.refused_messages += 1  # only the URI's owner may say it changed
                    return
                self.subscriptions.resource_updated(key, params, message)
            case method:
                log.debug("Backend %s sent %s; nothing routes it.", key, method)

    async def handle_request(self, context: RequestContext, message: Incoming) -> bytes:
        """One request, either era: the first route that matches its method answers it."""
        assert message.id is not None and message.method is not None
        call = CallContext(context, message.id, context.emit, message.params)
        try:
            route = self.router.route(message.method, call)
            if route is None:
                raise JsonRpcFault(error_codes.METHOD_NOT_FOUND, f"Method not found: {message.method}.")
            return await route.handle(call, message.method)
        except JsonRpcFault as fault:
            return jsonrpc.error_bytes(message.id, fault.code, fault.message)
        except BackendUnavailable as exc:
            return jsonrpc.error_bytes(message.id, error_codes.BACKEND_UNAVAILABLE, str(exc), {"backend": exc.key})

    async def listen(self, context: RequestContext, message: Incoming) -> Listener:
        """Open a `subscriptions/listen` stream (the front end carries its frames, from `context.emit`)."""
        await self._settle()
        return await self.subscriptions.listen(context, message)
