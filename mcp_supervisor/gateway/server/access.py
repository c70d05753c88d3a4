"""Per-client access against the live catalog: what a session's profile (clients.json) lets it see.

One rule for every list and every call: a tool or prompt is visible when its backend is one of the profile's
`servers` and its exposed name passes the patterns; a resource, a resource template or a URI when its backend
is one of the `servers` and the URI (or the `uriTemplate`) passes the resource patterns. What is not visible
does not exist for the client: the core answers exactly as it answers for a name or URI nobody serves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from mcp_supervisor.config.clients import EVERYTHING, ClientsConfig, Profile
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.frontends.auth import Identity
from mcp_supervisor.gateway.server.catalog_view import CatalogView
from mcp_supervisor.gateway.server.jsonrpc import JsonRpcFault
from mcp_supervisor.gateway.server.kinds import PROMPTS, TOOLS, NamedKind
from mcp_supervisor.gateway.server.request_context import ProfileMemo
from mcp_supervisor.protocol import error_codes


def identity_profile(clients: ClientsConfig, settings: Settings, identity: Identity) -> Profile:
    """What a principal may see: its first matching clients.json entry (sessions cache it per file generation;
    /health/backends and /metrics ask per request)."""
    if not clients.present:
        return EVERYTHING
    key = settings.allowed_keys[identity.index] if identity.kind == "key" else ""
    token = settings.allowed_tokens[identity.index] if identity.kind == "token" else ""
    return clients.resolve(key, token, identity.claims, identity.kind == "stdio")


def permits_name(profile: Profile, kind: NamedKind, server_key: str, name: str) -> bool:
    """A tool or prompt (`kind`) of `server_key`, exposed as `name`."""
    if profile is EVERYTHING:
        return True
    return profile.sees_server(server_key) and kind.patterns(profile).permits(name)


def permits_uri(profile: Profile, owner: str | None, uri: str) -> bool:
    """A resource URI (or a template's `uriTemplate`) served by `owner` (None: no backend is known for it)."""
    if profile is EVERYTHING:
        return True
    return (owner is None or profile.sees_server(owner)) and profile.resources.permits(uri)


def _named(profile: Profile, kind: NamedKind, catalog: CatalogView) -> list[dict[str, Any]]:
    routes = kind.routes(catalog)

    def visible(item: Mapping[str, Any]) -> bool:
        name = str(item.get("name", ""))
        route = routes.get(name)
        return route is not None and permits_name(profile, kind, route.server_key, name)

    return [item for item in kind.items(catalog) if visible(item)]


def _resources(profile: Profile, catalog: CatalogView) -> list[dict[str, Any]]:
    resources = catalog.resources
    return [
        item
        for item in resources.resources
        if permits_uri(profile, resources.routes.get(str(item.get("uri", ""))), str(item.get("uri", "")))
    ]


def _templates(profile: Profile, catalog: CatalogView) -> list[dict[str, Any]]:
    # Templates and their routes are built side by side: the n-th route is the n-th template's backend.
    resources = catalog.resources
    return [
        item
        for item, (_, owner) in zip(resources.templates, resources.template_routes, strict=True)
        if permits_uri(profile, owner, str(item.get("uriTemplate", "")))
    ]


_VISIBLE: dict[str, Callable[[Profile, CatalogView], list[dict[str, Any]]]] = {
    "tools": lambda profile, catalog: _named(profile, TOOLS, catalog),
    "prompts": lambda profile, catalog: _named(profile, PROMPTS, catalog),
    "resources": _resources,
    "templates": _templates,
}


def visible_items(profile: Profile, catalog: CatalogView, attribute: str) -> list[dict[str, Any]]:
    """The items of one list (`tools`, `prompts`, `resources` or `templates`) this profile may see."""
    return _VISIBLE[attribute](profile, catalog)


class Viewer(Protocol):
    """A session, or one request's context: whose view, and where it is kept."""

    @property
    def identity(self) -> Identity: ...

    @property
    def profile_memo(self) -> ProfileMemo: ...


class Profiles:
    """clients.json and what each request's principal may see by it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.clients = ClientsConfig()
        self.generation = 0

    @property
    def present(self) -> bool:
        """Principals may have different views (the lists are private to each)."""
        return self.clients.present

    def set(self, clients: ClientsConfig) -> bool:
        """A new clients.json: False if it is the same."""
        if clients == self.clients:
            return False
        self.clients = clients
        self.generation += 1
        return True

    def of(self, viewer: Viewer) -> Profile:
        """What this request's principal may see, resolved once per file generation (per session in the
        handshake era, per request in the 2026-07-28 one)."""
        if not self.clients.present:
            return EVERYTHING
        memo = viewer.profile_memo
        if memo.generation != self.generation or memo.profile is None:
            memo.profile = identity_profile(self.clients, self._settings, viewer.identity)
            memo.generation = self.generation
        return memo.profile


def resource_owner(catalog: CatalogView, uri: object) -> str:
    """The backend that serves `uri`; else "not found"."""
    if not isinstance(uri, str):
        raise JsonRpcFault(error_codes.INVALID_PARAMS, 'Invalid params: a string "uri" is required.')
    owner = catalog.resources.route(uri)
    if owner is None:
        raise JsonRpcFault(error_codes.RESOURCE_NOT_FOUND, f"Resource not found: no backend serves {uri!r}.")
    return owner


def visible_owner(catalog: CatalogView, profile: Profile, uri: object) -> str:
    """The backend of a URI this client may see; else "not found", as for a URI nobody serves."""
    owner = resource_owner(catalog, uri)
    if not permits_uri(profile, owner, str(uri)):
        raise JsonRpcFault(error_codes.RESOURCE_NOT_FOUND, f"Resource not found: no backend serves {uri!r}.")
    return owner
