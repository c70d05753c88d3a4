"""The gateway's Starlette application: routes, and the lifespan that owns the data-plane sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.backends import Backends
from mcp_supervisor.gateway.core import GatewayCore
from mcp_supervisor.gateway.edge import EdgeChecks
from mcp_supervisor.gateway.sessions import SessionStore
from mcp_supervisor.gateway.streamable_http import StreamableHttpEndpoint
from mcp_supervisor.gateway.supervisor_link import SupervisorLink
from mcp_supervisor.protocol.endpoints import Endpoints

log = logging.getLogger("mcp_supervisor.gateway")

SESSION_SWEEP_INTERVAL_S = 60.0


def _json(value: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def create_app(settings: Settings, endpoints: Endpoints, tool_config: ToolConfig) -> Starlette:
    sessions = SessionStore()
    # The core needs the backends and the backends notify the core: break the cycle with a late-bound callback.
    core_ref: list[GatewayCore] = []
    backends = Backends(endpoints, lambda: core_ref[0].catalog_changed())
    core = GatewayCore(settings, backends, sessions, tool_config)
    core_ref.append(core)
    supervisor = SupervisorLink(endpoints, backends, core.set_tool_config)
    mcp_endpoint = StreamableHttpEndpoint(core, EdgeChecks(settings))

    async def health(request: Request) -> Response:
        return _json({"status": "ok", "backends_linked": len(backends.links), "sessions": len(sessions)})

    async def metrics(request: Request) -> Response:
        text = backends.metrics.render(backends.statuses.values(), backends.links, len(sessions))
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def health_backends(request: Request) -> Response:
        linked = backends.links
        return _json(
            {
                "config_error": supervisor.config_error or None,
                "gateway": msgspec.to_builtins(supervisor.gateway_status) if supervisor.gateway_status else None,
                "backends": [
                    {
                        **msgspec.to_builtins(status),
                        "linked": status.key in linked,
                        "tools": len(linked[status.key].tools) if status.key in linked else 0,
                    }
                    for status in backends.statuses.values()
                ],
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        backends.start()
        tasks = [
            asyncio.create_task(supervisor.run(), name="supervisor-link"),
            asyncio.create_task(_sweep_sessions(sessions), name="session-sweeper"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for session in sessions.all():
                sessions.close(session.id)
            await backends.close()
            supervisor.close()

    app = Starlette(
        routes=[
            Route("/mcp", mcp_endpoint.handle, methods=["GET", "POST", "DELETE"]),
            Route("/mcp/", mcp_endpoint.handle, methods=["GET", "POST", "DELETE"]),
            Route("/health", health),
            Route("/health/backends", health_backends),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )
    app.state.core = core
    return app


async def _sweep_sessions(sessions: SessionStore) -> None:
    while True:
        await asyncio.sleep(SESSION_SWEEP_INTERVAL_S)
        expired = sessions.expire_idle()
        if expired:
            log.info("Closed %d idle client sessions.", expired)
