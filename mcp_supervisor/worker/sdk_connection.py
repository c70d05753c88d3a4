"""SSE and Streamable HTTP backends through the MCP SDK's client transports, adapted to raw bytes.

The SDK is imported here only, so a worker of a stdio backend never pays for it. Its transports speak
pydantic `SessionMessage`s: envelopes are validated on the way in and dumped on the way out; their params and
results stay plain dicts, so nothing of the payload is lost.

HTTP headers per message, as the SDK's own client stamps them (mcp/client/session.py, `_make_handshake_stamp`
and `_make_modern_stamp`), carried by `ClientMessageMetadata(headers=...)`:
- handshake era: `MCP-Protocol-Version` once negotiated (the session id is the transport's);
- 2026-07-28: `MCP-Protocol-Version` on every POST, `Mcp-Method` on every request, `Mcp-Name` on tools/call,
  prompts/get and resources/read (base64 sentinel for what is not plain ASCII), and the `Mcp-Param-*` headers of
  a tool's `x-mcp-header` parameters. No initialize, so the transport mints no session and opens no GET stream.
  A `notifications/cancelled` for a request in flight is not POSTed: the transport closes that request's
  response stream, which is the 2026 wire's cancellation (`_consume_modern_cancellation`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
    find_invalid_x_mcp_header,
    mcp_param_headers,
    x_mcp_header_map,
)
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import JSONRPCRequest, jsonrpc_message_adapter

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.errors import BackendError
from mcp_supervisor.protocol.versions import MODERN_VERSIONS
from mcp_supervisor.worker.oauth_client import ClientCredentials

log = logging.getLogger("mcp_supervisor.worker")


class SdkConnection:
    def __init__(self, read_stream: Any, write_stream: Any, modern_headers: bool = False) -> None:
        self._read = read_stream
        self._write = write_stream
        self._metadata: ClientMessageMetadata | None = None
        self._version = ""
        # Streamable HTTP only: the 2026-07-28 per-request headers (the SSE transport is handshake-era).
        self._modern_headers = modern_headers
        self._modern = False
        # Tool name → its x-mcp-header parameters (property path → header token), from the last tools/list.
        self._param_headers: dict[str, dict[tuple[str, ...], str]] = {}

    async def send(self, message: bytes) -> None:
        parsed = jsonrpc_message_adapter.validate_json(message)
        metadata = self._modern_metadata(parsed) if self._modern else self._metadata
        await self._write.send(SessionMessage(parsed, metadata=metadata))

    def _modern_metadata(self, message: Any) -> ClientMessageMetadata:
        headers = {MCP_PROTOCOL_VERSION_HEADER: self._version}
        if isinstance(message, JSONRPCRequest):
            headers[MCP_METHOD_HEADER] = message.method
            params = message.params or {}
            name_key = NAME_BEARING_METHODS.get(message.method)
            if name_key is not None and isinstance(name := params.get(name_key), str):
                headers[MCP_NAME_HEADER] = encode_header_value(name)
            if message.method == "tools/call" and isinstance(name := params.get("name"), str):
                header_map = self._param_headers.get(name)
                arguments = params.get("arguments")
                if header_map and isinstance(arguments, dict):
                    headers.update(mcp_param_headers(header_map, arguments))
        return ClientMessageMetadata(headers=headers)

    async def messages(self) -> AsyncIterator[bytes]:
        async for item in self._read:
            if isinstance(item, Exception):
                continue  # the transport logged it; an unreadable message has no id to answer
            yield item.message.model_dump_json(by_alias=True, exclude_unset=True).encode()

    def negotiated(self, protocol_version: str) -> None:
        self._version = protocol_version
        self._modern = self._modern_headers and protocol_version in MODERN_VERSIONS
        headers = {MCP_PROTOCOL_VERSION_HEADER: protocol_version} if protocol_version else None
        self._metadata = ClientMessageMetadata(headers=headers) if headers else None

    def accept_tools(self, tools: list[Any]) -> list[Any]:
        """Over 2026-07-28 Streamable HTTP a tool whose x-mcp-header annotations are invalid is left out (the
        spec's MUST for clients, with a warning); the others' annotations give their Mcp-Param-* headers."""
        if not self._modern:
            return tools
        kept: list[Any] = []
        self._param_headers = {}
        for tool in tools:
            schema = tool.get("inputSchema") if isinstance(tool, dict) else None
            problem = find_invalid_x_mcp_header(schema)
            if problem is not None:
                log.warning("Leaving out the backend's tool %r: %s.", tool.get("name"), problem)
                continue
            header_map = x_mcp_header_map(schema)
            if header_map and isinstance(tool.get("name"), str):
                self._param_headers[tool["name"]] = header_map
            kept.append(tool)
        return kept


@asynccontextmanager
async def open_sdk(entry: ServerEntry, oauth_secret: str = "") -> AsyncIterator[SdkConnection]:
    assert entry.url is not None
    auth = await _oauth(entry, oauth_secret)
    if entry.type == "sse":
        # The SDK's SSE transport puts these headers (and the auth) on the GET stream and on every POST.
        async with sse_client(entry.url, headers=entry.outbound_headers(), sse_read_timeout=3600, auth=auth) as (
            read,
            write,
        ):
            yield SdkConnection(read, write)
        return
    async with (
        create_mcp_http_client(headers=entry.outbound_headers(), auth=auth) as http,
        streamable_http_client(entry.url, http_client=http) as (read, write),
    ):
        yield SdkConnection(read, write, modern_headers=True)


async def _oauth(entry: ServerEntry, secret: str) -> ClientCredentials | None:
    """The backend's client-credentials auth, with its first token already fetched: a wrong secret or an
    unreachable token endpoint fails the start with that reason, not with a transport error later."""
    if entry.oauth is None:
        return None
    if not secret:
        raise BackendError(
            f'Server "{entry.key}": the environment variable {entry.oauth.clientSecretEnv} (its '
            '"oauth.clientSecretEnv") is not set, so there is no client secret to ask for a token with.'
        )
    auth = ClientCredentials(entry.oauth, secret)
    await auth.prime()
    return auth
