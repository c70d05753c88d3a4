"""Load generator for MCP servers over Streamable HTTP (`/mcp`) and legacy HTTP+SSE (`/sse`).

It opens S client sessions and makes N `tools/call` requests in total, spread over the sessions: each session
calls sequentially, the sessions run concurrently. Every call echoes a text unique to it, and every reply is
checked to be the one asked for (its JSON-RPC id and the echoed text): a reply delivered to the wrong session or
the wrong request counts as a mismatch. It reports p50/p90/p99 latency, calls/s, errors and mismatches.

Three client modes:
- `sdk`: the official MCP Python SDK (`ClientSession` over `streamable_http_client` / `sse_client`), handshake era;
- `raw`: a lean client of our own on asyncio sockets, speaking HTTP/1.1 keep-alive and the MCP transports
  directly (JSON or SSE answers to a POST; the SSE stream of the legacy transport), so that the load generator
  is not the bottleneck; handshake era;
- `modern`: the official SDK client pinned to the stateless era, `Client(url, mode="2026-07-28")` (no handshake,
  no session: every call a self-contained POST with the per-request `_meta`), over `/mcp` only.

Subcommands (all print one JSON object with `--json`):
- `run`: the load described above;
- `list`: latency of `tools/list` (following `nextCursor`), checking the number of tools;
- `hold`: open many idle sessions (initialized `/mcp` sessions and open `/sse` streams), print one JSON line
  once they are held, then wait for a line on stdin (or `--hold-seconds`) and close them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import resource
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
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


# --------------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------------
# SDK sessions


class SdkSession:
    """The official SDK client; `request` is only used for `tools/call` and `tools/list`."""

    def __init__(self, url: str, transport: str) -> None:
        self.url = url
        self.transport = transport
        self.stack = contextlib.AsyncExitStack()
        self.session: Any = None
        self.reconnects = 0

    async def initialize(self) -> None:
        import httpx2
        from mcp import ClientSession
        from mcp.client.sse import sse_client
        from mcp.client.streamable_http import streamable_http_client

        if self.transport == "mcp":
            http = await self.stack.enter_async_context(httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=120.0)))
            read, write = await self.stack.enter_async_context(streamable_http_client(self.url, http_client=http))
        else:
            read, write = await self.stack.enter_async_context(sse_client(self.url, sse_read_timeout=120.0))
        self.session = await self.stack.enter_async_context(ClientSession(read, write))
        await self.session.initialize()

    async def call_echo(self, tool: str, text: str) -> str:
        result = await self.session.call_tool(tool, {"text": text})
        if result.is_error:
            raise BenchError(f"tool error: {result.content}")
        return str(result.content[0].text)

    async def close(self, delete: bool = False) -> None:
        await self.stack.aclose()


class SdkModernSession:
    """The official SDK client pinned to 2026-07-28: `Client(..., mode="2026-07-28")` over Streamable HTTP. Entering
    it sends nothing (the version is adopted, not negotiated), so the first call is also the first request."""

    MODE = "2026-07-28"

    def __init__(self, url: str) -> None:
        self.url = url
        self.stack = contextlib.AsyncExitStack()
        self.client: Any = None
        self.reconnects = 0

    async def initialize(self) -> None:
        import httpx2
        from mcp.client.client import Client
        from mcp.client.streamable_http import streamable_http_client

        http = await self.stack.enter_async_context(httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=120.0)))
        transport = streamable_http_client(self.url, http_client=http)
        # No response cache: tools/call is not cacheable anyway, and the direct and gateway runs stay alike.
        self.client = await self.stack.enter_async_context(Client(transport, mode=self.MODE, cache=None))

    async def call_echo(self, tool: str, text: str) -> str:
        result = await self.client.call_tool(tool, {"text": text})
        if result.is_error:
            raise BenchError(f"tool error: {result.content}")
        return str(result.content[0].text)

    async def close(self, delete: bool = False) -> None:
        await self.stack.aclose()


def make_session(mode: str, transport: str, url: str, headers: dict[str, str] | None = None) -> Any:
    if mode == "modern":
        if transport != "mcp":
            raise SystemExit("--mode modern is Streamable HTTP (/mcp) only: the 2026-07-28 era has no legacy SSE")
        if headers:
            raise BenchError("--header is for the raw client only")
        return SdkModernSession(url)
    if mode == "sdk":
        if headers:
            raise BenchError("--header is for the raw client only")
        return SdkSession(url, transport)
    return RawMcpSession(url, headers) if transport == "mcp" else RawSseSession(url, headers)


async def call_echo(session: Any, tool: str, text: str) -> None:
    """One checked echo call: raises BenchError or Mismatch."""
    if isinstance(session, SdkSession | SdkModernSession):
        answered = await session.call_echo(tool, text)
    else:
        reply = await session.request("tools/call", {"name": tool, "arguments": {"text": text}})
        if "error" in reply:
            raise BenchError(f"JSON-RPC error: {reply['error']}")
        result = reply["result"]
        if result.get("isError"):
            raise BenchError(f"tool error: {result.get('content')}")
        answered = result["content"][0]["text"]
    if answered != text:
        raise Mismatch(f"asked to echo {text!r}, got {answered!r}")


# --------------------------------------------------------------------------------------------------------------
# Statistics


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    values = sorted(latency * 1000 for latency in latencies_s)
    if not values:
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "mean": math.nan, "min": math.nan, "max": math.nan}
    return {
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "mean": sum(values) / len(values),
        "min": values[0],
        "max": values[-1],
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    mismatches: int = 0
    sessions_failed: int = 0
    samples: list[str] = field(default_factory=list)

    def note(self, kind: str, exc: BaseException) -> None:
        text = f"{kind}: {exc}" if str(exc) else f"{kind}: {exc!r}"
        if len(self.samples) < 8 and text not in self.samples:
            self.samples.append(text[:300])


# --------------------------------------------------------------------------------------------------------------
# The load


async def run_load(
    url: str,
    transport: str,
    mode: str,
    sessions: int,
    calls: int,
    tool: str = "echo",
    warmup: int = 1,
    call_timeout: float = 30.0,
    setup_timeout: float = 120.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """S sessions, N checked echo calls in total; the measured phase starts once every session is ready."""
    nonce = secrets.token_hex(3)
    shares = [calls // sessions + (1 if index < calls % sessions else 0) for index in range(sessions)]
    tally = Tally()
    ready = 0
    all_ready = asyncio.Event()
    go = asyncio.Event()
    finished_at: list[float] = []
    reconnects = 0
    setup_started = time.perf_counter()
    opening = asyncio.Semaphore(32)  # do not stampede the server's accept queue with the handshakes

    def mark_ready() -> None:
        nonlocal ready
        ready += 1
        if ready == sessions:
            all_ready.set()

    async def one_session(index: int) -> None:
        nonlocal reconnects
        session = make_session(mode, transport, url, headers)
        opened = False
        try:
            try:
                async with opening:
                    await asyncio.wait_for(session.initialize(), setup_timeout)
                for number in range(warmup):
                    await asyncio.wait_for(call_echo(session, tool, f"warmup-{nonce}-s{index}-{number}"), call_timeout)
                opened = True
            except Exception as exc:
                tally.sessions_failed += 1
                tally.errors += shares[index]
                tally.note("session failed", exc)
            finally:
                mark_ready()
            if not opened:
                return
            await go.wait()
            for number in range(shares[index]):
                text = f"{nonce}-s{index}-c{number}-{secrets.token_hex(4)}"
                started = time.perf_counter()
                try:
                    await asyncio.wait_for(call_echo(session, tool, text), call_timeout)
                except Mismatch as exc:
                    tally.mismatches += 1
                    tally.note("mismatch", exc)
                    continue
                except Exception as exc:
                    tally.errors += 1
                    tally.note("error", exc)
                    continue
                tally.latencies.append(time.perf_counter() - started)
            finished_at.append(time.perf_counter())
        finally:
            reconnects += session.reconnects
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.close(delete=True), 10)

    tasks = [asyncio.create_task(one_session(index)) for index in range(sessions)]
    await all_ready.wait()
    setup_s = time.perf_counter() - setup_started
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    ended = max(finished_at) if finished_at else time.perf_counter()
    wall = max(ended - started, 1e-9)
    cpu = _cpu_seconds() - cpu_before
    ok = len(tally.latencies)
    return {
        "mode": mode,
        "transport": transport,
        "url": url,
        "sessions": sessions,
        "calls": calls,
        "ok": ok,
        "errors": tally.errors,
        "mismatches": tally.mismatches,
        "sessions_failed": tally.sessions_failed,
        "error_samples": tally.samples,
        "reconnects": reconnects,
        "setup_s": round(setup_s, 3),
        "wall_s": round(wall, 4),
        "calls_per_s": round(ok / wall, 1),
        "latency_ms": {key: round(value, 3) for key, value in latency_summary(tally.latencies).items()},
        "loadgen_cpu_pct": round(100 * cpu / wall, 1),
    }


async def run_list(url: str, calls: int, expect_tools: int | None, call_timeout: float = 30.0) -> dict[str, Any]:
    """Sequential `tools/list` on one raw session; each sample is the whole list (every page)."""
    session = RawMcpSession(url)
    tally = Tally()
    counts: set[int] = set()
    pages = 0
    try:
        await asyncio.wait_for(session.initialize(), 60)
        for _ in range(calls + 1):  # the first one warms up and is not counted
            started = time.perf_counter()
            try:
                tools, pages = await asyncio.wait_for(_list_all(session), call_timeout)
            except Exception as exc:
                tally.errors += 1
                tally.note("error", exc)
                continue
            elapsed = time.perf_counter() - started
            counts.add(tools)
            if expect_tools is not None and tools != expect_tools:
                tally.mismatches += 1
                tally.note("mismatch", Mismatch(f"expected {expect_tools} tools, got {tools}"))
            tally.latencies.append(elapsed)
        tally.latencies = tally.latencies[1:]
    finally:
        await session.close(delete=True)
    return {
        "calls": calls,
        "ok": len(tally.latencies),
        "errors": tally.errors,
        "mismatches": tally.mismatches,
        "error_samples": tally.samples,
        "tools": sorted(counts),
        "pages": pages,
        "latency_ms": {key: round(value, 3) for key, value in latency_summary(tally.latencies).items()},
    }


async def _list_all(session: RawMcpSession) -> tuple[int, int]:
    cursor: str | None = None
    tools = pages = 0
    while True:
        reply = await session.request("tools/list", {"cursor": cursor} if cursor else {})
        if "error" in reply:
            raise BenchError(f"tools/list: {reply['error']}")
        tools += len(reply["result"]["tools"])
        pages += 1
        cursor = reply["result"].get("nextCursor")
        if not cursor:
            return tools, pages


async def _gather_bounded(factories: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def guarded(factory: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await factory()

    return await asyncio.gather(*(guarded(factory) for factory in factories), return_exceptions=True)


async def hold_sessions(
    base: str, mcp_sessions: int, sse_sessions: int, hold_seconds: float, open_timeout: float, get_stream: bool
) -> dict[str, Any]:
    """Open idle sessions, report them on stdout, hold them until stdin says so (or the time is up)."""
    held: list[Any] = []
    failures: list[str] = []
    started = time.perf_counter()

    async def open_mcp() -> None:
        session = RawMcpSession(f"{base}/mcp")
        await session.initialize()
        if get_stream:
            await session.open_get_stream()
        session.http.close()  # the session is the server's state; keep only the GET stream open
        held.append(session)

    async def open_sse() -> None:
        session = RawSseSession(f"{base}/sse")
        await session.connect()
        reply = await session.request("initialize", _initialize_params(LEGACY_PROTOCOL_VERSION))
        if "result" not in reply:
            raise BenchError(f"initialize failed: {reply}")
        await session._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        session.poster.close()
        held.append(session)

    factories: list[Callable[[], Awaitable[Any]]] = [*[open_mcp] * mcp_sessions, *[open_sse] * sse_sessions]
    try:
        outcomes = await asyncio.wait_for(_gather_bounded(factories, 50), open_timeout)
    except TimeoutError:
        outcomes = [TimeoutError(f"not all sessions opened within {open_timeout} s")]
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            failures.append(f"{outcome!r}"[:200])
    report = {
        "held_mcp": sum(isinstance(session, RawMcpSession) for session in held),
        "held_sse": sum(isinstance(session, RawSseSession) for session in held),
        "failed": len(failures),
        "failure_samples": sorted(set(failures))[:5],
        "open_s": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(report), flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_stdin_line(), hold_seconds)
    await _gather_bounded([functools.partial(session.close, delete=True) for session in held], 50)
    return report


async def _stdin_line() -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(sys.stdin.fileno(), readable)
    try:
        await done
    finally:
        loop.remove_reader(sys.stdin.fileno())


# --------------------------------------------------------------------------------------------------------------
# CLI


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _print_run(result: dict[str, Any]) -> None:
    latency = result["latency_ms"]
    print(
        f"{result['mode']:>4} {result['transport']:>3} S={result['sessions']:<3} N={result['calls']:<6} "
        f"p50={latency['p50']:.2f} ms p90={latency['p90']:.2f} ms p99={latency['p99']:.2f} ms "
        f"{result['calls_per_s']:.0f} calls/s errors={result['errors']} mismatches={result['mismatches']} "
        f"(load generator CPU {result['loadgen_cpu_pct']:.0f}%)"
    )
    for sample in result["error_samples"]:
        print(f"  {sample}")


def _headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, separator, content = value.partition(":")
        if not separator or not name.strip():
            raise SystemExit(f"--header {value!r}: expected 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="S sessions, N checked echo calls in total")
    run.add_argument("--url", required=True, help="http://127.0.0.1:PORT/mcp or http://127.0.0.1:PORT/sse")
    run.add_argument("--transport", choices=["mcp", "sse"], help="default: from the URL's path")
    run.add_argument("--mode", choices=["raw", "sdk", "modern"], default="raw")
    run.add_argument("-S", "--sessions", type=int, default=1)
    run.add_argument("-N", "--calls", type=int, default=2000)
    run.add_argument("--tool", default="echo", help="the echo tool's name (behind the gateway: KEY--echo)")
    run.add_argument("--warmup", type=int, default=1, help="unmeasured calls per session before the run")
    run.add_argument("--call-timeout", type=float, default=30.0)
    run.add_argument(
        "--header", action="append", default=[], help="'Name: value' on every request (raw client only; repeatable)"
    )

    listing = commands.add_parser("list", help="tools/list latency")
    listing.add_argument("--url", required=True)
    listing.add_argument("-N", "--calls", type=int, default=200)
    listing.add_argument("--expect-tools", type=int)

    hold = commands.add_parser("hold", help="hold idle sessions open")
    hold.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    hold.add_argument("--mcp", type=int, default=500, help="initialized /mcp sessions")
    hold.add_argument("--sse", type=int, default=500, help="open /sse streams (initialized sessions)")
    hold.add_argument("--no-get-stream", action="store_true", help="do not open the /mcp sessions' GET streams")
    hold.add_argument("--hold-seconds", type=float, default=120.0)
    hold.add_argument("--open-timeout", type=float, default=90.0)

    for sub in (run, listing, hold):
        sub.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    _raise_fd_limit()

    if args.command == "run":
        transport = args.transport or ("sse" if urlsplit(args.url).path.rstrip("/").endswith("/sse") else "mcp")
        result = asyncio.run(
            run_load(
                args.url,
                transport,
                args.mode,
                args.sessions,
                args.calls,
                tool=args.tool,
                warmup=args.warmup,
                call_timeout=args.call_timeout,
                headers=_headers(args.header),
            )
        )
        print(json.dumps(result)) if args.json else _print_run(result)
    elif args.command == "list":
        result = asyncio.run(run_list(args.url, args.calls, args.expect_tools))
        if args.json:
            print(json.dumps(result))
        else:
            latency = result["latency_ms"]
            print(
                f"tools/list x{result['ok']}: {result['tools']} tools in {result['pages']} page(s), "
                f"p50={latency['p50']:.2f} ms p90={latency['p90']:.2f} ms p99={latency['p99']:.2f} ms "
                f"errors={result['errors']} mismatches={result['mismatches']}"
            )
    else:
        asyncio.run(
            hold_sessions(args.base, args.mcp, args.sse, args.hold_seconds, args.open_timeout, not args.no_get_stream)
        )


if __name__ == "__main__":
    main()
