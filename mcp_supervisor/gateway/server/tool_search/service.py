"""Tool search as the core sees it: which clients are in search mode, what their tools/list holds, and what a
`search_tools` or `call_tool` call becomes.

Two routes of the core's table call it (routes.py). `listed` answers tools/list for a client in search mode
(the meta-tools, and the profile's `alwaysShow` tools). `intercept` runs first thing in tools/call:
`search_tools` is answered here, and `call_tool` is unwrapped into the named tool's own tools/call params,
which then take the direct path: the profile check (a tool the client may not see stays unknown), pinning, the
audit trail (naming the real tool), progress, cancellation, logging and server→client requests all happen
there, exactly as for a direct call.

The index covers the catalog every client's view is cut from (`CatalogView.tools`), rebuilt when that object is
replaced (any catalog change: list_changed, a reload, tool_config.json), and each search keeps only the
tools the client's profile lets it see: what its own tools/list would list.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from mcp_supervisor.config.clients import EVERYTHING, Profile
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.access import Viewer, permits_name, visible_items
from mcp_supervisor.gateway.server.catalog import AggregatedTools
from mcp_supervisor.gateway.server.catalog_view import CatalogView
from mcp_supervisor.gateway.server.kinds import TOOLS
from mcp_supervisor.gateway.server.tool_search.index import SearchIndex
from mcp_supervisor.gateway.server.tool_search.meta_tools import (
    CALL_DEFINITION,
    CALL_TOOL,
    META_TOOLS,
    SEARCH_DEFINITION,
    SEARCH_TOOLS,
    BadArguments,
    call_target,
    error_result,
    search_arguments,
    search_result,
)

if TYPE_CHECKING:
    from mcp_supervisor.gateway.dataplane.backends import CallContext


class _Settling(Protocol):
    async def settle_startup(self, window_s: float) -> None: ...


class SearchHost(Protocol):
    """What tool search needs of the gateway: the catalog, who sees what, and the start-up wait."""

    @property
    def catalog(self) -> CatalogView: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def backends(self) -> _Settling: ...
    def profile(self, viewer: Viewer) -> Profile: ...


class ToolSearch:
    def __init__(self, settings: Settings) -> None:
        self.default_mode = settings.tool_search
        self.threshold = settings.tool_search_threshold
        self._source: AggregatedTools | None = None
        self._index = SearchIndex(())

    def mode(self, profile: Profile) -> str:
        return profile.tool_search or self.default_mode

    def index(self, tools: AggregatedTools) -> SearchIndex:
        """The index of this catalog; a new catalog object (any change) gets a new index at its first search."""
        if tools is not self._source:
            self._index = SearchIndex(tools.tools)
            self._source = tools
        return self._index

    def _view(self, host: SearchHost, profile: Profile) -> list[dict[str, Any]]:
        return host.catalog.tools.tools if profile is EVERYTHING else visible_items(profile, host.catalog, "tools")

    def listed(self, host: SearchHost, profile: Profile) -> list[dict[str, Any]] | None:
        """The tools/list of a client in search mode (None: not in search mode, the core lists its view)."""
        mode = self.mode(profile)
        if mode == "off":
            return None
        view = self._view(host, profile)
        if mode == "auto" and len(view) <= self.threshold:
            return None
        shown = [
            tool
            for tool in view
            if tool.get("name") not in META_TOOLS
            and any(fnmatch.fnmatchcase(str(tool.get("name")), pattern) for pattern in profile.always_show)
        ]
        return [SEARCH_DEFINITION, CALL_DEFINITION, *shown]

    def search(self, host: SearchHost, profile: Profile, query: str, limit: int) -> list[Mapping[str, Any]]:
        """The best `limit` tools of this profile's view for `query`, best first."""
        tools = host.catalog.tools
        routes = tools.routes

        def visible(tool: Mapping[str, Any]) -> bool:
            name = str(tool.get("name"))
            route = routes.get(name)
            return route is not None and name not in META_TOOLS and permits_name(profile, TOOLS, route.server_key, name)

        return self.index(tools).search(query, limit, visible)

    def _shadowed(self, host: SearchHost, profile: Profile, name: str, mode: str) -> bool:
        """A real tool of the view with a meta-tool's name is called as itself while search mode is not on for
        this client (auto under the threshold); in search mode the meta-tool wins."""
        route = host.catalog.tools.routes.get(name)
        if route is None or not permits_name(profile, TOOLS, route.server_key, name):
            return False
        return mode == "auto" and len(self._view(host, profile)) <= self.threshold

    async def intercept(
        self, host: SearchHost, context: CallContext, params: dict[str, Any]
    ) -> bytes | dict[str, Any] | None:
        """tools/call, first: the reply to a `search_tools` call; the params of the tool a `call_tool` call
        names (also put in `context.params`, which the audit trail and attribution read); None for the rest."""
        name = params.get("name")
        if name not in META_TOOLS:
            return None
        assert isinstance(name, str)
        profile = host.profile(context.session)
        mode = self.mode(profile)
        if mode == "off" or self._shadowed(host, profile, name, mode):
            return None
        try:
            if name == SEARCH_TOOLS:
                query, limit = search_arguments(params.get("arguments"))
                await host.backends.settle_startup(host.settings.startup_wait_s)
                found = self.search(host, profile, query, limit)
                return jsonrpc.result_bytes(context.request_id, search_result(query, found))
            target, arguments = call_target(params.get("arguments"))
        except BadArguments as why:
            return jsonrpc.result_bytes(context.request_id, error_result(str(why)))
        unwrapped = {**params, "name": target, "arguments": arguments}
        context.params = unwrapped
        return unwrapped


def binding_name(params: Mapping[str, Any]) -> str:
    """The name a 2026-07-28 requestState is bound to: for `call_tool`, the tool it calls (so that a state
    issued for one tool cannot resume a call of another)."""
    name = str(params.get("name"))
    arguments = params.get("arguments")
    if name == CALL_TOOL and isinstance(arguments, dict):
        return f"{CALL_TOOL} {arguments.get('name')}"
    return name
