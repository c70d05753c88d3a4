"""HTTP routes of the installs (docs/admin.md, "Installs"), relative to the `/admin` mount.

Authentication and CSRF are the admin middleware's job; these handlers only validate and dispatch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_supervisor.admin.http import error
from mcp_supervisor.admin.installs import InstallConflict, InstallError, InstallManager


def install_routes(
    installs: InstallManager, lookup_entry: Callable[[str], Mapping[str, Any] | None]
) -> list[BaseRoute]:
    async def start(request: Request) -> Response:
        key = request.path_params["key"]
        entry = lookup_entry(key)
        if entry is None:
            return error(404, f'There is no server "{key}" in the configuration.')
        try:
            message = installs.start(key, entry)
        except InstallConflict as exc:
            return error(409, str(exc))
        except InstallError as exc:
            return error(400, str(exc))
        return JSONResponse({"success": True, "message": message}, status_code=202)

    async def cancel(request: Request) -> Response:
        key = request.path_params["key"]
        if not await installs.cancel(key):
            return error(409, f'No install of server "{key}" is running.')
        return JSONResponse({"success": True, "message": f'The install of server "{key}" was cancelled.'})

    async def listing(request: Request) -> Response:
        return JSONResponse({"installs": installs.list()})

    return [
        Route("/server/install/{key}", start, methods=["POST"]),
        Route("/server/install/{key}/cancel", cancel, methods=["POST"]),
        Route("/installs", listing, methods=["GET"]),
    ]
