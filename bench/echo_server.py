"""The benchmark's echo backend, written with the official MCP Python SDK (`MCPServer`).

Tools: `echo(text)` answers `text` unchanged (so the load generator can check every reply is its own), and
`sleep(ms)` answers after `ms` milliseconds. `--tools K` registers K more trivial tools (`noop_0` …), to build
large catalogs.

Transports:
- stdio (the default): what a worker of the gateway runs;
- `--http PORT`: Streamable HTTP at http://127.0.0.1:PORT/mcp. The SDK's default answers each POST with a
  one-event SSE stream; `--json-response` makes it answer with plain JSON instead (the SDK's `json_response`
  mode). The benchmark's "direct" baseline uses the default (what an SDK server does out of the box);
- `--sse PORT`: legacy HTTP+SSE at http://127.0.0.1:PORT/sse (+ POST /messages/?session_id=...).
"""

from __future__ import annotations

import argparse
import asyncio

from mcp.server.mcpserver import MCPServer


def build(name: str, extra_tools: int) -> MCPServer:
    server = MCPServer(name)

    @server.tool(description="Answer the given text unchanged.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Sleep for the given milliseconds, then answer.")
    async def sleep(ms: int) -> str:
        await asyncio.sleep(ms / 1000)
        return f"slept {ms} ms"

    for index in range(extra_tools):

        def noop(value: str = "") -> str:
            return value

        server.add_tool(noop, name=f"noop_{index}", description=f"Trivial tool number {index}: answers its input.")
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="bench-echo", help="the server name it announces")
    parser.add_argument("--tools", type=int, default=0, metavar="K", help="register K extra trivial tools")
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--http", type=int, metavar="PORT", help="serve Streamable HTTP on 127.0.0.1:PORT/mcp")
    transport.add_argument("--sse", type=int, metavar="PORT", help="serve legacy HTTP+SSE on 127.0.0.1:PORT/sse")
    parser.add_argument("--json-response", action="store_true", help="with --http: answer POSTs with plain JSON")
    args = parser.parse_args()

    server = build(args.name, args.tools)
    if args.http is None and args.sse is None:
        server.run("stdio")
        return

    import uvicorn

    if args.http is not None:
        app = server.streamable_http_app(host="127.0.0.1", json_response=args.json_response)
        port = args.http
    else:
        app = server.sse_app(host="127.0.0.1")
        port = args.sse
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
