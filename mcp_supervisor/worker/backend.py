"""Opening the one backend connection a worker owns."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.protocol.spawn import Launch
from mcp_supervisor.worker.connection import BackendConnection

SDK_MODULE = "mcp_supervisor.worker.sdk_connection"


async def import_off_loop(name: str) -> None:
    """Import a module in a thread: the SDK takes ~1 s of CPU (several on a busy machine), and this loop must
    keep beating meanwhile or the supervisor kills the worker as hung. A no-op when the zygote preloaded it."""
    if name not in sys.modules:
        await asyncio.to_thread(importlib.import_module, name)


@asynccontextmanager
async def open_backend(
    entry: ServerEntry,
    launch: Launch | None,
    oauth_secret: str = "",
    started: asyncio.subprocess.Process | Exception | None = None,
    *,
    stderr_fd: int | None = None,
) -> AsyncIterator[BackendConnection]:
    """`started`: a stdio backend the worker spawned already (or why that failed), see `stdio_connection.spawn`;
    `stderr_fd`: the backend's own stderr pipe, for one spawned now."""
    if entry.type == "stdio":
        from mcp_supervisor.worker.stdio_connection import open_stdio

        assert launch is not None, "the supervisor plans every stdio backend's launch"
        async with open_stdio(launch, started, stderr_fd) as stdio:
            yield stdio
    else:
        await import_off_loop(SDK_MODULE)
        from mcp_supervisor.worker.sdk_connection import open_sdk

        async with open_sdk(entry, oauth_secret) as sdk:
            yield sdk
