"""The stdio front end: MCP as newline-delimited JSON-RPC on a pair of file descriptors.

`mcp-supervisor stdio` hands the gateway its own stdin/stdout (as inherited descriptors); everything else in
the tree logs to stderr only, so nothing but MCP messages ever reaches the client. One client, one session;
requests are served concurrently (a slow tool does not hold up a ping). One writer puts every message on
stdout, one per line, in the session's log order: a request's notifications always precede its reply.

A client that does not read its stdout gets back-pressure: once its undelivered replies pass
SESSION_REPLY_BACKLOG_MB, the gateway stops reading its stdin until they drain. Replies are never dropped;
notifications are bounded (the oldest are dropped, counted and logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from mcp_supervisor.gateway.frontends.auth import STDIO_IDENTITY
from mcp_supervisor.gateway.frontends.stdin_lines import open_lines
from mcp_supervisor.gateway.server import jsonrpc, modern
from mcp_supervisor.gateway.server.core import GatewayCore
from mcp_supervisor.gateway.server.envelope_ladder import Rejection
from mcp_supervisor.gateway.server.jsonrpc import Incoming, JsonRpcFault
from mcp_supervisor.gateway.server.listen_streams import FilterError, Listener, TooManyListeners
from mcp_supervisor.gateway.server.request_context import envelope_context
from mcp_supervisor.gateway.server.sessions import ClientSession
from mcp_supervisor.protocol import error_codes
from mcp_supervisor.tasks import BackgroundTasks

log = logging.getLogger("mcp_supervisor.gateway")

MAX_LINE_BYTES = 64 * 1024 * 1024
# After the start-up wait and the request timeout, for the timeout's own error to be written before the exit.
END_OF_INPUT_GRACE_S = 5.0


class StdioFrontend:
    def __init__(self, core: GatewayCore, in_fd: int, out_fd: int) -> None:
        self.core = core
        self._in_fd = in_fd
        self._out = os.fdopen(out_fd, "wb", buffering=0)
        self._tasks = BackgroundTasks()
        # 2026-07-28 requests in flight and listen streams, by request id: notifications/cancelled ends them.
        self._modern: dict[jsonrpc.RequestId, asyncio.Task[None]] = {}
        self._listeners: dict[jsonrpc.RequestId, Listener] = {}
        self._closing = False  # the input ended and what was still running is being cancelled

    async def _write(self, message: bytes) -> None:
        # A blocking write on purpose: the client reads its pipe; back-pressure is the client's to apply.
        await asyncio.to_thread(self._out.write, message + b"\n")

    async def serve(self) -> None:
        """Serve until the client closes stdin."""
        reader = await open_lines(self._in_fd, MAX_LINE_BYTES)  # a pipe, or a file (stdin_lines.py)
        session = self.core.sessions.create("stdio", resumable=False, identity=STDIO_IDENTITY)
        assert session is not None
        session.stream_open = True  # never expired for idleness: the pipe is the session
        writer = asyncio.create_task(self._write_stream(session))
        backlog = self.core.settings.session_reply_backlog_bytes
        try:
            while True:
                while session.standalone.kept_bytes > backlog:  # back-pressure: the client reads too slowly
                    await session.standalone.wait_drained(backlog, 60.0)
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        self._start(session, exc.partial)
                    break
                except asyncio.LimitOverrunError:
                    session.push(jsonrpc.error_bytes(None, error_codes.INVALID_REQUEST, "Message too large."))
                    break
                if line.strip():
                    self._start(session, line)
            for listener in self._listeners.values():
                self.core.listeners.remove(listener)
            # As a server run directly does, what is in flight is finished and answered before the exit (a script
            # piping in its requests closes its input at once). Bounded: a request waits out the start-up wait at
            # most, then the request timeout, whose error is its answer; past both it is cancelled, and answered.
            settings = self.core.settings
            await self._tasks.wait(timeout=settings.startup_wait_s + settings.request_timeout_s + END_OF_INPUT_GRACE_S)
            self._closing = True
            await self._tasks.cancel_and_wait()
        finally:
            # Closing the session lets the writer flush what is logged, then end: replies are not lost.
            self.core.sessions.close(session.id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), 5.0)
            writer.cancel()
            log.info("The stdio client closed its input; stopping.")

    def _start(self, session: ClientSession, line: bytes) -> None:
        self._tasks.spawn(self._process(session, line))

    async def _process(self, session: ClientSession, line: bytes) -> None:
        """Replies go down the same ordered log as notifications: a request's progress is written before its
        reply, never overtaken by it."""
        try:
            message = jsonrpc.parse_message(line)
        except JsonRpcFault as fault:
            session.push(fault.to_bytes())
            return
        if message.method == "notifications/cancelled" and self._cancel_modern(message.params.get("requestId")):
            return
        if message.is_request and modern.is_modern(message.raw, None):
            await self._process_modern(session, message)
            return
        try:
            reply = await self.core.handle(session, message)
        except asyncio.CancelledError:
            reply = self._unfinished(message.id) if message.is_request and self._closing else None
        if reply is not None:
            session.push(reply)

    async def _process_modern(self, session: ClientSession, message: Incoming) -> None:
        """A 2026-07-28 request on the pipe: its own context; its messages and reply on the one stream."""
        assert message.id is not None
        envelope = modern.envelope(message.raw, None)
        if isinstance(envelope, Rejection):
            session.push(modern.error_reply(message.id, envelope))
            return
        context = envelope_context(session.identity, envelope, session.emit)
        if message.method == "subscriptions/listen":
            try:
                self._listeners[message.id] = await self.core.listen(context, message)
            except FilterError as exc:
                session.push(jsonrpc.error_bytes(message.id, error_codes.INVALID_PARAMS, str(exc)))
            except TooManyListeners as exc:
                session.push(jsonrpc.error_bytes(message.id, error_codes.INTERNAL_ERROR, str(exc)))
            return
        task = asyncio.current_task()
        assert task is not None
        self._modern[message.id] = task
        try:
            shaped = await self.core.modern.handle(context, message)
            session.push(shaped.body)
        except asyncio.CancelledError:
            if self._closing:  # cancelled by the end of input, not by the client: it is owed an answer
                session.push(self._unfinished(message.id))
        finally:
            self._modern.pop(message.id, None)

    @staticmethod
    def _unfinished(request_id: jsonrpc.RequestId | None) -> bytes:
        message = "The client closed its input and the request did not finish in time; it was cancelled."
        return jsonrpc.error_bytes(request_id, error_codes.INTERNAL_ERROR, message)

    def _cancel_modern(self, request_id: object) -> bool:
        if not isinstance(request_id, (int, str)):
            return False
        listener = self._listeners.pop(request_id, None)
        if listener is not None:
            self.core.listeners.remove(listener)
            return True
        task = self._modern.get(request_id)
        if task is None:
            return False
        task.cancel()
        return True

    async def _write_stream(self, session: ClientSession) -> None:
        """The only writer of stdout: every message of the session, in log order."""
        async for batch in session.standalone.follow(0, session.closed):
            if batch:  # keep-alive ticks (empty batches) mean nothing on a pipe
                await self._write(b"\n".join(event[1] for event in batch))
