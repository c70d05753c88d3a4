"""The `/mcp` Streamable HTTP front end for 2026-07-28 requests: one POST, one exchange, no session.

Reached from streamable_http.py once the request is known to be modern (modern.is_modern). The envelope and
routing headers are checked first (-32020, -32021, -32022, -32602 → HTTP 400; unknown method → 404). The reply
is plain JSON unless a message related to the request (progress, a log line it asked for) comes first; then
the response becomes an SSE stream of those messages and the reply. Closing that stream, or the connection
while the reply is awaited, cancels the request at its backend. `subscriptions/listen` is always a stream:
its acknowledgement, then its notifications, until the client closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mcp_supervisor.gateway.frontends.auth import Identity
from mcp_supervisor.gateway.server import jsonrpc, modern, x_mcp_headers
from mcp_supervisor.gateway.server.core import GatewayCore
from mcp_supervisor.gateway.server.envelope_ladder import Rejection
from mcp_supervisor.gateway.server.jsonrpc import Incoming
from mcp_supervisor.gateway.server.listen_streams import FilterError, TooManyListeners
from mcp_supervisor.gateway.server.modern import Envelope, Shaped
from mcp_supervisor.gateway.server.request_context import envelope_context
from mcp_supervisor.protocol import error_codes

log = logging.getLogger("mcp_supervisor.gateway")

KEEPALIVE_S = 15.0
# A request still running after this long gets a task that watches for its client going away (and then cancels
# it at its backend). At 0.05 s every call paid for one under load (64 sessions: 100-200 ms per call).
WATCH_AFTER_S = 0.5
# Notifications buffered for one slow listen stream before the oldest are dropped.
LISTEN_BACKLOG = 1000
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _frame(data: bytes) -> bytes:
    return b"event: message\ndata: " + data + b"\n\n"


def _internal_failure(request_id: jsonrpc.RequestId | None, exc: BaseException | None) -> bytes:
    """Never silence: a fault inside the gateway still ends the exchange with an error reply, and is logged."""
    log.error("A 2026-07-28 request failed inside the gateway.", exc_info=exc)
    return jsonrpc.error_bytes(request_id, error_codes.INTERNAL_ERROR, "Internal error in the gateway.")


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body has been read: receive() has nothing else to say)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class ModernHttp:
    def __init__(self, core: GatewayCore) -> None:
        self.core = core

    async def post(self, request: Request, identity: Identity, message: Incoming) -> Response:
        if not message.is_request:
            return Response(status_code=202)  # nothing in this era is a client notification over HTTP
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        envelope = modern.envelope(message.raw, headers)
        if isinstance(envelope, Rejection):
            return _json(modern.error_reply(message.id, envelope), envelope.http_status)
        if message.method == "tools/call":
            rejection = self._param_headers(message, request)
            if rejection is not None:
                return _json(modern.error_reply(message.id, rejection), rejection.http_status)
        if message.method == "subscriptions/listen":
            return await self._listen(identity, envelope, message)
        return await self._request(request, identity, envelope, message)

    def _param_headers(self, message: Incoming, request: Request) -> Rejection | None:
        """`Mcp-Param-*` headers must mirror the arguments the tool's schema marks with `x-mcp-header`
        (intermediaries route on them); x_mcp_headers.py compares them."""
        schema = self.core.catalog.header_schema(str(message.params.get("name")))
        if schema is None:
            return None
        arguments = message.params.get("arguments")
        arguments = arguments if isinstance(arguments, dict) else {}
        # Starlette's Headers keeps repeated fields, so a duplicated Mcp-Param-* header is seen (and refused).
        rejection = x_mcp_headers.validate(schema, arguments, request.headers)
        return None if rejection is None else Rejection(rejection.code, rejection.message, rejection.data)

    async def _request(self, request: Request, identity: Identity, envelope: Envelope, message: Incoming) -> Response:
        early: list[tuple[bytes, bool]] = []
        queue: asyncio.Queue[bytes | None] | None = None
        upgraded = asyncio.get_running_loop().create_future()

        def emit(data: bytes, droppable: bool) -> None:
            if queue is not None:
                queue.put_nowait(data)
                return
            early.append((data, droppable))
            if not upgraded.done():
                upgraded.set_result(None)

        work = asyncio.ensure_future(self.core.modern.handle(envelope_context(identity, envelope, emit), message))
        # Most replies come within milliseconds: only a request still running after that gets a watcher for
        # the client going away (which cancels it), so the common case costs one task less.
        await asyncio.wait({work, upgraded}, timeout=WATCH_AFTER_S, return_when=asyncio.FIRST_COMPLETED)
        gone: asyncio.Future[None] | None = None
        if not (work.done() or upgraded.done()):
            gone = asyncio.ensure_future(_disconnected(request))
            try:
                await asyncio.wait({work, upgraded, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()  # StreamingResponse listens for the disconnect itself from here on
        if gone is not None and gone.done() and not gone.cancelled() and not work.done():
            work.cancel()
            return Response(status_code=499)  # nobody reads it
        if work.done() and not early:
            upgraded.cancel()
            if work.exception() is not None:
                return _json(_internal_failure(message.id, work.exception()), 500)
            shaped: Shaped = work.result()
            status = modern.http_status(shaped.error_code) if shaped.error_code is not None else 200
            return _json(shaped.body, status)
        queue = asyncio.Queue()
        for data, _ in early:
            queue.put_nowait(data)

        def finished(task: asyncio.Future[Shaped]) -> None:
            assert queue is not None
            if not task.cancelled():
                if task.exception() is None:
                    queue.put_nowait(task.result().body)
                else:
                    queue.put_nowait(_internal_failure(message.id, task.exception()))
            queue.put_nowait(None)

        work.add_done_callback(finished)
        return StreamingResponse(_stream(queue, work), media_type="text/event-stream", headers=_SSE_HEADERS)

    async def _listen(self, identity: Identity, envelope: Envelope, message: Incoming) -> Response:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def emit(data: bytes, droppable: bool) -> None:
            if droppable and queue.qsize() >= LISTEN_BACKLOG:
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # the oldest notification goes; the client re-lists on the next
            queue.put_nowait(data)

        try:
            listener = await self.core.listen(envelope_context(identity, envelope, emit), message)
        except FilterError as exc:
            return _json(jsonrpc.error_bytes(message.id, error_codes.INVALID_PARAMS, str(exc)), 400)
        except TooManyListeners as exc:
            return _json(jsonrpc.error_bytes(message.id, error_codes.INTERNAL_ERROR, str(exc)), 503)
        listener.finish = lambda: queue.put_nowait(None)

        async def frames() -> AsyncIterator[bytes]:
            try:
                async for frame in _follow(queue):
                    yield frame
            finally:
                self.core.listeners.remove(listener)

        return StreamingResponse(frames(), media_type="text/event-stream", headers=_SSE_HEADERS)


async def _follow(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    """SSE frames of the queue's messages until None, with a keep-alive comment when idle."""
    while True:
        try:
            data = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
        except TimeoutError:
            yield b": keep-alive\n\n"
            continue
        if data is None:
            return
        yield _frame(data)


async def _stream(queue: asyncio.Queue[bytes | None], work: asyncio.Future[Any]) -> AsyncIterator[bytes]:
    try:
        async for frame in _follow(queue):
            yield frame
    finally:
        if not work.done():
            work.cancel()  # the client closed the stream: that cancels the request
