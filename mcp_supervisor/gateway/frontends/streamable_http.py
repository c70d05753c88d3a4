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

from mcp_supervisor.gateway.frontends.auth import Identity
from mcp_supervisor.gateway.frontends.edge import EdgeChecks, is_json, read_body
from mcp_supervisor.gateway.frontends.event_log import KEEPALIVE_FRAME, EventLog, parse_event_id
from mcp_supervisor.gateway.frontends.streamable_http_modern import ModernHttp
from mcp_supervisor.gateway.server import jsonrpc, modern
from mcp_supervisor.gateway.server.core import GatewayCore
from mcp_supervisor.gateway.server.jsonrpc import JsonRpcFault
from mcp_supervisor.gateway.server.sessions import ClientSession
from mcp_supervisor.protocol import error_codes
from mcp_supervisor.protocol.versions import KNOWN_PROTOCOL_VERSIONS, MODERN_VERSIONS

SESSION_HEADER = "mcp-session-id"
# A request unanswered after this long gets a resumable stream (see `_request`).
PRIME_AFTER_S = 1.0
PRIMING_VERSION = "2025-11-25"
# The reconnection delay our streams ask for (SSE `retry`): the SDK client tries twice, so twice this covers
# a gateway restart by the supervisor; its own default (1 s) gave up before the new process listened.
RECONNECT_MS = 4000
VERSION_HEADER = "mcp-protocol-version"


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
        self.modern = ModernHttp(core)

    async def handle(self, request: Request) -> Response:
        identity = await self.edge.admit(request)
        if isinstance(identity, Response):
            return identity
        if request.method != "POST" and request.headers.get(VERSION_HEADER) in MODERN_VERSIONS:
            # 2026-07-28: one POST per exchange; no GET stream (subscriptions/listen) and no session to DELETE.
            return Response("Method not allowed.", status_code=405, headers={"Allow": "POST"})
        if request.method == "POST":
            return await self._post(request, identity)
        if request.method == "GET":
            return await self._get(request, identity)
        if request.method == "DELETE":
            return await self._delete(request, identity)
        return Response("Method not allowed.", status_code=405, headers={"Allow": "GET, POST, DELETE"})

    async def _session(self, request: Request, identity: Identity) -> ClientSession | Response:
        session_id = request.headers.get(SESSION_HEADER)
        if not session_id:
            return _fault(400, error_codes.INVALID_REQUEST, "Bad Request: the Mcp-Session-Id header is required.")
        # Not in this process: a sealed id rebuilds it (this gateway restarted, or another replica opened it).
        sessions = self.core.sessions
        session = sessions.get(session_id, identity.principal)
        if session is None:
            session = sessions.revive(session_id, identity)
        if session is None:
            return _fault(404, error_codes.SESSION_NOT_FOUND, "Session not found.")
        version = request.headers.get(VERSION_HEADER)
        if version is not None and version not in KNOWN_PROTOCOL_VERSIONS:
            return _fault(400, error_codes.INVALID_REQUEST, f"Bad Request: unsupported protocol version {version!r}.")
        return session

    async def _post(self, request: Request, identity: Identity) -> Response:
        principal = identity.principal
        if not _accepts(request, "application/json", "text/event-stream"):
            return _fault(
                406,
                error_codes.INVALID_REQUEST,
                "Not Acceptable: the client must accept application/json and text/event-stream.",
            )
        if not is_json(request):
            return _fault(
                415, error_codes.INVALID_REQUEST, "Unsupported Media Type: the body must be application/json."
            )
        body = await read_body(request, self.core.settings.max_body_bytes)
        if isinstance(body, Response):
            return body
        try:
            message = jsonrpc.parse_message(body)
        except JsonRpcFault as fault:
            return _json(fault.to_bytes(), 400)

        has_session = SESSION_HEADER in request.headers
        if modern.is_modern(message.raw, request.headers.get(VERSION_HEADER), has_session):
            return await self.modern.post(request, identity, message)
        if message.method == "initialize":
            if not message.is_request:
                return _json(
                    jsonrpc.error_bytes(None, error_codes.INVALID_REQUEST, "initialize must be a request."), 400
                )
            session = self.core.sessions.create(principal, identity=identity)
            if session is None:
                return _fault(
                    503,
                    error_codes.INTERNAL_ERROR,
                    "The gateway holds too many sessions (or this credential's quota of them); try again later.",
                )
            reply = await self.core.initialize(session, message)
            self.core.sessions.seal(session)
            return _json(reply, 200, {"Mcp-Session-Id": session.id})

        session_or_response = await self._session(request, identity)
        if isinstance(session_or_response, Response):
            return session_or_response
        session = session_or_response
        if not message.is_request:
            await self.core.handle_notification(session, message)
            return Response(status_code=202)
        return await self._request(session, message)

    async def _request(self, session: ClientSession, message: jsonrpc.Incoming) -> Response:
        """Answer with plain JSON when the reply comes first (the common case, and the cheapest); switch to a
        numbered, resumable SSE stream as soon as a message related to the request comes before it, or once it
        has taken PRIME_AFTER_S (then the stream opens with a priming event: an id the client can resume from
        if this process dies, and get the JSON-RPC error saying the response is lost, see docs/sessions.md)."""
        early: list[tuple[bytes, bool]] = []
        upgraded = asyncio.get_running_loop().create_future()
        log: EventLog | None = None

        def emit(data: bytes, droppable: bool) -> None:
            if log is not None:
                log.append(data, droppable)
                return
            early.append((data, droppable))
            if not upgraded.done():
                upgraded.set_result(None)

        work = asyncio.ensure_future(self.core.handle_request(session.request_context(emit), message))
        # Priming events came with 2025-11-25: older clients would take the empty event for a malformed message.
        prime = PRIME_AFTER_S if session.protocol_version >= PRIMING_VERSION else None
        await asyncio.wait({work, upgraded}, timeout=prime, return_when=asyncio.FIRST_COMPLETED)
        if work.done() and not early:
            upgraded.cancel()
            return _json(work.result())
        log = session.open_stream()
        for data, droppable in early:
            log.append(data, droppable)

        def finished(task: asyncio.Future[bytes]) -> None:
            # A dropped connection does not cancel the request: its reply lands in the log for a resume.
            assert log is not None
            if not task.cancelled():
                log.append(task.result())
            log.finish()

        work.add_done_callback(finished)
        frames = _frames(log, 0, session.closed)
        return _sse(_primed(log, frames) if not early else frames, session)

    async def _get(self, request: Request, identity: Identity) -> Response:
        if not _accepts(request, "text/event-stream"):
            return _fault(406, error_codes.INVALID_REQUEST, "Not Acceptable: the client must accept text/event-stream.")
        session_or_response = await self._session(request, identity)
        if isinstance(session_or_response, Response):
            return session_or_response
        session = session_or_response
        last_event_id = request.headers.get("last-event-id")
        if last_event_id is not None:
            return self._resume(session, last_event_id)
        if session.stream_open:
            return _fault(409, error_codes.INVALID_REQUEST, "Conflict: this session already has a GET stream open.")
        return self._standalone(session, session.standalone_sent)

    def _resume(self, session: ClientSession, last_event_id: str) -> Response:
        parsed = parse_event_id(last_event_id)
        log = session.streams.get(parsed[0]) if parsed is not None else None
        if parsed is not None and session.revived:
            if parsed[0] == 0 and parsed[1] > session.standalone.seq:
                return self._standalone(session, 0)  # the earlier process's numbering: all of ours is new
            if log is None:
                return _lost_response(session)
        if parsed is None or log is None:
            return _fault(404, error_codes.INVALID_REQUEST, f"Not Found: no stream to resume after {last_event_id!r}.")
        if log.stream_id == 0:
            return self._standalone(session, parsed[1])  # takes over from a connection that may be dead
        return _sse(_frames(log, parsed[1], session.closed), session)

    def _standalone(self, session: ClientSession, after: int) -> Response:
        if session.standalone_connection is not None:
            session.standalone_connection.set()  # a newer connection supersedes the old one
        connection = asyncio.Event()
        session.standalone_connection = connection
        session.stream_open = True
        return _sse(_standalone_frames(session, after, connection), session)

    async def _delete(self, request: Request, identity: Identity) -> Response:
        session_or_response = await self._session(request, identity)
        if isinstance(session_or_response, Response):
            return session_or_response
        self.core.sessions.close(session_or_response.id, revoke=True)
        return Response(status_code=200)


LOST_RESPONSE = (
    "The response to this request is lost: the gateway process that received it restarted (or this request "
    "reached another replica) before answering. The request may or may not have run; retry it if it is safe."
)


def _lost_response(session: ClientSession) -> StreamingResponse:
    """A resumption of a POST stream of the process before: its response died with it. Said as a JSON-RPC
    error in the stream (the client resolves it as its request's answer: id null, the stream names the
    request), not a 404 that leaves the client retrying and then silent."""
    error = jsonrpc.error_bytes(None, error_codes.INTERNAL_ERROR, LOST_RESPONSE)

    async def frames() -> AsyncIterator[bytes]:
        yield b"event: message\ndata: " + error + b"\n\n"

    return _sse(frames(), session)


def _sse(frames: AsyncIterator[bytes], session: ClientSession) -> StreamingResponse:
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Mcp-Session-Id": session.id},
    )


async def _primed(log: EventLog, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield b"id: " + log.event_id(0).encode() + b"\nretry: " + str(RECONNECT_MS).encode() + b"\ndata: \n\n"
    async for frame in frames:
        yield frame


async def _frames(log: EventLog, after: int, closed: asyncio.Event) -> AsyncIterator[bytes]:
    async for batch in log.follow(after, closed):
        yield b"".join(log.frame(event[0], event[1]) for event in batch) if batch else KEEPALIVE_FRAME


async def _standalone_frames(session: ClientSession, after: int, connection: asyncio.Event) -> AsyncIterator[bytes]:
    """The session's standalone stream until the session closes or a newer connection takes it over."""
    log = session.standalone
    ended = asyncio.Event()

    async def watch() -> None:
        closed = asyncio.ensure_future(session.closed.wait())
        superseded = asyncio.ensure_future(connection.wait())
        try:
            await asyncio.wait({closed, superseded}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            superseded.cancel()
        ended.set()
        log.wake()

    watcher = asyncio.ensure_future(watch())
    try:
        yield b": stream open\nretry: " + str(RECONNECT_MS).encode() + b"\n\n"
        async for batch in log.follow(after, ended):
            if not batch:
                yield KEEPALIVE_FRAME
                continue
            session.standalone_sent = max(session.standalone_sent, batch[-1][0])
            yield b"".join(log.frame(event[0], event[1]) for event in batch)
    finally:
        watcher.cancel()
        if session.standalone_connection is connection:
            session.standalone_connection = None
            session.stream_open = False
