"""Per-client access against the live catalog: what a session's profile (clients.json) lets it see.

One rule for every list and every call: a tool or prompt is visible when its backend is one of the profile's
`servers` and its exposed name passes the patterns; a resource, a resource template or a URI when its backend
is one of the `servers` and the URI (or the `uriTemplate`) passes the resource patterns. What is not visible
does not exist for the client: the core answers exactly as it answers for a name or URI nobody serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp_supervisor.config.clients import EVERYTHING, ClientsConfig, Profile
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.frontends.auth import Identity
from mcp_supervisor.gateway.server.catalog import ToolRoute
from mcp_supervisor.gateway.server.catalog_view import CatalogView


def identity_profile(clients: ClientsConfig, settings: Settings, identity: Identity) -> Profile:
    """What a principal may see: its first matching clients.json entry (sessions cache it per file generation;
    /health/backends and /metrics ask per request)."""
    if not clients.present:
        return EVERYTHING
    key = settings.allowed_keys[identity.index] if identity.kind == "key" else ""
    token = settings.allowed_tokens[identity.index] if identity.kind == "token" else ""
    return clients.resolve(key, token, identity.claims, identity.kind == "stdio")


def permits_name(profile: Profile, kind: str, server_key: str, name: str) -> bool:
    """A tool (`kind` "tool") or prompt of `server_key`, exposed as `name`."""
    if profile is EVERYTHING:
        return True
    patterns = profile.tools if kind == "tool" else profile.prompts
    return profile.sees_server(server_key) and patterns.permits(name)


def permits_uri(profile: Profile, owner: str | None, uri: str) -> bool:
    """A resource URI (or a template's `uriTemplate`) served by `owner` (None: no backend is known for it)."""
    if profile is EVERYTHING:
        return True
    return (owner is None or profile.sees_server(owner)) and profile.resources.permits(uri)


def _named(profile: Profile, kind: str, routes: Mapping[str, ToolRoute], item: Mapping[str, Any]) -> bool:
    name = str(item.get("name", ""))
    route = routes.get(name)
    return route is not None and permits_name(profile, kind, route.server_key, name)


def visible_items(profile: Profile, catalog: CatalogView, attribute: str) -> list[dict[str, Any]]:
    """The items of one list (`tools`, `prompts`, `resources` or `templates`) this profile may see."""
    if attribute == "tools":
        return [item for item in catalog.tools.tools if _named(profile, "tool", catalog.tools.routes, item)]
    if attribute == "prompts":
        return [item for item in catalog.prompts.prompts if _named(profile, "prompt", catalog.prompts.routes, item)]
    resources = catalog.resources
    if attribute == "resources":
        return [
            item
            for item in resources.resources
            if permits_uri(profile, resources.routes.get(str(item.get("uri", ""))), str(item.get("uri", "")))
        ]
    # Templates and their routes are built side by side: the n-th route is the n-th template's backend.
    return [
        item
        for item, (_, owner) in zip(resources.templates, resources.template_routes, strict=True)
        if permits_uri(profile, owner, str(item.get("uriTemplate", "")))
    ]
