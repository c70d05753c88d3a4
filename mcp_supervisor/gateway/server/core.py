"""The gateway as one MCP server: lifecycle, local methods, and routing of the rest to backends.

Transport-agnostic: front ends hand it classified messages and a session, it hands back reply bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from mcp_supervisor import __version__
from mcp_supervisor.config.clients import EVERYTHING, ClientsConfig, Profile
from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.dataplane.backends import Backends, BackendUnavailable, CallContext
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.access import identity_profile, permits_name, permits_uri, visible_items
from mcp_supervisor.gateway.server.audit import error_code, open_audit
from mcp_supervisor.gateway.server.catalog_view import CatalogView
from mcp_supervisor.gateway.server.debounce import Debounced
from mcp_supervisor.gateway.server.input_rounds import answer_input_requests
from mcp_supervisor.gateway.server.jsonrpc import Incoming, JsonRpcFault
from mcp_supervisor.gateway.server.listen_streams import Listener, Listeners, parse_filter
from mcp_supervisor.gateway.server.modern import INPUT_REQUIRED_METHODS, strip_envelope, with_envelope
from mcp_supervisor.gateway.server.modern_requests import ModernRequests
from mcp_supervisor.gateway.server.pagination import page
from mcp_supervisor.gateway.server.pinning.policy import Pinning
from mcp_supervisor.gateway.server.server_requests import ServerRequests
from mcp_supervisor.gateway.server.sessions import ClientSession, SessionStore
from mcp_supervisor.protocol import error_codes
from mcp_supervisor.protocol.versions import HANDSHAKE_VERSIONS, Era
from mcp_supervisor.tasks import BackgroundTasks

log = logging.getLogger("mcp_supervisor.gateway")

# RFC 5424 severities as MCP names them, least severe first.
LOG_LEVELS = {
    name: rank
    for rank, name in enumerate(("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"))
}

_LIST_CHANGED = {
    kind: jsonrpc.encode_json({"jsonrpc": "2.0", "method": f"notifications/{kind}/list_changed"})
    for kind in ("tools", "prompts", "resources")
}
# List method → (catalog attribute, result field).
_LISTS = {
    "tools/list": ("tools", "tools"),
    "prompts/list": ("prompts", "prompts"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("templates", "resourceTemplates"),
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
        self.catalog = CatalogView(settings.separator, tool_config)
        self.server_requests = ServerRequests(backends, settings.server_request_timeout_s)
        self._background = BackgroundTasks()
        self.clients = ClientsConfig()
        self.clients_generation = 0
        self.audit = open_audit(settings)
        sessions.on_close = self._session_closed
        self.listeners = Listeners(settings.max_sessions, settings.max_sessions_per_credential)
        self.modern = ModernRequests(self)
        self._list_changed = Debounced(settings.list_changed_debounce_s, self._deliver_list_changed)
        self.pins = Pinning(settings, self.catalog_changed, self.audit.record_event if self.audit else None)
        self.catalog.screen = self.pins.screen

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a background task until it ends (the loop keeps only weak references)."""
        self._background.hold(task)

    # ------------------------------------------------------------------ catalog

    def catalog_changed(self) -> None:
        """A backend came, went or changed its catalog: rebuild lazily and tell every client session."""
        self.catalog.update(self.backends.links)
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

    def set_clients(self, clients: ClientsConfig) -> None:
        """clients.json changed: every session's view may have changed, so every list is announced."""
        if clients == self.clients:
            return
        self.clients = clients
        self.clients_generation += 1
        self._announce("tools", "prompts", "resources")

    def profile(self, session: ClientSession) -> Profile:
        """What this session's principal may see (clients.json), resolved once per file generation."""
        if not self.clients.present:
            return EVERYTHING
        if session.profile_generation != self.clients_generation:
            session.profile = identity_profile(self.clients, self.settings, session.identity)
            session.profile_generation = self.clients_generation
        profile: Profile = session.profile
        return profile

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
            await self.backends.settle_startup(self.settings.startup_wait_s)  # so capabilities reflect them all
            result = {
                "protocolVersion": session.protocol_version,
                "capabilities": self.catalog.capabilities(),
                "serverInfo": {"name": "mcp-supervisor", "version": __version__},
            }
            return jsonrpc.result_bytes(message.id, result)
        finally:
            # Set here, before the front end pushes the reply (no await between): what was held goes after it.
            session.initialize_answered.set()

    async def handle(
        self, session: ClientSession, message: Incoming, emit: Callable[[bytes, bool], None] | None = None
    ) -> bytes | None:
        """Any client message; the reply for a request, None for a notification or a response.

        `emit` delivers messages related to this request (progress) before the reply; by default they go
        wherever the session's server-initiated messages go.
        """
        if message.method == "initialize" and message.id is not None:
            return await self.initialize(session, message)
        if session.initialize_seen and not session.initialize_answered.is_set():
            # A client that pipelines (stdio: initialize, initialized, a call, in one write) must not have its
            # call answered "Unknown tool" while initialize still waits for the backends: it waits its turn.
            await session.initialize_answered.wait()
        if message.is_request:
            return await self.handle_request(session, message, emit)
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
        self._release_unheld(session.subscriptions)
        session.subscriptions.clear()

    def _held_by_anyone(self, uri: str) -> bool:
        return any(uri in other.subscriptions for other in self.sessions.all()) or self.listeners.holds(uri)

    def _release_unheld(self, uris: set[str] | frozenset[str]) -> None:
        """Unsubscribe at the backends the URIs that no session and no listen stream holds any more."""
        for uri in uris:
            if self._held_by_anyone(uri):
                continue  # someone else still listens
            owner = self.catalog.resources.route(uri)
            if owner is not None and owner in self.backends.links:
                self.keep(asyncio.ensure_future(self._release(owner, uri)))

    async def _release(self, owner: str, uri: str) -> None:
        with contextlib.suppress(BackendUnavailable):  # a backend that is gone took its subscriptions along
            await self.backends.call(owner, "resources/unsubscribe", {"uri": uri}, self.settings.request_timeout_s)

    def on_backend_message(self, key: str, generation: int, message: dict[str, Any]) -> None:
        """A backend's own request or notification (progress was routed already): send it where it belongs."""
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        assert isinstance(params, dict)
        if isinstance(message.get("id"), (int, str)):
            self.server_requests.from_backend(key, generation, message)
            return
        match message.get("method"):
            case "notifications/cancelled":
                self.server_requests.backend_cancelled(key, params.get("requestId"), params.get("reason"))
            case "notifications/message":
                self._route_log(key, LOG_LEVELS.get(str(params.get("level")), 0), message)
            case "notifications/resources/updated":
                uri = params.get("uri")
                encoded = jsonrpc.encode_json(message)
                for session in self.sessions.all():
                    if uri in session.subscriptions and permits_uri(self.profile(session), key, str(uri)):
                        session.notify(encoded)  # subscribers only, while their view has the resource
                if isinstance(uri, str):
                    self.listeners.resource_updated(
                        uri, params, lambda listener: permits_uri(self.profile(listener.session), key, uri)
                    )
            case method:
                log.debug("Backend %s sent %s; nothing routes it.", key, method)

    def _route_log(self, key: str, level: int, message: dict[str, Any]) -> None:
        """A backend's log line goes to the session it concerns, never to another credential.

        Nothing on a handshake-era backend's wire says which request a log line belongs to. While requests of
        one credential only are in flight at the backend, the line is theirs: it goes to the most recent one's
        stream (its session). With no request in flight it concerns no client in particular: it goes to the
        sessions that asked for logs (logging/setLevel). While several credentials have requests in flight
        it cannot be attributed, and goes nowhere (counted in mcp_gateway_unattributed_log_messages_total).
        """
        contexts = self.backends.contexts_at(key)
        if contexts:
            newest = contexts[-1]
            if any(c.session.principal != newest.session.principal for c in contexts):
                self.backends.metrics.unattributed_logs += 1
                return
            if newest.session.era == Era.MODERN and newest.session.log_level not in LOG_LEVELS:
                return  # a 2026-07-28 request gets log lines only if it asked for them, at its level
            if level >= LOG_LEVELS.get(newest.session.log_level, 0):
                newest.emit(jsonrpc.encode_json(message), True)
            return
        encoded = jsonrpc.encode_json(message)
        for session in self.sessions.all():
            if session.initialized and session.log_level in LOG_LEVELS and level >= LOG_LEVELS[session.log_level]:
                session.notify(encoded)

    async def handle_request(
        self, session: ClientSession, message: Incoming, emit: Callable[[bytes, bool], None] | None = None
    ) -> bytes:
        assert message.id is not None and message.method is not None
        request_id = message.id
        context = CallContext(session, request_id, emit or session.emit, message.params)
        try:
            match message.method:
                case "ping":
                    return jsonrpc.result_bytes(request_id, {})
                case method if method in _LISTS:
                    return await self._list(request_id, method, message.params, self.profile(session))
                case "tools/call":
                    return await self._call_tool(context, message.params)
                case "prompts/get":
                    return await self._get_prompt(context, message.params)
                case "resources/read":
                    return await self._by_uri(context, message.method, message.params)
                case "resources/subscribe" | "resources/unsubscribe":
                    return await self._subscription(context, message.method, message.params)
                case "completion/complete":
                    return await self._complete(context, message.params)
                case "logging/setLevel":
                    return await self._set_level(session, request_id, message.params)
                case "initialize":
                    raise JsonRpcFault(error_codes.INVALID_REQUEST, "The session is already initialized.")
                case method:
                    raise JsonRpcFault(error_codes.METHOD_NOT_FOUND, f"Method not found: {method}.")
        except JsonRpcFault as fault:
            return jsonrpc.error_bytes(request_id, fault.code, fault.message)
        except BackendUnavailable as exc:
            return jsonrpc.error_bytes(request_id, error_codes.BACKEND_UNAVAILABLE, str(exc), {"backend": exc.key})

    async def _list(
        self, request_id: jsonrpc.RequestId, method: str, params: dict[str, Any], profile: Profile = EVERYTHING
    ) -> bytes:
        await self.backends.settle_startup(self.settings.startup_wait_s)
        attribute, field = _LISTS[method]
        cursor = params.get("cursor")
        if profile is not EVERYTHING:
            # A restricted view is filtered per request (the shared first-page cache is everyone's view).
            items = visible_items(profile, self.catalog, attribute)
            return jsonrpc.spliced_result(
                request_id, jsonrpc.encode_json(page(items, field, cursor, self.settings.page_size))
            )
        if cursor is None:
            cached = self.catalog.cached_first_page(method)
            if cached is not None:
                return jsonrpc.spliced_result(request_id, cached)
        holder = self.catalog.resources if attribute in ("resources", "templates") else getattr(self.catalog, attribute)
        items = getattr(holder, attribute)
        encoded = jsonrpc.encode_json(page(items, field, cursor, self.settings.page_size))
        if cursor is None:
            self.catalog.cache_first_page(method, encoded)
        return jsonrpc.spliced_result(request_id, encoded)

    async def _forward(self, context: CallContext, key: str, method: str, params: dict[str, Any] | None) -> bytes:
        result, error = await self.call_backend(context, key, method, params)
        if (
            not error
            and method in INPUT_REQUIRED_METHODS
            and context.session.era == Era.LEGACY
            and b'"input_required"' in result
        ):
            # A 2026-07-28 backend asks for input: its requests go to this handshake-era client, for real.
            result, error = await answer_input_requests(self, context, key, method, params or {}, result)
        if error:
            return jsonrpc.spliced_error(context.request_id, error)
        return jsonrpc.spliced_result(context.request_id, result)

    async def call_backend(
        self, context: CallContext, key: str, method: str, params: dict[str, Any] | None
    ) -> tuple[bytes, bytes]:
        """Every client request that reaches a backend passes here; with AUDIT_LOG unset, one check."""
        link = self.backends.links.get(key)
        if link is not None and params is not None and link.era != context.session.era:
            # Each backend gets its own era's request: a 2026-07-28 one learns from every request what this
            # session's client can do; a handshake-era one (which may reject it) never sees the envelope.
            params = with_envelope(params, context.session) if link.era == Era.MODERN else strip_envelope(params)
        if self.audit is None:
            return await self.backends.call(key, method, params, self.settings.request_timeout_s, context)
        started = time.perf_counter()
        outcome: str | int = error_codes.INTERNAL_ERROR
        result = error = b""
        try:
            result, error = await self.backends.call(key, method, params, self.settings.request_timeout_s, context)
            outcome = error_code(error) if error else "ok"
            return result, error
        except BackendUnavailable:
            outcome = error_codes.BACKEND_UNAVAILABLE
            raise
        except asyncio.CancelledError:
            outcome = error_codes.REQUEST_CANCELLED
            raise
        finally:
            client = self.profile(context.session).name if self.clients.present else ""
            self.audit.record_call(context, client, key, method, params, started, outcome, len(result) + len(error))

    def _down_links(self) -> dict[str, Any]:
        return {k: link for k, link in self.backends.last_links.items() if k not in self.backends.links}

    async def _call_tool(self, context: CallContext, params: dict[str, Any]) -> bytes:
        return await self._by_name(context, params, "tools/call", "tool")

    async def _get_prompt(self, context: CallContext, params: dict[str, Any]) -> bytes:
        return await self._by_name(context, params, "prompts/get", "prompt")

    async def _by_name(self, context: CallContext, params: dict[str, Any], method: str, kind: str) -> bytes:
        """Route a tool call or prompt get by its exposed name, forwarding the backend's own name."""
        await self.backends.settle_startup(self.settings.startup_wait_s)  # no "Unknown tool" while one links
        name = params.get("name")
        if not isinstance(name, str):
            raise JsonRpcFault(error_codes.INVALID_PARAMS, f'Invalid params: {method} needs a string "name".')
        live = self.catalog.tools if kind == "tool" else self.catalog.prompts
        route = live.routes.get(name)
        profile = self.profile(context.session)
        if route is None:
            held = self.pins.refusal(kind, name)
            if held is not None and permits_name(profile, kind, held.server_key, name):
                raise JsonRpcFault(error_codes.INVALID_PARAMS, held.message())
            down = self._down_links()
            stale = (self.catalog.tools_of(down) if kind == "tool" else self.catalog.prompts_of(down)).routes.get(name)
            if stale is not None and permits_name(profile, kind, stale.server_key, name):
                # A tool of a backend that is down (restarting, crashed): say which backend, not "unknown"
                # (to a client that may see it: to others that backend does not exist).
                self.backends.require_link(stale.server_key)
            owner = self._never_linked_owner(name)
            if owner is not None and permits_name(profile, kind, owner, name):
                # Its backend never got as far as listing its tools (FATAL from the start): still name it.
                self.backends.require_link(owner)
            raise JsonRpcFault(error_codes.INVALID_PARAMS, f"Unknown {kind}: {name!r} is not exposed by this gateway.")
        if not permits_name(profile, kind, route.server_key, name):
            # Not this client's to use: unknown to it, exactly like a tool that does not exist.
            raise JsonRpcFault(error_codes.INVALID_PARAMS, f"Unknown {kind}: {name!r} is not exposed by this gateway.")
        forwarded = {**params, "name": route.original_name}
        context.operation = f"{method} {route.original_name}"
        if context.session.era == Era.MODERN or not self.server_requests.is_interactive(
            route.server_key, context.operation
        ):
            # A modern call does not take turns: it may wait minutes for its client's retry (parked calls are
            # left out of attribution instead, see server_requests._attribute).
            return await self._forward(context, route.server_key, method, forwarded)
        async with self.server_requests.turn(route.server_key, context.session.principal):
            return await self._forward(context, route.server_key, method, forwarded)

    def _never_linked_owner(self, name: str) -> str | None:
        """The configured backend that would expose `name` but never linked: by its default prefix
        `<key><SEP>`, or by a tool_config.json rename of one of its tools. The longest key wins."""
        separator = self.catalog.separator
        down = [key for key in self.backends.statuses if key not in self.backends.last_links]
        renamed = {
            qualified for qualified, override in self.catalog.tool_config.tools.items() if override.exposed_name == name
        }
        owners = [
            key
            for key in down
            if name.startswith(f"{key}{separator}") or any(q.startswith(f"{key}{separator}") for q in renamed)
        ]
        return max(owners, key=len) if owners else None

    def _resource_owner(self, uri: object) -> str:
        if not isinstance(uri, str):
            raise JsonRpcFault(error_codes.INVALID_PARAMS, 'Invalid params: a string "uri" is required.')
        owner = self.catalog.resources.route(uri)
        if owner is None:
            raise JsonRpcFault(error_codes.RESOURCE_NOT_FOUND, f"Resource not found: no backend serves {uri!r}.")
        return owner

    def _visible_owner(self, context: CallContext, uri: object) -> str:
        """The backend of a URI this client may see; else "not found", as for a URI nobody serves."""
        owner = self._resource_owner(uri)
        if not permits_uri(self.profile(context.session), owner, str(uri)):
            raise JsonRpcFault(error_codes.RESOURCE_NOT_FOUND, f"Resource not found: no backend serves {uri!r}.")
        return owner

    async def _by_uri(self, context: CallContext, method: str, params: dict[str, Any]) -> bytes:
        return await self._forward(context, self._visible_owner(context, params.get("uri")), method, params)

    async def _subscription(self, context: CallContext, method: str, params: dict[str, Any]) -> bytes:
        """Subscriptions are per session; the backend sees one subscription per URI while anyone holds it."""
        uri = params.get("uri")
        session = context.session
        # A subscription it holds can always be released (its view may have lost the URI since).
        held = isinstance(uri, str) and method == "resources/unsubscribe" and uri in session.subscriptions
        owner = self._resource_owner(uri) if held else self._visible_owner(context, uri)
        assert isinstance(uri, str)
        if method == "resources/unsubscribe":
            session.subscriptions.discard(uri)
            if self._held_by_anyone(uri):
                return jsonrpc.result_bytes(context.request_id, {})  # others still listen
            return await self._forward(context, owner, method, params)
        result, error = await self.call_backend(context, owner, method, params)
        if error:
            return jsonrpc.spliced_error(context.request_id, error)
        session.subscriptions.add(uri)
        return jsonrpc.spliced_result(context.request_id, result)

    async def _complete(self, context: CallContext, params: dict[str, Any]) -> bytes:
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise JsonRpcFault(error_codes.INVALID_PARAMS, 'Invalid params: completion/complete needs a "ref" object.')
        if ref.get("type") == "ref/prompt":
            name = str(ref.get("name"))
            route = self.catalog.prompts.routes.get(name)
            if route is None or not permits_name(self.profile(context.session), "prompt", route.server_key, name):
                raise JsonRpcFault(error_codes.INVALID_PARAMS, f"Unknown prompt: {ref.get('name')!r}.")
            forwarded = {**params, "ref": {**ref, "name": route.original_name}}
            return await self._forward(context, route.server_key, "completion/complete", forwarded)
        if ref.get("type") == "ref/resource":
            owner = self._visible_owner(context, ref.get("uri"))
            return await self._forward(context, owner, "completion/complete", params)
        raise JsonRpcFault(error_codes.INVALID_PARAMS, f"Invalid params: unknown ref type {ref.get('type')!r}.")

    async def listen(self, session: ClientSession, message: Incoming, emit: Callable[[bytes, bool], None]) -> Listener:
        """Open a `subscriptions/listen` stream (the front end carries its frames until it ends)."""
        assert message.id is not None
        await self.backends.settle_startup(self.settings.startup_wait_s)
        kinds, uris = parse_filter(message.params)  # FilterError is a ValueError: the caller answers -32602
        self.listeners.admit(session.principal)  # TooManyListeners: the caller answers 503
        profile = self.profile(session)
        honoured: list[str] = []
        subscribe: list[tuple[str, str]] = []
        for uri in uris:
            owner = self.catalog.resources.route(uri)
            link = self.backends.links.get(owner) if owner is not None else None
            offered = link.capabilities.get("resources") if link is not None else None
            if owner is None or not isinstance(offered, dict) or not offered.get("subscribe"):
                continue  # nobody would ever announce it: not honoured, so the acknowledgement omits it
            if not permits_uri(profile, owner, uri):
                continue
            honoured.append(uri)
            if not self._held_by_anyone(uri):
                subscribe.append((owner, uri))
        for owner, uri in subscribe:
            try:
                _, error = await self.backends.call(
                    owner, "resources/subscribe", {"uri": uri}, self.settings.request_timeout_s
                )
            except BackendUnavailable:
                error = b"unavailable"
            if error:
                honoured.remove(uri)
        listener = Listener(message.id, session, emit, kinds, frozenset(honoured))
        listener.on_close.append(lambda: self._release_unheld(listener.uris))
        self.listeners.add(listener)
        listener.acknowledge()
        return listener

    async def _set_level(self, session: ClientSession, request_id: jsonrpc.RequestId, params: dict[str, Any]) -> bytes:
        """Fan out to every backend that logs; the gateway answers once they all have."""
        level = params.get("level")
        if not isinstance(level, str):
            raise JsonRpcFault(error_codes.INVALID_PARAMS, 'Invalid params: logging/setLevel needs a string "level".')
        if level not in LOG_LEVELS:
            raise JsonRpcFault(error_codes.INVALID_PARAMS, f"Invalid params: unknown logging level {level!r}.")
        session.log_level = level
        # The backends are shared: they get the most verbose level any session asked for, and the gateway
        # filters per session (one client's "error" must not silence another's "debug").
        wanted = [s.log_level for s in self.sessions.all() if s.log_level in LOG_LEVELS]
        shared = {**params, "level": min(wanted, key=LOG_LEVELS.__getitem__)}
        # A modern backend's worker keeps the level for the backend's requests (their _meta logLevel): the
        # SDK's servers log per request without declaring the (deprecated) capability.
        keys = [
            k for k, link in self.backends.links.items() if "logging" in link.capabilities or link.era == Era.MODERN
        ]
        timeout = self.settings.request_timeout_s
        outcomes = await asyncio.gather(
            *(self.backends.call(key, "logging/setLevel", shared, timeout) for key in keys), return_exceptions=True
        )
        for key, outcome in zip(keys, outcomes, strict=True):
            if isinstance(outcome, BaseException) or outcome[1]:
                log.warning("Backend %s did not accept logging/setLevel: %r", key, outcome)
        return jsonrpc.result_bytes(request_id, {})
