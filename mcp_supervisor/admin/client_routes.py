"""Per-client access: `clients.json` read, replaced (validated by the supervisor's own loader, written
atomically) and removed, then applied by a reload; the gateway announces list_changed to every session."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mcp_supervisor.admin.context import AdminContext
from mcp_supervisor.admin.http import json_response, read_json
from mcp_supervisor.config.clients import CLIENTS_FILE


def client_routes(ctx: AdminContext) -> list[BaseRoute]:
    store = ctx.store

    async def applied(message: str) -> Response:
        result = await ctx.command("reload")
        return json_response({"success": True, "message": f"{message} {result.message}", "reloaded": result.ok})

    async def get_clients(request: Request) -> Response:
        # `present: false` is not "no clients": without the file every principal sees everything.
        document = store.read_clients()
        return json_response({"present": document is not None, "document": document})

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
