"""Resource subscriptions, both eras: resources/subscribe of a session, `subscriptions/listen` streams.

Subscriptions are per client; a backend is shared, so it sees one subscription per URI while anyone (a
session or a listen stream) holds it, and an unsubscribe once nobody does. resources/updated goes to the
holders whose view (clients.json) still has the resource.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from mcp_supervisor.gateway.dataplane.backends import Backends, BackendUnavailable, CallContext
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.access import Profiles, permits_uri, resource_owner, visible_owner
from mcp_supervisor.gateway.server.catalog_view import CatalogView
from mcp_supervisor.gateway.server.jsonrpc import Incoming
from mcp_supervisor.gateway.server.listen_streams import Listener, Listeners, parse_filter
from mcp_supervisor.gateway.server.request_context import RequestContext
from mcp_supervisor.gateway.server.sessions import ClientSession, SessionStore

Forward = Callable[[CallContext, str, str, dict[str, Any] | None], Awaitable[bytes]]
Call = Callable[[CallContext, str, str, dict[str, Any] | None], Awaitable[tuple[bytes, bytes]]]


class ResourceSubscriptions:
    def __init__(
        self,
        backends: Backends,
        catalog: CatalogView,
        sessions: SessionStore,
        listeners: Listeners,
        profiles: Profiles,
        keep: Callable[[asyncio.Future[Any]], None],
        timeout_s: float,
    ) -> None:
        self._backends = backends
        self._catalog = catalog
        self._sessions = sessions
        self._listeners = listeners
        self._profiles = profiles
        self._keep = keep
        self._timeout_s = timeout_s

    def held_by_anyone(self, uri: str) -> bool:
        return any(uri in other.subscriptions for other in self._sessions.all()) or self._listeners.holds(uri)

    def release_unheld(self, uris: set[str] | frozenset[str]) -> None:
        """Unsubscribe at the backends the URIs that no session and no listen stream holds any more."""
        for uri in uris:
            if self.held_by_anyone(uri):
                continue  # someone else still listens
            owner = self._catalog.resources.route(uri)
            if owner is not None and owner in self._backends.links:
                self._keep(asyncio.ensure_future(self._release(owner, uri)))

    async def _release(self, owner: str, uri: str) -> None:
        with contextlib.suppress(BackendUnavailable):  # a backend that is gone took its subscriptions along
            await self._backends.call(owner, "resources/unsubscribe", {"uri": uri}, self._timeout_s)

    def session_closed(self, session: ClientSession) -> None:
        self.release_unheld(session.subscriptions)
        session.subscriptions.clear()

    async def subscription(
        self, context: CallContext, session: ClientSession, method: str, params: dict[str, Any], call: Call
    ) -> bytes:
        """resources/subscribe or resources/unsubscribe of a handshake-era session."""
        uri = params.get("uri")
        profile = self._profiles.of(context.session)
        # A subscription it holds can always be released (its view may have lost the URI since).
        held = isinstance(uri, str) and method == "resources/unsubscribe" and uri in session.subscriptions
        owner = resource_owner(self._catalog, uri) if held else visible_owner(self._catalog, profile, uri)
        assert isinstance(uri, str)
        if method == "resources/unsubscribe":
            session.subscriptions.discard(uri)
            if self.held_by_anyone(uri):
                return jsonrpc.result_bytes(context.request_id, {})  # others still listen
            result, error = await call(context, owner, method, params)
        else:
            result, error = await call(context, owner, method, params)
            if not error:
                session.subscriptions.add(uri)
        if error:
            return jsonrpc.spliced_error(context.request_id, error)
        return jsonrpc.spliced_result(context.request_id, result)

    def resource_updated(self, key: str, params: dict[str, Any], message: dict[str, Any]) -> None:
        uri = params.get("uri")
        encoded = jsonrpc.encode_json(message)
        for session in self._sessions.all():
            if uri in session.subscriptions and permits_uri(self._profiles.of(session), key, str(uri)):
                session.notify(encoded)  # subscribers only, while their view has the resource
        if isinstance(uri, str):
            self._listeners.resource_updated(
                uri, params, lambda listener: permits_uri(self._profiles.of(listener.context), key, uri)
            )

    async def listen(self, context: RequestContext, message: Incoming) -> Listener:
        """Open a `subscriptions/listen` stream (the front end carries its frames, from `context.emit`, until
        it ends)."""
        assert message.id is not None
        kinds, uris = parse_filter(message.params)  # FilterError is a ValueError: the caller answers -32602
        self._listeners.admit(context.principal)  # TooManyListeners: the caller answers 503
        profile = self._profiles.of(context)
        honoured: list[str] = []
        subscribe: list[tuple[str, str]] = []
        for uri in uris:
            owner = self._catalog.resources.route(uri)
            link = self._backends.links.get(owner) if owner is not None else None
            offered = link.capabilities.get("resources") if link is not None else None
            if owner is None or not isinstance(offered, dict) or not offered.get("subscribe"):
                continue  # nobody would ever announce it: not honoured, so the acknowledgement omits it
            if not permits_uri(profile, owner, uri):
                continue
            honoured.append(uri)
            if not self.held_by_anyone(uri):
                subscribe.append((owner, uri))
        for owner, uri in subscribe:
            try:
                _, error = await self._backends.call(owner, "resources/subscribe", {"uri": uri}, self._timeout_s)
            except BackendUnavailable:
                error = b"unavailable"
            if error:
                honoured.remove(uri)
        listener = Listener(message.id, context, context.emit, kinds, frozenset(honoured))
        listener.on_close.append(lambda: self.release_unheld(listener.uris))
        self._listeners.add(listener)
        listener.acknowledge()
        return listener
