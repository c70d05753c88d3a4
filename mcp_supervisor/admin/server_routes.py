"""Servers: `mcp_server.json` CRUD (raw, seed-compatible, and per entry), reload, and per-backend control."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mcp_supervisor.admin.config_store import check_server_key
from mcp_supervisor.admin.context import AdminContext
from mcp_supervisor.admin.health_view import backend_health
from mcp_supervisor.admin.http import BadRequest, error, json_response, read_json, read_object
from mcp_supervisor.config.loader import parse_servers
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.protocol.messages import CommandResult

BACKEND_ACTIONS = ("restart", "stop", "start")


def _result(result: CommandResult) -> Response:
    if result.ok:
        return json_response({"success": True, "message": result.message})
    return json_response({"success": False, "message": result.message, "error": result.message}, 409)


def running_servers(raw: bytes) -> dict[str, Any]:
    try:
        document = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        return {}
    servers = document.get("mcpServers") if isinstance(document, dict) else None
    return servers if isinstance(servers, dict) else {}


def _server_list(ctx: AdminContext) -> Response:
    """The entries on disk; when that file is broken, the running config, with the file's error (an empty
    table would say no servers run while every backend keeps running)."""
    store, statuses = ctx.store, ctx.gateway.statuses()
    config_error: str | None = None
    try:
        document = store.read_servers()
        if store.servers_path.exists():  # readable JSON, but would it apply? (the supervisor's own check)
            parse_servers(store.servers_path.read_bytes(), str(store.servers_path))
        servers = document.get("mcpServers", {})
    except (ConfigError, OSError) as exc:
        config_error = str(exc)
        servers = running_servers(ctx.gateway.running_servers())
    return json_response(
        {
            "configError": config_error,
            "showing": "running" if config_error else "file",
            "servers": [
                {
                    "key": key,
                    "entry": entry,
                    "status": backend_health(ctx.gateway.linked(), statuses[key]) if key in statuses else None,
                }
                for key, entry in servers.items()
            ],
        }
    )


def server_routes(ctx: AdminContext) -> list[BaseRoute]:
    store = ctx.store

    async def applied(message: str) -> Response:
        """The file is written; the supervisor's reload applies it (its watcher would too, a moment later)."""
        result = await ctx.command("reload")
        return json_response({"success": True, "message": f"{message} {result.message}", "reloaded": result.ok})

    async def get_config(request: Request) -> Response:
        return json_response(store.read_servers())

    async def post_config(request: Request) -> Response:
        store.write_servers(await read_json(request))
        return await applied("mcp_server.json saved.")

    async def list_servers(request: Request) -> Response:
        return _server_list(ctx)

    async def create_server(request: Request) -> Response:
        body = await read_object(request)
        key = body.get("key")
        if not isinstance(key, str):
            raise BadRequest('The body needs a "key" string and an "entry" object.')
        store.put_server(key, body.get("entry"), create=True)
        return await applied(f'Server "{key}" added.')

    async def replace_server(request: Request) -> Response:
        key = request.path_params["key"]
        body = await read_object(request)
        store.put_server(key, body.get("entry"), create=False)
        return await applied(f'Server "{key}" saved.')

    async def delete_server(request: Request) -> Response:
        key = request.path_params["key"]
        store.delete_server(key)
        return await applied(f'Server "{key}" deleted.')

    async def reload(request: Request) -> Response:
        return _result(await ctx.command("reload"))

    async def backend_action(request: Request) -> Response:
        key, action = request.path_params["key"], request.path_params["action"]
        check_server_key(key)
        if action not in BACKEND_ACTIONS:
            return error(404, f"Unknown action {action!r}; use one of {', '.join(BACKEND_ACTIONS)}.")
        if store.server_entry(key) is None:
            return error(404, f'No server "{key}" in mcp_server.json.')
        return _result(await ctx.command(action, key))

    return [
        Route("/config", get_config, methods=["GET"]),
        Route("/config", post_config, methods=["POST"]),
        Route("/servers", list_servers, methods=["GET"]),
        Route("/servers", create_server, methods=["POST"]),
        Route("/servers/{key}", replace_server, methods=["PUT"]),
        Route("/servers/{key}", delete_server, methods=["DELETE"]),
        Route("/servers/{key}/{action}", backend_action, methods=["POST"]),
        Route("/server/reload", reload, methods=["POST"]),
    ]
