"""The gateway's Starlette application: client routes, health and metrics, over one GatewayRuntime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from mcp_supervisor.gateway.edge import EdgeChecks
from mcp_supervisor.gateway.legacy_sse import LegacySseEndpoint
from mcp_supervisor.gateway.oauth_refusals import protected_resource_metadata_path
from mcp_supervisor.gateway.runtime import GatewayRuntime
from mcp_supervisor.gateway.streamable_http import StreamableHttpEndpoint


def _json(value: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def create_app(runtime: GatewayRuntime) -> Starlette:
    backends, sessions, supervisor = runtime.backends, runtime.sessions, runtime.supervisor
    edge = EdgeChecks(runtime.settings)
    mcp_endpoint = StreamableHttpEndpoint(runtime.core, edge)
    legacy = LegacySseEndpoint(runtime.core, edge)

    def misdirected(request: Request) -> Response | None:
        """The DNS-rebinding guard for health and metrics (they show backends' states and errors)."""
        refusal = edge.guard.check_probe(request.headers)
        return Response(refusal[1], status_code=refusal[0], media_type="text/plain") if refusal else None

    async def health(request: Request) -> Response:
        if refused := misdirected(request):
            return refused
        return _json({"status": "ok", "backends_linked": len(backends.links), "sessions": len(sessions)})

    async def metrics(request: Request) -> Response:
        if refused := misdirected(request):
            return refused
        text = backends.metrics.render(backends.statuses.values(), backends.links, len(sessions))
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def health_backends(request: Request) -> Response:
        if refused := misdirected(request):
            return refused
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

    admin = None
    if runtime.settings.enable_admin_ui:
        from mcp_supervisor.admin.app import AdminApp  # only when enabled: keeps the default gateway lean

        admin = AdminApp(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            if admin is not None:
                await admin.close()
            if edge.oauth is not None:
                await edge.oauth.close()
            await runtime.stop()

    async def resource_metadata(request: Request) -> Response:
        """RFC 9728: where clients learn which authorization servers issue tokens for this gateway."""
        assert edge.oauth is not None
        return Response(
            msgspec.json.encode(edge.oauth.metadata()),
            media_type="application/json",
            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=3600"},
        )

    routes: list[BaseRoute] = [
        Route("/mcp", mcp_endpoint.handle, methods=["GET", "POST", "DELETE"]),
        Route("/mcp/", mcp_endpoint.handle, methods=["GET", "POST", "DELETE"]),
        Route("/sse", legacy.stream, methods=["GET"]),
        Route("/message", legacy.post, methods=["POST"]),
        Route("/messages", legacy.post, methods=["POST"]),
        Route("/messages/", legacy.post, methods=["POST"]),
        Route("/health", health),
        Route("/health/backends", health_backends),
        Route("/metrics", metrics),
    ]
    if edge.oauth is not None:
        # The root form and the path-suffixed form for the resource (e.g. /mcp), as RFC 9728 §3.1 builds it.
        suffixed = protected_resource_metadata_path(runtime.settings.oauth_resource)
        for path in dict.fromkeys(("/.well-known/oauth-protected-resource", suffixed, suffixed + "/sse")):
            routes.append(Route(path, resource_metadata, methods=["GET"]))
    if admin is not None:
        routes.append(Mount("/admin", app=admin.asgi))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app
