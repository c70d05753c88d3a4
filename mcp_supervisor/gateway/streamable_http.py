"""The `/mcp` Streamable HTTP front end (handshake era): POST messages, GET stream, DELETE session.

Order of checks on every request: DNS-rebinding guard (421/403), authentication (401), then the MCP rules
(406 Accept, 415 Content-Type, 413 size, 400 missing session, 404 unknown session). Every JSON-RPC request
gets a JSON-RPC reply; notifications and responses get 202.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mcp_supervisor.gateway import jsonrpc
from mcp_supervisor.gateway.core import KNOWN_PROTOCOL_VERSIONS, GatewayCore
from mcp_supervisor.gateway.edge import EdgeChecks, is_json, read_body
from mcp_supervisor.gateway.jsonrpc import JsonRpcFault
from mcp_supervisor.gateway.sessions import ClientSession

SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
KEEPALIVE_S = 15.0


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _fault(status: int, code: int, message: str) -> Response:
    return _json(jsonrpc.error_bytes(None, code, message), status)


def _accepts(request: Request, *media_types: str) -> bool:
    accept = request.headers.get("accept", "")
    offered = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if "*/*" in offered:
        return True
    return all(media in offered or f"{media.split('/')[0]}/*" in offered for media in media_types)


class StreamableHttpEndpoint:
    def __init__(self, core: GatewayCore, edge: EdgeChecks) -> None:
        self.core = core
        self.edge = edge

    async def handle(self, request: Request) -> Response:
        principal_or_response = self.edge.admit(request)
        if isinstance(principal_or_response, Response):
            return principal_or_response
        principal = principal_or_response
        if request.method == "POST":
            return await self._post(request, principal)
        if request.method == "GET":
            return self._get(request, principal)
        if request.method == "DELETE":
            return self._delete(request, principal)
        return Response("Method not allowed.", status_code=405, headers={"Allow": "GET, POST, DELETE"})

    def _session(self, request: Request, principal: str) -> ClientSession | Response:
        session_id = request.headers.get(SESSION_HEADER)
        if not session_id:
            return _fault(400, jsonrpc.INVALID_REQUEST, "Bad Request: the Mcp-Session-Id header is required.")
        session = self.core.sessions.get(session_id, principal)
        if session is None:
            return _fault(404, jsonrpc.SESSION_NOT_FOUND, "Session not found.")
        version = request.headers.get(VERSION_HEADER)
        if version is not None and version not in KNOWN_PROTOCOL_VERSIONS:
            return _fault(400, jsonrpc.INVALID_REQUEST, f"Bad Request: unsupported protocol version {version!r}.")
        return session

    async def _post(self, request: Request, principal: str) -> Response:
        if not _accepts(request, "application/json", "text/event-stream"):
            return _fault(
                406,
                jsonrpc.INVALID_REQUEST,
                "Not Acceptable: the client must accept application/json and text/event-stream.",
            )
        if not is_json(request):
            return _fault(415, jsonrpc.INVALID_REQUEST, "Unsupported Media Type: the body must be application/json.")
        body = await read_body(request, self.core.settings.max_body_bytes)
        if isinstance(body, Response):
            return body
        try:
            message = jsonrpc.parse_message(body)
        except JsonRpcFault as fault:
            return _json(fault.to_bytes(), 400)

        if message.method == "initialize":
            if not message.is_request:
                return _json(jsonrpc.error_bytes(None, jsonrpc.INVALID_REQUEST, "initialize must be a request."), 400)
            session = self.core.sessions.create(principal)
            if session is None:
                return _fault(503, jsonrpc.INTERNAL_ERROR, "The gateway holds too many sessions; try again later.")
            return _json(await self.core.initialize(session, message), 200, {"Mcp-Session-Id": session.id})

        session_or_response = self._session(request, principal)
        if isinstance(session_or_response, Response):
            return session_or_response
        session = session_or_response
        if not message.is_request:
            await self.core.handle_notification(session, message)
            return Response(status_code=202)
        return await self._request(session, message)

    async def _request(self, session: ClientSession, message: jsonrpc.Incoming) -> Response:
        """Answer with plain JSON when the reply comes first (the common case, and the cheapest); switch to an
        SSE response as soon as a message related to the request (progress) comes before it."""
        related: asyncio.Queue[bytes] = asyncio.Queue()
        work = asyncio.ensure_future(self.core.handle_request(session, message, related.put_nowait))
        first = asyncio.ensure_future(related.get())
        await asyncio.wait({work, first}, return_when=asyncio.FIRST_COMPLETED)
        if work.done() and not first.done():
            first.cancel()
            return _json(work.result())
        return StreamingResponse(
            _request_stream(first, related, work),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def _get(self, request: Request, principal: str) -> Response:
        if not _accepts(request, "text/event-stream"):
            return _fault(406, jsonrpc.INVALID_REQUEST, "Not Acceptable: the client must accept text/event-stream.")
        session_or_response = self._session(request, principal)
        if isinstance(session_or_response, Response):
            return session_or_response
        session = session_or_response
        if session.stream_open:
            return _fault(409, jsonrpc.INVALID_REQUEST, "Conflict: this session already has a GET stream open.")
        session.stream_open = True
        return StreamingResponse(
            _event_stream(session),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "Mcp-Session-Id": session.id},
        )

    def _delete(self, request: Request, principal: str) -> Response:
        session_or_response = self._session(request, principal)
        if isinstance(session_or_response, Response):
            return session_or_response
        self.core.sessions.close(session_or_response.id)
        return Response(status_code=200)


async def _request_stream(
    first: asyncio.Future[bytes], related: asyncio.Queue[bytes], work: asyncio.Future[bytes]
) -> AsyncIterator[bytes]:
    """Related messages in order, then the reply, which ends the stream."""
    try:
        pending: asyncio.Future[bytes] | None = first
        while True:
            if pending is None:
                pending = asyncio.ensure_future(related.get())
            await asyncio.wait({pending, work}, return_when=asyncio.FIRST_COMPLETED)
            if pending.done():
                yield b"event: message\ndata: " + pending.result() + b"\n\n"
                pending = None
                continue
            while not related.empty():
                yield b"event: message\ndata: " + related.get_nowait() + b"\n\n"
            yield b"event: message\ndata: " + work.result() + b"\n\n"
            pending.cancel()
            return
    finally:
        if not work.done():
            work.cancel()  # the client went away mid-stream


async def _event_stream(session: ClientSession) -> AsyncIterator[bytes]:
    """Server-initiated messages of one session, with keep-alive comments, until the session closes."""
    closed = asyncio.ensure_future(session.closed.wait())
    try:
        yield b": stream open\n\n"
        while not session.closed.is_set():
            receive = asyncio.ensure_future(session.outbox.get())
            done, _ = await asyncio.wait({receive, closed}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            if receive in done:
                yield b"event: message\ndata: " + receive.result() + b"\n\n"
            else:
                receive.cancel()
                if not done:
                    yield b": keep-alive\n\n"
    finally:
        closed.cancel()
        session.stream_open = False
