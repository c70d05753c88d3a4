"""Health: the JSON snapshot, a backend's recent stderr, and the live event stream (`/sse/updates`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from mcp_supervisor.admin.config_store import check_server_key
from mcp_supervisor.admin.context import AdminContext
from mcp_supervisor.admin.health_view import all_health, tail_lines
from mcp_supervisor.admin.http import json_response, sse_frame

KEEPALIVE_S = 15.0
MAX_LOG_LINES = 2000


def health_routes(ctx: AdminContext) -> list[BaseRoute]:
    gateway = ctx.gateway

    async def health(request: Request) -> Response:
        own = gateway.gateway_status()
        return json_response(
            {
                "gateway": msgspec.to_builtins(own) if own is not None else None,
                "configError": gateway.config_error() or None,
                "backends": all_health(gateway.statuses(), gateway.linked()),
            }
        )

    async def logs(request: Request) -> Response:
        key = request.path_params["key"]
        if key != "gateway":
            check_server_key(key)
        try:
            count = max(1, min(int(request.query_params.get("lines", "200")), MAX_LOG_LINES))
        except ValueError:
            count = 200
        return json_response({"key": key, "lines": tail_lines(gateway.endpoints.log_dir / f"{key}.log", count)})

    async def updates(request: Request) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            with ctx.hub.listen() as queue:
                yield sse_frame("connected", {"message": "Connected to mcp-supervisor admin updates."})
                while True:
                    try:
                        event, data = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keepalive\n\n"  # also how a closed tab is noticed
                        continue
                    yield sse_frame(event, data)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return [
        Route("/health", health, methods=["GET"]),
        Route("/logs/{key}", logs, methods=["GET"]),
        Route("/sse/updates", updates, methods=["GET"]),
    ]
