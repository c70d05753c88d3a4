"""The relay between the gateway and the one backend connection.

Ids: the gateway rewrites every client request id to a gateway-wide integer (`rid`) before forwarding, so ids
from many client sessions never collide on the shared backend connection. The worker's own requests
(initialize, tools/list) use string ids `mcps-<n>`, a disjoint space. Responses are split by id type: ints go
back to the gateway as `Reply(rid, result|error)` with the raw JSON of the result, strings resolve our own
futures.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import (
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from mcp_types.jsonrpc import METHOD_NOT_FOUND
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from mcp_supervisor import __version__
from mcp_supervisor.errors import BackendError
from mcp_supervisor.protocol.messages import Reply

log = logging.getLogger("mcp_supervisor.worker")

_OWN_ID_PREFIX = "mcps-"
_json = msgspec.json.Encoder()


class BackendClosed(BackendError):
    """The backend connection ended (process exited, HTTP stream closed)."""


class BackendRelay:
    def __init__(
        self,
        read_stream: Any,
        write_stream: Any,
        send_reply: Callable[[Reply], Awaitable[None]],
        on_tools_changed: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self._read = read_stream
        self._write = write_stream
        self._send_reply = send_reply
        self._on_tools_changed = on_tools_changed
        self._own_ids = itertools.count(1)
        self._own_pending: dict[str, asyncio.Future[JSONRPCResponse | JSONRPCError]] = {}
        self._metadata: ClientMessageMetadata | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ outgoing

    async def _send(self, message: JSONRPCRequest | JSONRPCNotification | JSONRPCResponse | JSONRPCError) -> None:
        await self._write.send(SessionMessage(message, metadata=self._metadata))

    async def forward(self, body: bytes) -> None:
        """Relay a gateway-built JSON-RPC message (already carrying its rid) to the backend."""
        await self._send(jsonrpc_message_adapter.validate_json(body))

    async def request(self, method: str, params: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
        request_id = f"{_OWN_ID_PREFIX}{next(self._own_ids)}"
        future: asyncio.Future[JSONRPCResponse | JSONRPCError] = asyncio.get_running_loop().create_future()
        self._own_pending[request_id] = future
        try:
            await self._send(JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=params))
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise BackendError(f"The backend did not answer {method} within {timeout:g} s.") from None
        finally:
            self._own_pending.pop(request_id, None)
        if isinstance(reply, JSONRPCError):
            raise BackendError(f"The backend answered {method} with error {reply.error.code}: {reply.error.message}")
        return reply.result

    async def initialize(self, timeout: float) -> dict[str, Any]:
        """The handshake, once per connection. We declare no client capabilities we cannot honour."""
        result = await self.request(
            "initialize",
            {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "mcp-supervisor", "version": __version__},
            },
            timeout,
        )
        version = result.get("protocolVersion")
        if version not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise BackendError(f"The backend chose protocol version {version!r}, which this worker does not speak.")
        # Streamable HTTP must stamp the negotiated version on every later request.
        self._metadata = ClientMessageMetadata(headers={MCP_PROTOCOL_VERSION_HEADER: str(version)})
        await self._send(JSONRPCNotification(jsonrpc="2.0", method="notifications/initialized"))
        return result

    async def list_tools(self, timeout: float) -> list[dict[str, Any]]:
        """Every page of the backend's tools, concatenated."""
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(10_000):
            result = await self.request("tools/list", {"cursor": cursor} if cursor else None, timeout)
            tools.extend(result.get("tools") or [])
            cursor = result.get("nextCursor")
            if not cursor:
                return tools
        raise BackendError("The backend's tools/list pagination did not end after 10000 pages.")

    # ------------------------------------------------------------------ incoming

    async def pump(self) -> None:
        """Read backend messages until the connection ends; then raise BackendClosed."""
        async for item in self._read:
            if isinstance(item, Exception):
                log.warning("The backend sent an unreadable message: %s", item)
                continue
            await self._dispatch(item.message)
        raise BackendClosed("The backend closed the connection.")

    async def _dispatch(self, message: Any) -> None:
        match message:
            case JSONRPCResponse(id=int() as rid, result=result):
                await self._send_reply(Reply(rid=rid, result=_json.encode(result)))
            case JSONRPCError(id=int() as rid, error=error):
                await self._send_reply(Reply(rid=rid, error=_json.encode(error.model_dump(exclude_unset=True))))
            case JSONRPCResponse(id=str() as own_id) | JSONRPCError(id=str() as own_id):
                future = self._own_pending.get(own_id)
                if future is not None and not future.done():
                    future.set_result(message)
            case JSONRPCRequest(id=request_id, method="ping"):
                await self._send(JSONRPCResponse(jsonrpc="2.0", id=request_id, result={}))
            case JSONRPCRequest(id=request_id, method=method):
                await self._send(
                    JSONRPCError(
                        jsonrpc="2.0",
                        id=request_id,
                        error=ErrorData(code=METHOD_NOT_FOUND, message=f"The gateway does not relay {method} yet."),
                    )
                )
            case JSONRPCNotification(method="notifications/tools/list_changed"):
                task = asyncio.create_task(self._on_tools_changed())
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            case JSONRPCNotification(method=method):
                log.debug("Ignoring backend notification %s", method)
            case JSONRPCError(id=None, error=error):
                log.warning("The backend reported an error without a request id: %s", error.message)
