"""Opening the one backend connection a worker owns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.protocol.spawn import Launch
from mcp_supervisor.worker.connection import BackendConnection


@asynccontextmanager
async def open_backend(
    entry: ServerEntry,
    launch: Launch | None,
    oauth_secret: str = "",
    started: asyncio.subprocess.Process | Exception | None = None,
) -> AsyncIterator[BackendConnection]:
    """`started`: a stdio backend the worker spawned already (or why that failed), see `stdio_connection.spawn`."""
    if entry.type == "stdio":
        from mcp_supervisor.worker.stdio_connection import open_stdio

        assert launch is not None, "the supervisor plans every stdio backend's launch"
        async with open_stdio(launch, started) as stdio:
            yield stdio
    else:
        from mcp_supervisor.worker.sdk_connection import open_sdk  # the SDK costs ~0.5 s to import

        async with open_sdk(entry, oauth_secret) as sdk:
            yield sdk
