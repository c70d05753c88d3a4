"""The load generator's own MCP client: HTTP/1.1 keep-alive on asyncio streams, JSON or SSE answers to a POST,
and the legacy SSE transport's stream, so that the client is not the bottleneck (loadgen.py `--mode raw`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

PROTOCOL_VERSION = "2025-11-25"
LEGACY_PROTOCOL_VERSION = "2024-11-05"
CLIENT_INFO = {"name": "mcp-supervisor-bench", "version": "1"}

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class BenchError(Exception):
    """A call that failed (transport or protocol): counted as an error."""


class Mismatch(Exception):
    """A reply that is not the one asked for: counted as a mismatch."""


# Raw HTTP/1.1 over asyncio streams


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class RawHttp:
    """One HTTP/1.1 keep-alive connection; reconnects when the server closed it while idle."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.host_header = f"{host}:{port}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    def _head(self, method: str, path: str, headers: dict[str, str], length: int | None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if length is not None:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send_head_and_body(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
        if self.writer is None:
            await self.connect()
        assert self.writer is not None
        self.writer.write(self._head(method, path, headers, None if body is None else len(body)) + (body or b""))

    async def read_head(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def read_body(self, headers: dict[str, str]) -> bytes:
        reader = self.reader
        assert reader is not None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = [chunk async for chunk in self.iter_chunks()]
            return b"".join(parts)
        length = headers.get("content-length")
        if length is not None:
            return await reader.readexactly(int(length))
        data = await reader.read()  # no framing: the body ends with the connection
        self.close()
        return data

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        reader = self.reader
        assert reader is not None
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                    pass
                return
            chunk = await reader.readexactly(size + 2)
            yield chunk[:-2]

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> HttpResponse:
        reused = self.writer is not None
        try:
            await self.send_head_and_body(method, path, headers, body)
            status, response_headers = await self.read_head()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # A keep-alive connection the server closed while we were idle: retry once on a fresh one.
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            self.close()
            self.reconnects += 1
            await self.send_head_and_body(method, path, headers, body)
            status, response_headers = await self.read_head()
        response_body = await self.read_body(response_headers)
        if response_headers.get("connection", "").lower() == "close":
            self.close()
        return HttpResponse(status, response_headers, response_body)


def sse_events(data: bytes) -> list[tuple[str, bytes]]:
    """The (event, data) pairs of a complete SSE body."""
    parser = SseParser()
    return parser.feed(data) + parser.feed(b"\n\n")


class SseParser:
    """Incremental SSE parser: feed bytes, get complete (event, data) pairs; `\\n` or `\\r\\n` line ends."""

    def __init__(self) -> None:
        self.buffer = b""
        self.event = ""
        self.data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        events: list[tuple[str, bytes]] = []
        self.buffer += chunk
        while True:
            newline = self.buffer.find(b"\n")
            if newline < 0:
                return events
            line = self.buffer[:newline].rstrip(b"\r")
            self.buffer = self.buffer[newline + 1 :]
            if not line:
                if self.data:
                    events.append((self.event or "message", b"\n".join(self.data)))
                self.event, self.data = "", []
            elif line.startswith(b":"):
                continue
            else:
                name, _, value = line.partition(b":")
                value = value.removeprefix(b" ")
                if name == b"event":
                    self.event = value.decode()
                elif name == b"data":
                    self.data.append(value)


def _split_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise SystemExit(f"the URL needs an explicit host and port: {url}")
    return parts.hostname, parts.port, parts.path + (f"?{parts.query}" if parts.query else "")


def _initialize_params(version: str) -> dict[str, Any]:
    return {"protocolVersion": version, "capabilities": {}, "clientInfo": CLIENT_INFO}


# Raw MCP sessions


class RawMcpSession:
    """A Streamable HTTP session on one keep-alive connection: POST JSON, read a JSON or SSE answer."""

    def __init__(self, url: str, extra_headers: dict[str, str] | None = None) -> None:
        host, port, self.path = _split_url(url)
        self.http = RawHttp(host, port)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        self.headers.update(extra_headers or {})  # credentials (--header), sent on every request
        self.next_id = 0
        self.session_id = ""

    @property
    def reconnects(self) -> int:
        return self.http.reconnects

    async def _post(self, message: dict[str, Any]) -> HttpResponse:
        try:
            return await self.http.request("POST", self.path, self.headers, _encode(message))
        except BaseException:
            self.http.close()  # a half-read answer would be taken for the next request's
            raise

    async def initialize(self) -> None:
        reply = await self.request("initialize", _initialize_params(PROTOCOL_VERSION))
        if "result" not in reply:
            raise BenchError(f"initialize failed: {reply}")
        self.headers["Mcp-Protocol-Version"] = reply["result"].get("protocolVersion", PROTOCOL_VERSION)
        response = await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if response.status != 202:
            raise BenchError(f"notifications/initialized got HTTP {response.status}: {response.body[:200]!r}")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        request_id = self.next_id
        response = await self._post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        if response.status != 200:
            raise BenchError(f"{method}: HTTP {response.status}: {response.body[:200]!r}")
        if method == "initialize":
            self.session_id = response.headers.get("mcp-session-id", "")
            if self.session_id:
                self.headers["Mcp-Session-Id"] = self.session_id
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            replies = []
            for _, data in sse_events(response.body):
                if not data:
                    continue  # a priming event (2025-11-25): an id to resume from, no message
                message = _decode(data)
                if "id" in message and ("result" in message or "error" in message):
                    replies.append(message)
            if len(replies) != 1:
                raise Mismatch(f"{method}: expected one reply on the SSE answer, got {len(replies)}")
            reply = replies[0]
        else:
            reply = _decode(response.body)
        if reply.get("id") != request_id:
            raise Mismatch(f"{method}: asked id {request_id}, the reply has id {reply.get('id')!r}")
        return reply  # type: ignore[no-any-return]

    async def open_get_stream(self) -> None:
        """Open the session's GET stream as SDK clients do (it stays open, idle, until `close`)."""
        stream = RawHttp(self.http.host, self.http.port)
        headers = {key: value for key, value in self.headers.items() if key != "Content-Type"}
        headers["Accept"] = "text/event-stream"
        await stream.send_head_and_body("GET", self.path, headers, None)
        status, _ = await stream.read_head()
        if status != 200:
            stream.close()
            raise BenchError(f"GET stream: HTTP {status}")
        self._get_stream = stream

    async def close(self, delete: bool = False) -> None:
        if delete and self.session_id:
            with contextlib.suppress(Exception):
                await self.http.request("DELETE", self.path, self.headers)
        self.http.close()
        stream = getattr(self, "_get_stream", None)
        if stream is not None:
            stream.close()


class RawSseSession:
    """A legacy HTTP+SSE session: one GET stream for everything the server sends, POSTs on another connection."""

    def __init__(self, url: str, extra_headers: dict[str, str] | None = None) -> None:
        host, port, self.path = _split_url(url)
        self.extra_headers = dict(extra_headers or {})
        self.stream = RawHttp(host, port)
        self.poster = RawHttp(host, port)
        self.endpoint: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.abandoned: set[int] = set()
        self.next_id = 0
        self.reader_task: asyncio.Task[None] | None = None
        self.headers = {"Content-Type": "application/json", **self.extra_headers}

    @property
    def reconnects(self) -> int:
        return self.poster.reconnects

    async def connect(self) -> None:
        headers = {"Accept": "text/event-stream", **self.extra_headers}
        await self.stream.send_head_and_body("GET", self.path, headers, None)
        status, headers = await self.stream.read_head()
        if status != 200:
            body = await self.stream.read_body(headers)
            raise BenchError(f"GET {self.path}: HTTP {status}: {body[:200]!r}")
        self.reader_task = asyncio.create_task(self._read(headers))
        await asyncio.wait_for(asyncio.shield(self.endpoint), 30)

    async def _read(self, headers: dict[str, str]) -> None:
        parser = SseParser()
        error: BaseException = BenchError("the SSE stream ended")
        try:
            chunks: AsyncIterator[bytes]
            if headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = self.stream.iter_chunks()
            else:
                chunks = self._raw_chunks()
            async for chunk in chunks:
                for event, data in parser.feed(chunk):
                    self._dispatch(event, data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = BenchError(f"the SSE stream failed: {exc!r}")
        waiting: list[asyncio.Future[Any]] = [self.endpoint, *self.pending.values()]
        for future in waiting:
            if not future.done():
                future.set_exception(error)

    async def _raw_chunks(self) -> AsyncIterator[bytes]:
        assert self.stream.reader is not None
        while chunk := await self.stream.reader.read(65536):
            yield chunk

    def _dispatch(self, event: str, data: bytes) -> None:
        if event == "endpoint":
            if not self.endpoint.done():
                self.endpoint.set_result(data.decode())
            return
        message = _decode(data)
        if "id" in message and ("result" in message or "error" in message):
            reply_id = message["id"]
            future = self.pending.pop(reply_id, None)
            if future is not None and not future.done():
                future.set_result(message)
            elif reply_id in self.abandoned:
                self.abandoned.discard(reply_id)  # the late reply of a call that timed out (already an error)
            else:
                # Not a reply to anything this session asked: fail what is waiting rather than let it time out.
                mismatch = Mismatch(f"a reply with id {reply_id!r} that this session did not ask for: {data[:120]!r}")
                for waiting in self.pending.values():
                    if not waiting.done():
                        waiting.set_exception(mismatch)

    async def _post(self, message: dict[str, Any]) -> None:
        try:
            response = await self.poster.request("POST", self.endpoint.result(), self.headers, _encode(message))
        except BaseException:
            self.poster.close()
            raise
        if response.status not in (200, 202):
            raise BenchError(f"POST {message.get('method')}: HTTP {response.status}: {response.body[:200]!r}")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        request_id = self.next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        try:
            await self._post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            reply = await future
        except asyncio.CancelledError:
            self.abandoned.add(request_id)
            raise
        finally:
            self.pending.pop(request_id, None)
        return reply

    async def initialize(self) -> None:
        await self.connect()
        reply = await self.request("initialize", _initialize_params(LEGACY_PROTOCOL_VERSION))
        if "result" not in reply:
            raise BenchError(f"initialize failed: {reply}")
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def close(self, delete: bool = False) -> None:
        if self.reader_task is not None:
            self.reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self.reader_task
        self.stream.close()
        self.poster.close()
