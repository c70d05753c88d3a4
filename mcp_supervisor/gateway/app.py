"""The gateway's Starlette application: client routes, health and metrics (gateway/frontends/probes.py), the admin UI,
over one GatewayRuntime."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_supervisor.gateway.frontends.edge import EdgeChecks
from mcp_supervisor.gateway.frontends.http_sse_2024 import LegacySseEndpoint
from mcp_supervisor.gateway.frontends.oauth_refusals import protected_resource_metadata_path
from mcp_supervisor.gateway.frontends.probes import probe_routes
from mcp_supervisor.gateway.frontends.streamable_http import StreamableHttpEndpoint
from mcp_supervisor.gateway.runtime import GatewayRuntime

log = logging.getLogger("mcp_supervisor.gateway")


def _refused_admin(reason: str) -> ASGIApp:
    """What `/admin` answers when the admin UI refused to start: the sentence that says how to fix it."""
    refusal = Response(reason, status_code=503, media_type="text/plain")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await refusal(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})

    return app


class GatewayApp(Starlette):
    """Starlette, except that `/mcp` goes straight to its endpoint: on the path of every MCP call, Starlette's
    error and exception middlewares, router and request wrapper cost ~10 % of the gateway's CPU per call
    (py-spy, issue 27), for routing one path whose endpoint answers every method and every error itself."""

    mcp_endpoint: StreamableHttpEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.mcp_endpoint
        if endpoint is None or scope["type"] != "http" or scope["path"] not in ("/mcp", "/mcp/"):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        try:
            response = await endpoint.handle(Request(scope, receive))
        except Exception:  # what ServerErrorMiddleware did: a 500, and the traceback in the log
            log.exception("A /mcp request failed inside the gateway.")
            response = PlainTextResponse("Internal Server Error", status_code=500)
        await response(scope, receive, send)


def create_app(runtime: GatewayRuntime) -> Starlette:
    edge = EdgeChecks(runtime.settings)
    mcp_endpoint = StreamableHttpEndpoint(runtime.core, edge)
    legacy = LegacySseEndpoint(runtime.core, edge)

    admin, admin_refusal = None, ""
    if runtime.settings.enable_admin_ui:
        from mcp_supervisor.admin.app import AdminApp  # only when enabled: keeps the default gateway lean
        from mcp_supervisor.admin.password import AdminRefused
        from mcp_supervisor.gateway.admin_view import GatewayAdminView

        try:
            admin = AdminApp(GatewayAdminView(runtime))
        except AdminRefused as exc:
            log.error("%s", exc)
            admin_refusal = str(exc)

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
        *probe_routes(runtime, edge),
    ]
    if edge.oauth is not None:
        # The root form and the path-suffixed form for the resource (e.g. /mcp), as RFC 9728 §3.1 builds it.
        suffixed = protected_resource_metadata_path(runtime.settings.oauth_resource)
        for path in dict.fromkeys(("/.well-known/oauth-protected-resource", suffixed, suffixed + "/sse")):
            routes.append(Route(path, resource_metadata, methods=["GET"]))
    if admin is not None:
        routes.append(Mount("/admin", app=admin.asgi))
    elif admin_refusal:
        routes.append(Mount("/admin", app=_refused_admin(admin_refusal)))
    app = GatewayApp(routes=routes, lifespan=lifespan)
    app.mcp_endpoint = mcp_endpoint
    app.state.runtime = runtime
    return app
