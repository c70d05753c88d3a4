"""Tools: every discovered tool with its override, and `tool_config.json` writes checked against the catalog."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mcp_supervisor.admin.context import AdminContext
from mcp_supervisor.admin.http import error, json_response, read_json, read_object
from mcp_supervisor.config.loader import TOOLS_FILE, parse_tool_config
from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.tool_names import TOOL_NAME_RULE, display_name_effect, is_valid_tool_name
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.gateway.admin_view import LinkedBackend, qualified_name


def tool_rows(links: Mapping[str, LinkedBackend], tool_config: ToolConfig, separator: str) -> list[dict[str, Any]]:
    """One row per tool of every linked backend, disabled ones included, with the name clients see."""
    rows = []
    for key in sorted(links):
        link = links[key]
        prefix = f"{key}{separator}" if link.name_prefix is None else link.name_prefix
        for tool in link.tools:
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                continue  # the catalog does not expose it either
            config_key = qualified_name(key, separator, name)
            override = tool_config.override_for(config_key)
            exposed = f"{prefix}{name}"
            title = tool.get("title")
            if override is not None and override.exposed_name:
                # As the catalog does it: a valid name renames, anything else is the tool's title.
                if display_name_effect(override.exposed_name) == "rename":
                    exposed = override.exposed_name
                else:
                    title = override.exposed_name
            rows.append(
                {
                    "name": name,
                    "serverName": key,
                    "description": tool.get("description") or "",
                    "configKey": config_key,
                    "exposedName": exposed,
                    "title": title if isinstance(title, str) else None,
                    "enabled": override.enabled if override is not None else True,
                    "overrideName": override.exposed_name if override is not None else None,
                    "overrideDescription": override.exposed_description if override is not None else None,
                }
            )
    return rows


def check_exposed_names(rows: list[dict[str, Any]], only: str | None = None) -> None:
    """What clients would see must be valid tool names, each used once. With `only`, just the problems that
    involve that tool (a clash elsewhere must not block fixing this one).

    A clash names first the tool that takes a name already in use, then the tool that has it: the tool being
    edited (`only`), else the one renamed by an override, else the later one in the list."""
    holders: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["enabled"]:
            holders.setdefault(row["exposedName"], []).append(row)
    for name, named in holders.items():
        keys = [row["configKey"] for row in named]
        if only is not None and only not in keys:
            continue
        if not is_valid_tool_name(name):
            offender = only if only is not None else keys[0]
            raise ConfigError(f'Tool "{offender}": exposed name {name!r} is not {TOOL_NAME_RULE}.')
        if len(named) > 1:
            taker = _taker_of(named, only)
            owner = next(row for row in named if row is not taker)
            raise ConfigError(
                f'Tool "{taker["configKey"]}": exposed name {name!r} is already the name of "{owner["configKey"]}".'
            )


def _taker_of(named: list[dict[str, Any]], only: str | None) -> dict[str, Any]:
    """Of the rows sharing one exposed name, the one that takes it from another."""
    for row in named:
        if row["configKey"] == only:
            return row
    for row in named:
        if row.get("overrideName") == row["exposedName"]:
            return row
    return named[1]


def tool_routes(ctx: AdminContext) -> list[BaseRoute]:
    store, gateway, separator = ctx.store, ctx.gateway, ctx.settings.separator

    def rows(tool_config: ToolConfig) -> list[dict[str, Any]]:
        return tool_rows(gateway.linked(), tool_config, separator)

    async def save(document: object, only: str | None = None) -> Response:
        """Validate against the live catalog, write, apply here at once, and have the supervisor re-read it
        (its broadcast reaches every gateway; this one already has it)."""
        tool_config = parse_tool_config(msgspec.json.encode(document), TOOLS_FILE)
        check_exposed_names(rows(tool_config), only)
        store.write_tools(document)
        gateway.set_tool_config(tool_config)
        result = await ctx.command("reload")
        return json_response({"success": True, "message": f"{TOOLS_FILE} saved. {result.message}"})

    async def list_tools(request: Request) -> Response:
        return json_response({"tools": rows(gateway.tool_config())})

    async def get_config(request: Request) -> Response:
        return json_response(store.read_tools())

    async def post_config(request: Request) -> Response:
        return await save(await read_json(request))

    async def patch_tool(request: Request) -> Response:
        config_key = request.path_params["config_key"]
        if not any(row["configKey"] == config_key for row in rows(gateway.tool_config())):
            return error(404, f'No running backend lists a tool "{config_key}".')
        changes = await read_object(request)
        return await save(store.tools_with_override(config_key, changes), only=config_key)

    return [
        Route("/tools/list", list_tools, methods=["GET"]),
        Route("/tools/config", get_config, methods=["GET"]),
        Route("/tools/config", post_config, methods=["POST"]),
        Route("/tools/{config_key}", patch_tool, methods=["PATCH"]),
    ]
