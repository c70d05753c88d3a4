"""HTTP connection limits uvicorn does not have: a deadline for a request's headers, and one for its body.

uvicorn times out idle keep-alive connections only, and any byte received cancels that timer: a slowloris
client that sends a header line every few seconds, or a body one byte at a time, holds its connection (and, for
the body, the request task) for as long as it likes, until the connection cap leaves nobody else room. This
protocol arms a timer whenever the connection waits for a request's headers (a new connection, or the next
request on a kept-alive one) and another once the headers are in and a body is due; a request that misses them
is answered 408 (or dropped, mid-body) and the connection closed. The connection cap itself is uvicorn's
`limit_concurrency` (503 beyond it).

The protocol is uvicorn's httptools one (C, llhttp) rather than its default h11 (pure Python: ~30 % of the
gateway's CPU per call went to it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("mcp_supervisor.gateway")

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """The deadlines over httptools. Its parser reports where a request is (`on_message_begin`,
    `on_headers_complete`, `on_message_complete`); the timer follows after each read, so a request whose
    headers and body came in one read (the usual POST) arms no body timer at all."""

    header_timeout_s = 10.0
    body_timeout_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for = ""
        self._phase = "headers"  # what the client owes: headers, body, or "" (a request is in)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.get_protocol() is self:  # not upgraded to a WebSocket
            self._follow()
        else:
            self._disarm()

    def on_header(self, name: bytes, value: bytes) -> None:
        # RFC 9110 §5.5: the whitespace around a field value is not part of it. llhttp keeps the trailing part,
        # which h11 strips: every reader of a header (API keys, Origin, Mcp-Session-Id, the 2026-07-28 routing
        # and Mcp-Param-* checks) then sees the value a server on h11 sees.
        super().on_header(name, value.strip(b" \t"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = "headers"

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._phase = "body"

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = ""

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._phase == "" and (self.cycle is None or self.cycle.response_complete):
            self._phase = "headers"  # the next request's (not one pipelined behind, already in)
        if not self.transport.is_closing():
            self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        owed = self._phase
        if owed == self._waiting_for:
            return  # the deadline runs from when the client started to owe it, not from its last byte
        self._disarm()
        self._waiting_for = owed
        if owed:
            timeout = self.header_timeout_s if owed == "headers" else self.body_timeout_s
            self._deadline = self.loop.call_later(timeout, self._expired, owed, timeout)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = ""

    def _expired(self, owed: str, timeout: float) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info("Closing the connection of %s: the request's %s took over %g s.", client, owed, timeout)
        cycle = self.cycle
        if owed == "headers" and (cycle is None or cycle.response_complete):
            self.transport.write(_REQUEST_TIMEOUT)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app sees http.disconnect instead of waiting for the body
            cycle.message_event.set()
        self.transport.close()
