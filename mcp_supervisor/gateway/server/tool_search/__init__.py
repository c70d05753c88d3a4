"""Tool search (issue 26): a client in search mode lists two meta-tools, `search_tools` (BM25 over its own
view) and `call_tool` (which takes the direct tools/call path), instead of a catalog too long for its context.

- `text.py`: the terms of a tool definition or a query;
- `index.py`: the BM25 index and its ranking;
- `meta_tools.py`: the meta-tools' definitions, arguments and results;
- `service.py`: search mode per client, and the core's two hooks (tools/list, tools/call).
"""

from mcp_supervisor.gateway.server.tool_search.service import ToolSearch, binding_name

__all__ = ["ToolSearch", "binding_name"]
