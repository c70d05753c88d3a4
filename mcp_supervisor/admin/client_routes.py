"""Per-client access: `clients.json` read, replaced (validated by the supervisor's own loader, written
atomically) and removed, then applied by a reload; the gateway announces list_changed to every session.

The read also says what each client would see of the live catalog (`views`), computed with the gateway's own
access rule, so the admin page shows the effect of a profile rather than only its patterns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mcp_supervisor.admin.context import AdminContext
from mcp_supervisor.admin.http import json_response, read_json
from mcp_supervisor.config.clients import CLIENTS_FILE, Profile, parse_clients
from mcp_supervisor.errors import ConfigError


def client_views(
    document: dict[str, Any], visible: Callable[[Profile, str], list[dict[str, Any]]]
) -> dict[str, dict[str, list[str]]]:
    """Client name → the exposed tool and prompt names and the resource URIs its profile lets it see, `visible`
    being the gateway's access rule over its live catalog."""
    clients = parse_clients(document)
    profiles = [entry.profile for entry in clients.entries]
    if clients.fallback is not None:
        profiles.append(clients.fallback)
    return {
        profile.name: {
            "tools": [str(item.get("name")) for item in visible(profile, "tools")],
            "prompts": [str(item.get("name")) for item in visible(profile, "prompts")],
            "resources": [str(item.get("uri")) for item in visible(profile, "resources")],
        }
        for profile in profiles
    }


def client_routes(ctx: AdminContext) -> list[BaseRoute]:
    store = ctx.store

    async def applied(message: str) -> Response:
        result = await ctx.command("reload")
        return json_response({"success": True, "message": f"{message} {result.message}", "reloaded": result.ok})

    def server_keys() -> list[str]:
        try:
            servers = store.read_servers().get("mcpServers")
        except ConfigError:
            servers = None
        keys = set(servers) if isinstance(servers, dict) else set()
        return sorted(keys | set(ctx.gateway.statuses()))

    async def get_clients(request: Request) -> Response:
        # `present: false` is not "no clients": without the file every principal sees everything.
        document = store.read_clients()
        views: dict[str, dict[str, list[str]]] = {}
        file_error: str | None = None
        if document is not None:
            try:
                views = client_views(document, ctx.gateway.visible)
            except ConfigError as exc:
                file_error = str(exc)  # on disk but not applied: the running file stays (the page says so)
        return json_response(
            {
                "present": document is not None,
                "document": document,
                "views": views,
                "fileError": file_error,
                "servers": server_keys(),
            }
        )

    async def post_clients(request: Request) -> Response:
        store.write_clients(await read_json(request))
        return await applied(f"{CLIENTS_FILE} saved.")

    async def delete_clients(request: Request) -> Response:
        store.delete_clients()
        return await applied(f"{CLIENTS_FILE} removed: everyone sees everything.")

    return [
        Route("/clients", get_clients, methods=["GET"]),
        Route("/clients", post_clients, methods=["POST"]),
        Route("/clients", delete_clients, methods=["DELETE"]),
    ]
