"""A stdio backend: a child process speaking newline-delimited JSON-RPC, relayed as bytes.

Our own transport rather than the SDK's because the SDK validates every line into pydantic models and dumps
them back (a full decode and re-encode per message) and imports ~0.5 s of modules, which a worker that must
be RUNNING again within a second of a crash cannot afford. Messages from the gateway are written verbatim.

The backend runs in the worker's process group, so a SIGKILL of the group takes it along. Stopping: close
stdin (the MCP way to ask a stdio server to exit), wait, SIGTERM, wait, SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp_supervisor.protocol.spawn import Launch

log = logging.getLogger("mcp_supervisor.worker")

# One JSON-RPC line may carry images or files; memory is only allocated as lines actually grow.
MAX_LINE_BYTES = 64 * 1024 * 1024
EXIT_GRACE_S = 2.0
READ_CHUNK_BYTES = 256 * 1024
# Past this much unwritten data in the pipe transport, a send waits for the backend to read.
DRAIN_ABOVE_BYTES = 1024 * 1024


class StdioConnection:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout

    @property
    def pid(self) -> int:
        return self.process.pid

    async def send(self, message: bytes) -> None:
        """Write one message; wait only under back-pressure. `write` is synchronous, so messages never
        interleave and no lock is needed, and the common case costs no suspension at all."""
        transport = self._stdin.transport
        if transport.is_closing():
            raise ConnectionResetError("The backend's stdin is closed.")
        self._stdin.write(message + b"\n")
        if transport.get_write_buffer_size() > DRAIN_ABOVE_BYTES:
            await self._stdin.drain()

    async def messages(self) -> AsyncIterator[bytes]:
        """The backend's lines, split out of whatever each read returned (one read often holds several
        replies at load: no readuntil round per line)."""
        partial: list[bytes] = []
        partial_size = 0
        while True:
            chunk = await self._stdout.read(READ_CHUNK_BYTES)
            if not chunk:
                rest = b"".join(partial)
                if rest.strip():
                    yield rest
                return
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                line = chunk[start : end + 1]
                if partial:
                    line = b"".join(partial) + line
                    partial.clear()
                    partial_size = 0
                start = end + 1
                if line.strip():
                    yield line
            if start < len(chunk):
                partial.append(chunk[start:])
                partial_size += len(chunk) - start
                if partial_size > MAX_LINE_BYTES:
                    log.error("The backend sent a line over %d bytes; closing the connection.", MAX_LINE_BYTES)
                    return

    def negotiated(self, protocol_version: str) -> None:
        pass  # newline-delimited JSON in both eras: nothing of the version shows outside the messages

    def accept_tools(self, tools: list[Any]) -> list[Any]:
        return tools  # stdio may ignore x-mcp-header annotations

    async def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self._stdin.close()
        if await self._exited_within(EXIT_GRACE_S):
            return
        self._signal(signal.SIGTERM)
        if await self._exited_within(EXIT_GRACE_S):
            return
        log.warning("The backend (pid %d) ignored SIGTERM; killing it.", self.process.pid)
        self._signal(signal.SIGKILL)
        await self._exited_within(EXIT_GRACE_S)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)

    async def _exited_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.process.wait(), seconds)
            return True
        except TimeoutError:
            return False


@asynccontextmanager
async def open_stdio(launch: Launch) -> AsyncIterator[StdioConnection]:
    """Start the backend exactly as the supervisor planned it (supervisor/backend_launch.py: environment,
    sandbox wrapper, launcher); nothing of the worker's own environment is added here."""
    process = await asyncio.create_subprocess_exec(
        *launch.argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=None,  # the worker's stderr, captured per worker by the supervisor
        env=launch.env,
        cwd=launch.cwd,
        limit=MAX_LINE_BYTES,
    )
    connection = StdioConnection(process)
    try:
        yield connection
    finally:
        await asyncio.shield(connection.close())
