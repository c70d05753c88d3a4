"""Opening the one backend connection a worker owns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.worker.connection import BackendConnection


@asynccontextmanager
async def open_backend(entry: ServerEntry) -> AsyncIterator[BackendConnection]:
    if entry.type == "stdio":
        from mcp_supervisor.worker.stdio_connection import open_stdio

        async with open_stdio(entry) as stdio:
            yield stdio
    else:
        from mcp_supervisor.worker.sdk_connection import open_sdk  # the SDK costs ~0.5 s to import

        async with open_sdk(entry) as sdk:
            yield sdk
