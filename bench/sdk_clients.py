"""The official SDK's clients as load generator sessions (`--mode sdk` and `--mode modern`), and the echo call
that checks every reply.
"""

from __future__ import annotations

import contextlib
from typing import Any

from raw_client import BenchError, Mismatch, RawMcpSession, RawSseSession

# SDK sessions


class SdkSession:
    """The official SDK client; `request` is only used for `tools/call` and `tools/list`."""

    def __init__(self, url: str, transport: str) -> None:
        self.url = url
        self.transport = transport
        self.stack = contextlib.AsyncExitStack()
        self.session: Any = None
        self.reconnects = 0

    async def initialize(self) -> None:
        import httpx2
        from mcp import ClientSession
        from mcp.client.sse import sse_client
        from mcp.client.streamable_http import streamable_http_client

        if self.transport == "mcp":
            http = await self.stack.enter_async_context(httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=120.0)))
            read, write = await self.stack.enter_async_context(streamable_http_client(self.url, http_client=http))
        else:
            read, write = await self.stack.enter_async_context(sse_client(self.url, sse_read_timeout=120.0))
        self.session = await self.stack.enter_async_context(ClientSession(read, write))
        await self.session.initialize()

    async def call_echo(self, tool: str, text: str) -> str:
        result = await self.session.call_tool(tool, {"text": text})
        if result.is_error:
            raise BenchError(f"tool error: {result.content}")
        return str(result.content[0].text)

    async def close(self, delete: bool = False) -> None:
        await self.stack.aclose()


class SdkModernSession:
    """The official SDK client pinned to 2026-07-28: `Client(..., mode="2026-07-28")` over Streamable HTTP. Entering
    it sends nothing (the version is adopted, not negotiated), so the first call is also the first request."""

    MODE = "2026-07-28"

    def __init__(self, url: str) -> None:
        self.url = url
        self.stack = contextlib.AsyncExitStack()
        self.client: Any = None
        self.reconnects = 0

    async def initialize(self) -> None:
        import httpx2
        from mcp.client.client import Client
        from mcp.client.streamable_http import streamable_http_client

        http = await self.stack.enter_async_context(httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=120.0)))
        transport = streamable_http_client(self.url, http_client=http)
        # No response cache: tools/call is not cacheable anyway, and the direct and gateway runs stay alike.
        self.client = await self.stack.enter_async_context(Client(transport, mode=self.MODE, cache=None))

    async def call_echo(self, tool: str, text: str) -> str:
        result = await self.client.call_tool(tool, {"text": text})
        if result.is_error:
            raise BenchError(f"tool error: {result.content}")
        return str(result.content[0].text)

    async def close(self, delete: bool = False) -> None:
        await self.stack.aclose()


def make_session(mode: str, transport: str, url: str, headers: dict[str, str] | None = None) -> Any:
    if mode == "modern":
        if transport != "mcp":
            raise SystemExit("--mode modern is Streamable HTTP (/mcp) only: the 2026-07-28 era has no legacy SSE")
        if headers:
            raise BenchError("--header is for the raw client only")
        return SdkModernSession(url)
    if mode == "sdk":
        if headers:
            raise BenchError("--header is for the raw client only")
        return SdkSession(url, transport)
    return RawMcpSession(url, headers) if transport == "mcp" else RawSseSession(url, headers)


async def call_echo(session: Any, tool: str, text: str) -> None:
    """One checked echo call: raises BenchError or Mismatch."""
    if isinstance(session, SdkSession | SdkModernSession):
        answered = await session.call_echo(tool, text)
    else:
        reply = await session.request("tools/call", {"name": tool, "arguments": {"text": text}})
        if "error" in reply:
            raise BenchError(f"JSON-RPC error: {reply['error']}")
        result = reply["result"]
        if result.get("isError"):
            raise BenchError(f"tool error: {result.get('content')}")
        answered = result["content"][0]["text"]
    if answered != text:
        raise Mismatch(f"asked to echo {text!r}, got {answered!r}")
