"""Health and metrics: `/health` (liveness, open), `/health/backends` and `/metrics` (backend details).

Backend details hold each backend's last stderr line (backends print tokens there), pids, resources and sandbox:
whenever client auth is configured (ALLOWED_KEYS, ALLOWED_TOKENS or OAuth) they need a client credential, and a
client sees only the backends of its own clients.json view (issue 22: they were open to anyone, whole). The
gateway's own status and the config error are backend-wide: only a view of every server (`"servers": ["*"]`)
shows them. The supervisor CLI's `status` asks over the control socket, not here.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mcp_supervisor.config.clients import Profile
from mcp_supervisor.gateway.frontends.edge import EdgeChecks
from mcp_supervisor.gateway.runtime import GatewayRuntime
from mcp_supervisor.gateway.server.access import identity_profile


def _json(value: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def probe_routes(runtime: GatewayRuntime, edge: EdgeChecks) -> list[BaseRoute]:
    backends, sessions, supervisor = runtime.backends, runtime.sessions, runtime.supervisor

    def misdirected(request: Request) -> Response | None:
        """The DNS-rebinding guard, where a Host that is an IP address always passes (probes ask by address)."""
        refusal = edge.guard.check_probe(request.headers)
        return Response(refusal[1], status_code=refusal[0], media_type="text/plain") if refusal else None

    async def viewer(request: Request) -> Profile | Response:
        """The asking client's view, or the response that refuses it (421, 401)."""
        if refused := misdirected(request):
            return refused
        identity = await edge.identify(request.headers, request.query_params)
        if isinstance(identity, Response):
            return identity
        return identity_profile(runtime.core.clients, runtime.settings, identity)

    async def health(request: Request) -> Response:
        if refused := misdirected(request):
            return refused
        return _json({"status": "ok", "backends_linked": len(backends.links), "sessions": len(sessions)})

    async def metrics(request: Request) -> Response:
        profile = await viewer(request)
        if isinstance(profile, Response):
            return profile
        text = backends.metrics.render(backends.statuses.values(), backends.links, len(sessions), profile.sees_server)
        text += "\n".join(runtime.core.pins.metrics_lines(profile.sees_server)) + "\n"
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def health_backends(request: Request) -> Response:
        profile = await viewer(request)
        if isinstance(profile, Response):
            return profile
        linked = backends.links
        whole = "*" in profile.servers
        gateway = supervisor.gateway_status
        body: dict[str, Any] = {
            "config_error": (supervisor.config_error or None) if whole else None,
            "gateway": msgspec.to_builtins(gateway) if gateway and whole else None,
            "backends": [
                {
                    **msgspec.to_builtins(status),
                    "linked": status.key in linked,
                    "tools": len(linked[status.key].tools) if status.key in linked else 0,
                }
                for status in backends.statuses.values()
                if profile.sees_server(status.key)
            ],
        }
        return _json(body)

    return [
        Route("/health", health),
        Route("/health/backends", health_backends),
        Route("/metrics", metrics),
    ]
