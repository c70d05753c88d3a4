"""A stdio backend: a child process speaking newline-delimited JSON-RPC, relayed as bytes.

Our own transport rather than the SDK's because the SDK validates every line into pydantic models and dumps
them back (a full decode and re-encode per message) and imports ~0.5 s of modules, which a worker that must
be RUNNING again within a second of a crash cannot afford. Messages from the gateway are written verbatim.

The backend runs in the worker's process group, so a SIGKILL of the group takes it along. Stopping: close
stdin (the MCP way to ask a stdio server to exit), wait, SIGTERM, wait, SIGKILL.

Starting (`spawn`): the sandbox's outer stage (join the cgroup, rlimits, uid drop, a Landlock domain) must run
in the backend's own process just before its exec. The supervisor plans it as an exec'd launcher, a Python
interpreter's start (~7 ms of CPU) per backend start. A worker whose process has a single thread runs the same
steps (`launch.apply`) in the forked child instead, between fork and exec, and execs what the launcher would
have: at a hundred starting backends, the launcher was a fifth of the sandbox's CPU. Python code between fork
and exec is only safe without other threads (a lock another thread held at fork stays held in the child),
which is why the worker spawns its backend before its ZeroMQ context starts any (worker/main.py), and why
this falls back to the exec'd launcher whenever the process has more than one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from mcp_supervisor.errors import BackendError
from mcp_supervisor.protocol.spawn import Launch
from mcp_supervisor.system import launch as launch_stage
from mcp_supervisor.system.netns import Network, Wiring, connect

log = logging.getLogger("mcp_supervisor.worker")
# The network namespace plumbing of each running backend, by pid (system/netns.py).
_networks: dict[int, Network] = {}

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
        try:
            await self._stop()
        finally:
            release_network(self.process.pid)

    async def _stop(self) -> None:
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


def single_threaded() -> bool:
    """Whether this process has exactly one thread (native ones included: ZeroMQ's I/O threads are not Python's)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _stage_in_child(spec: launch_stage.Spec, reason_fd: int) -> Callable[[], None]:
    def run_stage() -> None:  # in the forked child, before exec: a failure means no exec (fail closed)
        try:
            launch_stage.apply(spec)
        except launch_stage.LaunchFailed as exc:
            with contextlib.suppress(OSError):
                os.write(reason_fd, str(exc).encode(errors="replace")[:4096])
            raise

    return run_stage


async def spawn(launch: Launch, stderr_fd: int | None = None) -> asyncio.subprocess.Process:
    """Start the backend exactly as the supervisor planned it (supervisor/backend_launch.py: environment,
    sandbox, launcher); nothing of the worker's own environment is added here. See the module's text for where
    the sandbox's outer stage runs, and system/netns.py for its own network namespace. `stderr_fd`: the pipe the
    supervisor reads as the backend's stderr, apart from the worker's own (without one, the backend shares the
    worker's)."""
    wiring = Wiring(launch.network) if launch.network is not None else None
    try:
        process = await _spawn(launch, wiring, stderr_fd)
    except BaseException:
        if wiring is not None:
            wiring.spawned()
            wiring.close()
        raise
    if wiring is not None:
        _networks[process.pid] = await connect(process, wiring)
    return process


async def _spawn(launch: Launch, wiring: Wiring | None, stderr_fd: int | None) -> asyncio.subprocess.Process:
    fill = wiring.substitute if wiring is not None else list
    argv, preexec, reason_fd, write_fd = fill(launch.argv), None, -1, -1
    if launch.stage and single_threaded():
        spec, program = launch_stage.parse([*launch.stage, "--", *fill(launch.program)])
        launch_stage.preload(spec)  # no import in the child, where a uid drop may have closed our package
        reason_fd, write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        argv, preexec = program, _stage_in_child(spec, write_fd)
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr_fd,  # never the worker's own: a backend's line cannot pass for the worker's
            env=launch.env,
            cwd=launch.cwd,
            limit=MAX_LINE_BYTES,
            preexec_fn=preexec,
            pass_fds=wiring.pass_fds if wiring is not None else (),
        )
    except subprocess.SubprocessError:  # the stage failed in the child: nothing was executed
        reason = b""
        with contextlib.suppress(OSError):
            reason = os.read(reason_fd, 4096)
        raise BackendError(f"The sandbox could not be set up: {reason.decode(errors='replace') or 'unknown'}") from None
    finally:
        if preexec is not None:
            os.close(reason_fd)
            os.close(write_fd)


def release_network(pid: int) -> None:
    """The backend `pid` exited: end its slirp4netns and port relays."""
    network = _networks.pop(pid, None)
    if network is not None:
        network.close()


@asynccontextmanager
async def open_stdio(
    launch: Launch, started: asyncio.subprocess.Process | Exception | None = None, stderr_fd: int | None = None
) -> AsyncIterator[StdioConnection]:
    """The connection to the backend `started` by an earlier `spawn` (or why that failed), or to one started
    now."""
    if isinstance(started, Exception):
        raise started
    process = started if started is not None else await spawn(launch, stderr_fd)
    connection = StdioConnection(process)
    try:
        yield connection
    finally:
        await asyncio.shield(connection.close())
