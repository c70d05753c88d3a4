"""The kinds of things the catalog holds, each an object that knows where its items and routes live.

The routes (routes.py) and per-client access (access.py) take a kind instead of branching on a string: a new
kind, or a new rule for one (a filter of tools/list, a pin of tools/call), is written in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_supervisor.config.clients import Patterns, Profile
    from mcp_supervisor.gateway.dataplane.backends import BackendLink
    from mcp_supervisor.gateway.server.catalog import ToolRoute
    from mcp_supervisor.gateway.server.catalog_view import CatalogView


@dataclass(frozen=True, slots=True)
class NamedKind:
    """Tools or prompts: exposed by name, each name routed to one backend and that backend's own name."""

    noun: str  # "tool" | "prompt", as error messages say it
    method: str  # the request that uses one: "tools/call" | "prompts/get"
    _items: Callable[[CatalogView], list[dict[str, Any]]]
    _routes: Callable[[CatalogView], Mapping[str, ToolRoute]]
    _routes_of: Callable[[CatalogView, dict[str, BackendLink]], Mapping[str, ToolRoute]]
    _patterns: Callable[[Profile], Patterns]

    def items(self, catalog: CatalogView) -> list[dict[str, Any]]:
        return self._items(catalog)

    def routes(self, catalog: CatalogView) -> Mapping[str, ToolRoute]:
        """Exposed name → backend, over the linked backends."""
        return self._routes(catalog)

    def routes_of(self, catalog: CatalogView, links: dict[str, BackendLink]) -> Mapping[str, ToolRoute]:
        """The same over other links (backends that are down), to name the backend in an error."""
        return self._routes_of(catalog, links)

    def patterns(self, profile: Profile) -> Patterns:
        """The name patterns of a clients.json profile for this kind."""
        return self._patterns(profile)


TOOLS = NamedKind(
    "tool",
    "tools/call",
    lambda catalog: catalog.tools.tools,
    lambda catalog: catalog.tools.routes,
    lambda catalog, links: catalog.tools_of(links).routes,
    lambda profile: profile.tools,
)
PROMPTS = NamedKind(
    "prompt",
    "prompts/get",
    lambda catalog: catalog.prompts.prompts,
    lambda catalog: catalog.prompts.routes,
    lambda catalog, links: catalog.prompts_of(links).routes,
    lambda profile: profile.prompts,
)


@dataclass(frozen=True, slots=True)
class ListKind:
    """One of the four lists: its method, the field of its result, and where its items live."""

    method: str  # "tools/list"
    field: str  # "tools": the field of its result
    name: str  # "tools" | "prompts" | "resources" | "templates": access.visible_items's key
    _items: Callable[[CatalogView], list[dict[str, Any]]]

    def items(self, catalog: CatalogView) -> list[dict[str, Any]]:
        return self._items(catalog)


LISTS = (
    ListKind("tools/list", "tools", "tools", lambda catalog: catalog.tools.tools),
    ListKind("prompts/list", "prompts", "prompts", lambda catalog: catalog.prompts.prompts),
    ListKind("resources/list", "resources", "resources", lambda catalog: catalog.resources.resources),
    ListKind("resources/templates/list", "resourceTemplates", "templates", lambda catalog: catalog.resources.templates),
)
