"""SSE and Streamable HTTP backends through the MCP SDK's client transports, adapted to raw bytes.

The SDK is imported here only, so a worker of a stdio backend never pays for it. Its transports speak
pydantic `SessionMessage`s: envelopes are validated on the way in and dumped on the way out; their params and
results stay plain dicts, so nothing of the payload is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import jsonrpc_message_adapter

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.errors import BackendError
from mcp_supervisor.worker.oauth_client import ClientCredentials


class SdkConnection:
    def __init__(self, read_stream: Any, write_stream: Any) -> None:
        self._read = read_stream
        self._write = write_stream
        self._metadata: ClientMessageMetadata | None = None

    async def send(self, message: bytes) -> None:
        parsed = jsonrpc_message_adapter.validate_json(message)
        await self._write.send(SessionMessage(parsed, metadata=self._metadata))

    async def messages(self) -> AsyncIterator[bytes]:
        async for item in self._read:
            if isinstance(item, Exception):
                continue  # the transport logged it; an unreadable message has no id to answer
            yield item.message.model_dump_json(by_alias=True, exclude_unset=True).encode()

    def negotiated(self, protocol_version: str) -> None:
        self._metadata = ClientMessageMetadata(headers={MCP_PROTOCOL_VERSION_HEADER: protocol_version})


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
        yield SdkConnection(read, write)


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
