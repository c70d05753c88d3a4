"""Opening the one backend connection a worker owns, with the MCP SDK's client transports."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_supervisor.config.models import ServerEntry

Streams = tuple[Any, Any]


def stdio_environment(entry: ServerEntry) -> dict[str, str]:
    """The seed merges a server's `env` over the proxy's whole environment (the SDK default is a safe subset).

    Our own bin directory goes last on PATH, so servers installed next to mcp-supervisor (in its venv) are
    found even when the venv is not activated.
    """
    env = {**os.environ, **entry.env}
    own_bin = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if own_bin not in path.split(os.pathsep):
        env["PATH"] = f"{path}{os.pathsep}{own_bin}" if path else own_bin
    return env


@asynccontextmanager
async def open_backend(entry: ServerEntry) -> AsyncIterator[Streams]:
    if entry.type == "stdio":
        assert entry.command is not None
        env = stdio_environment(entry)
        command = shutil.which(entry.command, path=env["PATH"]) or entry.command
        params = StdioServerParameters(command=command, args=list(entry.args), env=env, cwd=entry.cwd)
        # The backend's stderr is the worker's stderr, which the supervisor captures per worker.
        async with stdio_client(params, errlog=sys.stderr) as streams:
            yield streams
    elif entry.type == "sse":
        assert entry.url is not None
        # The SDK's SSE transport puts these headers on the GET stream and on every POST, as the seed does.
        async with sse_client(entry.url, headers=entry.outbound_headers(), sse_read_timeout=3600) as streams:
            yield streams
    else:
        assert entry.url is not None
        async with (
            create_mcp_http_client(headers=entry.outbound_headers()) as http,
            streamable_http_client(entry.url, http_client=http) as streams,
        ):
            yield streams
