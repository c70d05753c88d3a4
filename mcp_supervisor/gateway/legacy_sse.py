"""The legacy HTTP+SSE front end (protocol 2024-11-05): `GET /sse` + `POST /message?sessionId=…`.

The GET opens the session's only stream and first announces, as the seed does, the endpoint to POST to
(`/message?sessionId=<id>`; `/messages` is accepted too). A POST is answered 202 at once and its reply goes
down the stream. Unlike the seed, the POST endpoint is authenticated as well: a session belongs to the
credential that opened it, and a key given as `?key=` on /sse is carried into the announced endpoint so
clients that only know the URL keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from mcp_supervisor.gateway import jsonrpc
from mcp_supervisor.gateway.core import GatewayCore
from mcp_supervisor.gateway.edge import EdgeChecks, is_json, read_body
from mcp_supervisor.gateway.event_log import KEEPALIVE_FRAME
from mcp_supervisor.gateway.jsonrpc import JsonRpcFault
from mcp_supervisor.gateway.sessions import ClientSession


class LegacySseEndpoint:
    def __init__(self, core: GatewayCore, edge: EdgeChecks) -> None:
        self.core = core
        self.edge = edge
        self._tasks: set[asyncio.Task[None]] = set()

    async def stream(self, request: Request) -> Response:
        admitted = self.edge.admit(request)
        if isinstance(admitted, Response):
            return admitted
        session = self.core.sessions.create(admitted)
        if session is None:
            return PlainTextResponse("The gateway holds too many sessions; try again later.", status_code=503)
        key = request.query_params.get("key")
        if key and "x-api-key" not in request.headers and "authorization" not in request.headers:
            session.endpoint_suffix = f"&key={quote(key, safe='')}"
        session.stream_open = True
        return StreamingResponse(
            self._events(session, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _events(self, session: ClientSession, request: Request) -> AsyncIterator[bytes]:
        endpoint = f"{request.scope.get('root_path', '')}/message?sessionId={session.id}{session.endpoint_suffix}"
        try:
            yield f"event: endpoint\ndata: {endpoint}\n\n".encode()
            async for seq, data in session.standalone.follow(0, session.closed):
                # The legacy transport has no resumption: events carry no ids.
                yield b"event: message\ndata: " + data + b"\n\n" if seq else KEEPALIVE_FRAME
        finally:
            # The stream is the session: when the client goes away, so does the session.
            self.core.sessions.close(session.id)

    async def post(self, request: Request) -> Response:
        admitted = self.edge.admit(request)
        if isinstance(admitted, Response):
            return admitted
        session_id = request.query_params.get("sessionId") or request.query_params.get("session_id")
        if not session_id:
            return PlainTextResponse("Bad Request: the sessionId query parameter is required.", status_code=400)
        session = self.core.sessions.get(session_id, admitted)
        if session is None:
            return PlainTextResponse("Session not found.", status_code=404)
        if not is_json(request):
            return PlainTextResponse("Unsupported Media Type: the body must be application/json.", status_code=415)
        body = await read_body(request, self.core.settings.max_body_bytes)
        if isinstance(body, Response):
            return body
        try:
            message = jsonrpc.parse_message(body)
        except JsonRpcFault as fault:
            # The reply goes where every reply goes (the stream); the POST says what went wrong too.
            session.push(fault.to_bytes())
            return Response(fault.to_bytes(), status_code=400, media_type="application/json")
        task = asyncio.create_task(self._process(session, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return PlainTextResponse("Accepted", status_code=202)

    async def _process(self, session: ClientSession, message: jsonrpc.Incoming) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            reply = await self.core.handle(session, message)
            if reply is not None and not session.closed.is_set():
                session.push(reply)
