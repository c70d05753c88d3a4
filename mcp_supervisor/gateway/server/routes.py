"""The core's request routes: a table of objects, each with its own `matches` and `handle` (as Starlette's).

`Router` takes the first route that matches a request: by its method, and where a route needs it by its
context (the session-scoped methods exist only in the handshake era) or its params. A route placed before
another claims what it matches first: a meta-tool (tool search) ahead of NamedRoute(TOOLS), say. The
catalog's lists and its by-name requests are one route class each, instantiated per kind (kinds.py): tools
and prompts share one rule for naming, access and turns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from mcp_supervisor.config.clients import EVERYTHING, Profile
from mcp_supervisor.gateway.dataplane.backends import Backends, CallContext
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.access import Profiles, permits_name, visible_items, visible_owner
from mcp_supervisor.gateway.server.catalog_view import CatalogView
from mcp_supervisor.gateway.server.jsonrpc import JsonRpcFault
from mcp_supervisor.gateway.server.kinds import PROMPTS, ListKind, NamedKind
from mcp_supervisor.gateway.server.pagination import page
from mcp_supervisor.gateway.server.server_requests import ServerRequests
from mcp_supervisor.gateway.server.sessions import ClientSession
from mcp_supervisor.protocol import error_codes
from mcp_supervisor.protocol.versions import Era


class Refusal(Protocol):
    """A held (quarantined) name: whose it is, and the error that says why and how to approve it."""

    @property
    def server_key(self) -> str: ...
    def message(self) -> str: ...


Forward = Callable[[CallContext, str, str, dict[str, Any] | None], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Kit:
    """What the catalog's routes share: the catalog, who sees what, and the way to a backend."""

    catalog: CatalogView
    profiles: Profiles
    settle: Callable[[], Awaitable[None]]  # until the backends starting up have linked (or the wait ends)
    forward: Forward  # backend_calls.BackendCalls.forward
    page_size: int


class Route:
    methods: frozenset[str] = frozenset()

    def matches(self, method: str, call: CallContext) -> bool:
        """Whether this route serves the request (`call.session` is its context, `call.params` its params)."""
        return method in self.methods

    def owner(self, name: str) -> str:
        """The backend a request of this route for `name` goes to ("" if none, or not this kind of route)."""
        return ""

    async def handle(self, call: CallContext, method: str) -> bytes:
        raise NotImplementedError


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)

    def route(self, method: str, call: CallContext) -> Route | None:
        return next((route for route in self.routes if route.matches(method, call)), None)

    def owner(self, method: str, name: str) -> str:
        route = next((route for route in self.routes if method in route.methods), None)
        return route.owner(name) if route is not None else ""


class Reply(Route):
    """A fixed answer: ping's empty result, or a refusal."""

    def __init__(self, method: str, result: dict[str, Any] | None = None, fault: JsonRpcFault | None = None):
        self.methods = frozenset({method})
        self._result = result
        self._fault = fault

    async def handle(self, call: CallContext, method: str) -> bytes:
        if self._fault is not None:
            raise self._fault
        return jsonrpc.result_bytes(call.request_id, self._result or {})


class SessionRoute(Route):
    """A handshake-era method that acts on its session (logging/setLevel, resources/subscribe)."""

    def __init__(
        self, methods: Iterable[str], handler: Callable[[CallContext, ClientSession, str], Awaitable[bytes]]
    ) -> None:
        self.methods = frozenset(methods)
        self._handler = handler

    def matches(self, method: str, call: CallContext) -> bool:
        return method in self.methods and call.session.session is not None

    async def handle(self, call: CallContext, method: str) -> bytes:
        assert call.session.session is not None
        return await self._handler(call, call.session.session, method)


class ListRoute(Route):
    """tools/list, prompts/list, resources/list, resources/templates/list: the caller's view, paginated."""

    def __init__(self, kind: ListKind, kit: Kit) -> None:
        self.methods = frozenset({kind.method})
        self.kind = kind
        self._kit = kit

    async def handle(self, call: CallContext, method: str) -> bytes:
        kit, kind = self._kit, self.kind
        profile = kit.profiles.of(call.session)
        await kit.settle()
        cursor = call.params.get("cursor")
        if profile is not EVERYTHING:
            # A restricted view is filtered per request (the shared first-page cache is everyone's view).
            items = visible_items(profile, kit.catalog, kind.name)
            return jsonrpc.spliced_result(
                call.request_id, jsonrpc.encode_json(page(items, kind.field, cursor, kit.page_size))
            )
        if cursor is None:
            cached = kit.catalog.cached_first_page(method)
            if cached is not None:
                return jsonrpc.spliced_result(call.request_id, cached)
        encoded = jsonrpc.encode_json(page(kind.items(kit.catalog), kind.field, cursor, kit.page_size))
        if cursor is None:
            kit.catalog.cache_first_page(method, encoded)
        return jsonrpc.spliced_result(call.request_id, encoded)


class NamedRoute(Route):
    """tools/call, prompts/get: routed by exposed name, forwarded under the backend's own name."""

    def __init__(
        self,
        kind: NamedKind,
        kit: Kit,
        backends: Backends,
        server_requests: ServerRequests,
        held: Callable[[str, str], Refusal | None] = lambda kind, name: None,
    ) -> None:
        self.methods = frozenset({kind.method})
        self.kind = kind
        self._kit = kit
        self._backends = backends
        self._server_requests = server_requests
        self._held = held  # pinning: why a name out of the catalog is held (quarantined), if it is

    def owner(self, name: str) -> str:
        route = self.kind.routes(self._kit.catalog).get(name)
        return route.server_key if route is not None else ""

    async def handle(self, call: CallContext, method: str) -> bytes:
        kit, kind = self._kit, self.kind
        await kit.settle()  # no "Unknown tool" while one links
        params = call.params
        name = params.get("name")
        if not isinstance(name, str):
            raise JsonRpcFault(error_codes.INVALID_PARAMS, f'Invalid params: {method} needs a string "name".')
        route = kind.routes(kit.catalog).get(name)
        profile = kit.profiles.of(call.session)
        unknown = JsonRpcFault(
            error_codes.INVALID_PARAMS, f"Unknown {kind.noun}: {name!r} is not exposed by this gateway."
        )
        if route is None:
            held = self._held(kind.noun, name)
            if held is not None and permits_name(profile, kind, held.server_key, name):
                raise JsonRpcFault(error_codes.INVALID_PARAMS, held.message())  # quarantined: say so, and how
            self._name_its_backend(name, profile)
            raise unknown
        if not permits_name(profile, kind, route.server_key, name):
            raise unknown  # not this client's to use: unknown to it, exactly like one that does not exist
        forwarded = {**params, "name": route.original_name}
        call.operation = f"{method} {route.original_name}"
        if call.session.era == Era.MODERN or not self._server_requests.is_interactive(route.server_key, call.operation):
            # A modern call does not take turns: it may wait minutes for its client's retry (parked calls are
            # left out of attribution instead, see server_requests._attribute).
            return await kit.forward(call, route.server_key, method, forwarded)
        async with self._server_requests.turn(route.server_key, call.session.principal):
            return await kit.forward(call, route.server_key, method, forwarded)

    def _name_its_backend(self, name: str, profile: Profile) -> None:
        """An unknown name of a backend that is down: BackendUnavailable names that backend, not "unknown" (to
        a client that may see it: to others that backend does not exist)."""
        backends = self._backends
        down = {k: link for k, link in backends.last_links.items() if k not in backends.links}
        stale = self.kind.routes_of(self._kit.catalog, down).get(name)
        if stale is not None and permits_name(profile, self.kind, stale.server_key, name):
            backends.require_link(stale.server_key)  # restarting, crashed
        owner = self._never_linked_owner(name)
        if owner is not None and permits_name(profile, self.kind, owner, name):
            # Its backend never got as far as listing its tools (FATAL from the start): still name it.
            backends.require_link(owner)

    def _never_linked_owner(self, name: str) -> str | None:
        """The configured backend that would expose `name` but never linked: by its default prefix
        `<key><SEP>`, or by a tool_config.json rename of one of its tools. The longest key wins."""
        catalog = self._kit.catalog
        separator = catalog.separator
        down = [key for key in self._backends.statuses if key not in self._backends.last_links]
        renamed = {
            qualified for qualified, override in catalog.tool_config.tools.items() if override.exposed_name == name
        }
        owners = [
            key
            for key in down
            if name.startswith(f"{key}{separator}") or any(q.startswith(f"{key}{separator}") for q in renamed)
        ]
        return max(owners, key=len) if owners else None


class ResourceRoute(Route):
    """resources/read: to the backend that serves the URI, if the client may see it."""

    methods = frozenset({"resources/read"})

    def __init__(self, kit: Kit) -> None:
        self._kit = kit

    def owner(self, name: str) -> str:
        return self._kit.catalog.resources.route(name) or ""

    async def handle(self, call: CallContext, method: str) -> bytes:
        kit = self._kit
        owner = visible_owner(kit.catalog, kit.profiles.of(call.session), call.params.get("uri"))
        return await kit.forward(call, owner, method, call.params)


class CompletionRoute(Route):
    """completion/complete: to the backend of the prompt or resource it completes for."""

    methods = frozenset({"completion/complete"})

    def __init__(self, kit: Kit) -> None:
        self._kit = kit

    async def handle(self, call: CallContext, method: str) -> bytes:
        kit, params = self._kit, call.params
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise JsonRpcFault(error_codes.INVALID_PARAMS, 'Invalid params: completion/complete needs a "ref" object.')
        profile = kit.profiles.of(call.session)
        if ref.get("type") == "ref/prompt":
            name = str(ref.get("name"))
            route = PROMPTS.routes(kit.catalog).get(name)
            if route is None or not permits_name(profile, PROMPTS, route.server_key, name):
                raise JsonRpcFault(error_codes.INVALID_PARAMS, f"Unknown prompt: {ref.get('name')!r}.")
            forwarded = {**params, "ref": {**ref, "name": route.original_name}}
            return await kit.forward(call, route.server_key, method, forwarded)
        if ref.get("type") == "ref/resource":
            owner = visible_owner(kit.catalog, profile, ref.get("uri"))
            return await kit.forward(call, owner, method, params)
        raise JsonRpcFault(error_codes.INVALID_PARAMS, f"Invalid params: unknown ref type {ref.get('type')!r}.")
