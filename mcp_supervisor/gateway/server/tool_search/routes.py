"""Tool search in the core's route table: two routes placed ahead of the catalog's own tools routes.

`SearchListRoute` answers tools/list for a client in search mode (the meta-tools); `MetaToolRoute` claims a
tools/call of `search_tools` or `call_tool`, answers the first and hands the second, unwrapped, to the tools
route itself, so that a call through `call_tool` is a direct call in every respect (profile, pinning, audit,
turns, progress, input rounds)."""

from __future__ import annotations

from mcp_supervisor.gateway.dataplane.backends import CallContext
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.pagination import page
from mcp_supervisor.gateway.server.routes import Route
from mcp_supervisor.gateway.server.tool_search.meta_tools import META_TOOLS
from mcp_supervisor.gateway.server.tool_search.service import SearchHost, ToolSearch


class SearchListRoute(Route):
    methods = frozenset({"tools/list"})

    def __init__(self, search: ToolSearch, host: SearchHost, tools: Route) -> None:
        self._search = search
        self._host = host
        self._tools = tools  # the catalog's own tools/list route

    def matches(self, method: str, call: CallContext) -> bool:
        # Whether `auto` switches on depends on the view once the backends have linked: decided in handle().
        return method in self.methods and self._search.mode(self._host.profile(call.session)) != "off"

    async def handle(self, call: CallContext, method: str) -> bytes:
        host = self._host
        await host.backends.settle_startup(host.settings.startup_wait_s)
        listed = self._search.listed(host, host.profile(call.session))
        if listed is None:  # auto, and the view is small enough to list as it is
            return await self._tools.handle(call, method)
        encoded = jsonrpc.encode_json(page(listed, "tools", call.params.get("cursor"), host.settings.page_size))
        return jsonrpc.spliced_result(call.request_id, encoded)


class MetaToolRoute(Route):
    methods = frozenset({"tools/call"})

    def __init__(self, search: ToolSearch, host: SearchHost, tools: Route) -> None:
        self._search = search
        self._host = host
        self._tools = tools  # the catalog's own tools/call route

    def matches(self, method: str, call: CallContext) -> bool:
        return method in self.methods and call.params.get("name") in META_TOOLS

    def owner(self, name: str) -> str:
        return self._tools.owner(name)

    async def handle(self, call: CallContext, method: str) -> bytes:
        answered = await self._search.intercept(self._host, call, call.params)
        if isinstance(answered, bytes):
            return answered
        return await self._tools.handle(call, method)  # call_tool unwrapped into call.params, or a real tool
