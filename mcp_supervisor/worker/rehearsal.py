"""A worker's start-up, rehearsed once in the zygote before it freezes, so that forked workers share more.

CPython 3.11 writes into the code objects it runs: a warm-up counter on every call until the function is
"quickened", then the quickened bytecode itself, then the inline caches of each instruction until it is
specialized. A forked worker that runs a function the zygote never ran therefore copies the pages that hold
its code (and the caches and lazily built objects of what it calls: msgspec's encoders, asyncio's subprocess
transports, logging's formatters). Run here, those writes happen once, before the fork.

What is rehearsed is what every worker does: an event loop with a child watcher, a backend relay's handshake
and catalog listing against an in-memory backend, the messages it encodes and decodes, a pipe-connected child
(`true`, read to EOF and reaped), ZeroMQ sockets configured as a worker's (connected to nowhere, then closed
with their context: no thread survives, which the zygote checks), and a log line. Nothing of it is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import zmq

from mcp_supervisor.protocol import codec, socket_auth
from mcp_supervisor.protocol.channel import Channel
from mcp_supervisor.protocol.endpoints import configure_dealer
from mcp_supervisor.protocol.error_codes import METHOD_NOT_FOUND
from mcp_supervisor.protocol.messages import (
    CatalogChanged,
    Forward,
    Heartbeat,
    Notify,
    Reply,
    Resync,
    WorkerHeartbeat,
    WorkerReady,
    WorkerStateReport,
)
from mcp_supervisor.protocol.states import WorkerReport
from mcp_supervisor.system.logs import configure_logging
from mcp_supervisor.system.process_tree import pidfds_work
from mcp_supervisor.worker.era import negotiate
from mcp_supervisor.worker.relay import BackendRelay
from mcp_supervisor.worker.stdio_connection import StdioConnection

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_TOOLS = [{"name": f"tool{i}", "description": "A tool.", "inputSchema": {"type": "object"}} for i in range(3)]


class _InMemoryBackend:
    """Answers initialize and tools/list like a small stdio server would."""

    pid = None

    def __init__(self) -> None:
        self._lines: asyncio.Queue[bytes] = asyncio.Queue()

    async def send(self, message: bytes) -> None:
        request = _decode(message)
        if "id" not in request or "method" not in request:
            return
        result: Any
        if request["method"] == "server/discover":  # a handshake-era backend: the probe falls back
            error = {"code": METHOD_NOT_FOUND, "message": "Method not found"}
            await self._lines.put(_encode({"jsonrpc": "2.0", "id": request["id"], "error": error}) + b"\n")
            return
        if request["method"] == "initialize":
            version = request["params"]["protocolVersion"]
            result = {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": {"name": "r"}}
        else:
            result = {"tools": _TOOLS}
        await self._lines.put(_encode({"jsonrpc": "2.0", "id": request["id"], "result": result}) + b"\n")

    async def messages(self) -> AsyncIterator[bytes]:
        while True:
            yield await self._lines.get()

    def negotiated(self, protocol_version: str) -> None:
        pass

    def accept_tools(self, tools: list[Any]) -> list[Any]:
        return tools


async def _relay() -> None:
    backend = _InMemoryBackend()
    replies: list[Reply] = []
    relay = BackendRelay(backend, replies.append, lambda kind: asyncio.sleep(0), name="rehearsal")
    pump = asyncio.create_task(relay.pump())
    try:
        negotiated = await negotiate(relay, "stdio", "auto", 5.0)  # the era probe, then the handshake
        tools = await relay.list_all("tools", 5.0)
        ready = WorkerReady(
            key="r", generation=1, pid=0, initialize_result=_encode(negotiated.initialize_result), tools=_encode(tools)
        )
        for message in (
            ready,
            WorkerHeartbeat(key="r", generation=1),
            Heartbeat(key="r", generation=1),
            WorkerStateReport(key="r", generation=1, state=WorkerReport.READY),
            CatalogChanged(key="r", generation=1, kind="tools", items=b"[]"),
            Reply(rid=1, result=b"{}"),
        ):
            codec.encode(message)
        for incoming in (Forward(rid=1, body=b"{}"), Resync(), Notify(body=b"{}")):
            codec.decode_gateway_to_worker(codec.encode(incoming))
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump


async def _child() -> None:
    true = shutil.which("true")
    if true is None:
        return
    process = await asyncio.create_subprocess_exec(
        true, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    connection = StdioConnection(process)
    with contextlib.suppress(OSError):
        await connection.send(b"{}")
    async for _ in connection.messages():
        pass
    await connection.close()


def _sockets(runtime_dir: str) -> None:
    context = zmq.Context()
    try:
        credentials = socket_auth.derive(b"\0" * 32, socket_auth.worker_user("r", 1))
        data = context.socket(zmq.DEALER)
        configure_dealer(data, credentials.user)
        socket_auth.as_client(data, credentials)
        data.connect(f"ipc://{runtime_dir}/none.sock")
        monitor = data.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        channel = Channel(data)
        int(monitor.get(zmq.EVENTS))
        monitor.close(0)
        channel.close()
    finally:
        context.term()


async def _worker_day() -> None:
    loop = asyncio.get_running_loop()
    if sys.version_info < (3, 12) and pidfds_work():
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)
    for _ in range(10):  # past the interpreter's warm-up count, so the code is quickened and specialized here
        await _relay()
    await _child()


def rehearse() -> None:
    """Run once, before gc.freeze(); leaves no thread, loop, socket, child or logging handler behind."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        configure_logging("INFO", "%(asctime)s rehearsal %(levelname)s %(message)s")
        sink = io.StringIO()
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sink)
        for _ in range(10):
            logging.getLogger("mcp_supervisor.worker").info("Rehearsing a worker's start-up.")
        asyncio.run(_worker_day())
        with tempfile.TemporaryDirectory() as runtime_dir:
            for _ in range(3):
                _sockets(runtime_dir)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        if sys.version_info < (3, 12):
            asyncio.set_child_watcher(None)  # type: ignore[arg-type]  # the default again (typeshed omits None)
