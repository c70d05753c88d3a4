"""The legacy HTTP+SSE front end (protocol 2024-11-05): `GET /sse` + `POST /message?sessionId=…`.

The GET opens the session's only stream and first announces, as mcp-proxy-server does, the endpoint to POST to
(`/message?sessionId=<id>`; `/messages` is accepted too). A POST is answered 202 at once and its reply goes
down the stream. Unlike mcp-proxy-server, the POST endpoint is authenticated as well: a session belongs to the
credential that opened it, and a key given as `?key=` on /sse is carried into the announced endpoint so
clients that only know the URL keep working.

Delivery: replies are never dropped. A client that lets its undelivered replies pass SESSION_REPLY_BACKLOG_MB
gets back-pressure (its POSTs wait); one still that slow after SLOW_CLIENT_TIMEOUT_SECONDS has its session ended,
its POST answered 503 with the reason, its stream closed. Notifications are bounded (the oldest are dropped,
counted in /metrics and logged once per session).

Both handlers are raw ASGI apps rather than Starlette request/response functions: every call over this
transport is one POST plus one event on the stream, and Request/Response objects, a response class per
202 and an anyio task group per stream were a measurable share of the gateway's CPU per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.datastructures import Headers, QueryParams
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from mcp_supervisor.gateway.frontends.edge import EdgeChecks, is_json_type, read_body_raw
from mcp_supervisor.gateway.frontends.event_log import KEEPALIVE_FRAME
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.core import GatewayCore
from mcp_supervisor.gateway.server.jsonrpc import JsonRpcFault
from mcp_supervisor.gateway.server.sessions import ClientSession
from mcp_supervisor.tasks import BackgroundTasks

_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
# An empty 202: uvicorn writes a response's head and each body part with a syscall of their own, so a body
# ("Accepted", as mcp-proxy-server sends) costs a second write per call on the hot path. Clients read only the status.
_ACCEPTED_HEADERS = [(b"content-length", b"0")]
_EVENT = b"event: message\ndata: "

log = logging.getLogger("mcp_supervisor.gateway")


def _ended(session: ClientSession) -> Response:
    reason = session.ended_because or "The session has ended."
    return PlainTextResponse(reason, status_code=503)


class _AsgiEndpoint:
    """A handler Starlette mounts as a plain ASGI app: a Route endpoint that is neither a function nor a
    method is called with (scope, receive, send) as it is, without a Request wrapper."""

    def __init__(self, handler: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handler(scope, receive, send)


class LegacySseEndpoint:
    def __init__(self, core: GatewayCore, edge: EdgeChecks) -> None:
        self.core = core
        self.edge = edge
        self._tasks = BackgroundTasks()
        # The task writing each session's only stream, cancelled when the session is ended as too slow.
        self._writers: dict[ClientSession, asyncio.Task[Any]] = {}
        self.stream = _AsgiEndpoint(self._stream)
        self.post = _AsgiEndpoint(self._post)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        query = QueryParams(scope.get("query_string", b""))
        admitted = await self.edge.admit_raw(headers, query)
        if isinstance(admitted, Response):
            return await admitted(scope, receive, send)
        session = self.core.sessions.create(admitted.principal, resumable=False, identity=admitted)
        if session is None:
            refusal = PlainTextResponse(
                "The gateway holds too many sessions (or this credential's quota of them); try again later.",
                status_code=503,
            )
            return await refusal(scope, receive, send)
        # Appended to the announced POST endpoint when auth came by query.
        key = query.get("key")
        suffix = (
            f"&key={quote(key, safe='')}"
            if key and "x-api-key" not in headers and "authorization" not in headers
            else ""
        )
        session.stream_open = True
        # The stream is the session: when the client goes away, so does the session (which ends the stream).
        watcher = asyncio.ensure_future(self._close_on_disconnect(receive, session))
        writer = asyncio.current_task()
        assert writer is not None
        self._writers[session] = writer
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
            endpoint = f"{scope.get('root_path', '')}/message?sessionId={session.id}{suffix}"
            announce = f"event: endpoint\ndata: {endpoint}\n\n".encode()
            await send({"type": "http.response.body", "body": announce, "more_body": True})
            async for batch in session.standalone.follow(0, session.closed):
                # The legacy transport has no resumption: events carry no ids. What accumulated while the
                # previous write was under way goes out in one write.
                body = b"".join(_EVENT + event[1] + b"\n\n" for event in batch) if batch else KEEPALIVE_FRAME
                await send({"type": "http.response.body", "body": body, "more_body": True})
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not session.ended_because:
                raise
            # Ended as too slow: the write it was blocked in is abandoned, and the server closes the connection.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            self._writers.pop(session, None)
            watcher.cancel()
            self.core.sessions.close(session.id)

    async def _close_on_disconnect(self, receive: Receive, session: ClientSession) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.core.sessions.close(session.id)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._accept(scope, receive)
        if response is not None:
            return await response(scope, receive, send)
        await send({"type": "http.response.start", "status": 202, "headers": _ACCEPTED_HEADERS})
        await send({"type": "http.response.body", "body": b""})

    async def _accept(self, scope: Scope, receive: Receive) -> Response | None:
        """Take one POSTed message for processing (None: answer 202), or the response that refuses it."""
        headers = Headers(scope=scope)
        query = QueryParams(scope.get("query_string", b""))
        admitted = await self.edge.admit_raw(headers, query)
        if isinstance(admitted, Response):
            return admitted
        session_id = query.get("sessionId") or query.get("session_id")
        if not session_id:
            return PlainTextResponse("Bad Request: the sessionId query parameter is required.", status_code=400)
        session = self.core.sessions.get(session_id, admitted.principal)
        if session is None:
            return PlainTextResponse("Session not found.", status_code=404)
        if session.closed.is_set():
            return _ended(session)
        if not is_json_type(headers.get("content-type", "")):
            return PlainTextResponse("Unsupported Media Type: the body must be application/json.", status_code=415)
        body = await read_body_raw(receive, headers.get("content-length"), self.core.settings.max_body_bytes)
        if isinstance(body, Response):
            return body
        refusal = await self._back_pressure(session)
        if refusal is not None:
            return refusal
        try:
            message = jsonrpc.parse_message(body)
        except JsonRpcFault as fault:
            # The reply goes where every reply goes (the stream); the POST says what went wrong too.
            session.push(fault.to_bytes())
            return Response(fault.to_bytes(), status_code=400, media_type="application/json")
        self._tasks.spawn(self._process(session, message))
        return None

    async def _back_pressure(self, session: ClientSession) -> Response | None:
        """Hold the POST while the client's undelivered replies are over the backlog; end a session that stays
        that slow (None: go on)."""
        settings = self.core.settings
        stream = session.standalone
        if stream.kept_bytes <= settings.session_reply_backlog_bytes:
            return None
        if await stream.wait_drained(settings.session_reply_backlog_bytes, settings.slow_client_timeout_s):
            return None if not session.closed.is_set() else _ended(session)
        if not session.closed.is_set():
            reason = (
                f"The client was too slow to read its replies: {stream.kept_bytes} bytes of them were still "
                f"undelivered after {settings.slow_client_timeout_s:g} s of back-pressure, so the gateway ended "
                "the session."
            )
            log.warning("Session %s… of %s: %s", session.id[:8], session.principal, reason)
            self.core.sessions.close(session.id, because=reason)
            writer = self._writers.get(session)
            if writer is not None:
                writer.cancel()
        return _ended(session)

    async def _process(self, session: ClientSession, message: jsonrpc.Incoming) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            reply = await self.core.handle(session, message)
            if reply is not None and not session.closed.is_set():
                session.push(reply)
