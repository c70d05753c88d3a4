"""Tool pinning in the admin: the held tools and prompts with their diffs, and approve / reject.

The admin runs in the gateway process, which owns the pin store: a decision is applied here directly (the
same `Pinning.decide` the CLI's requests reach), and clients get list_changed when it shows.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_supervisor.admin.context import AdminContext
from mcp_supervisor.admin.http import error, json_response, read_object
from mcp_supervisor.admin.session_routes import STATIC_DIR
from mcp_supervisor.gateway.admin_view import PinRequest, diff_lines, row


def pin_routes(ctx: AdminContext) -> list[BaseRoute]:
    pins = ctx.gateway.pins

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "pins.html", headers={"Cache-Control": "no-store"})

    async def list_pins(request: Request) -> Response:
        entries = sorted(pins.store.entries.values(), key=lambda e: (e.kind, e.exposed)) if pins.store else []
        rows = [{**row(entry), "diff": "".join(diff_lines(entry)) if entry.pending else ""} for entry in entries]
        return json_response({"mode": pins.mode, "entries": rows})

    async def decide(request: Request) -> Response:
        body = await read_object(request)
        name, backend = body.get("name"), body.get("backend")
        if not (isinstance(name, str) and name) and not (isinstance(backend, str) and backend):
            return error(400, 'Give the exposed "name" of a tool or prompt, or a "backend" key.')
        action = request.path_params["action"]
        if action not in ("approve", "reject"):
            return error(404, f"No pin action {action!r}: approve or reject.")
        named = name if isinstance(name, str) else ""
        outcome = pins.decide(
            PinRequest(action=action, name=named, backend=backend if isinstance(backend, str) else "")
        )
        if not outcome.startswith(("Approved", "Rejected")):
            return error(404 if pins.store else 409, outcome)
        return json_response({"success": True, "message": outcome})

    return [
        Route("/pins", page, methods=["GET"]),
        Route("/pins/list", list_pins, methods=["GET"]),
        Route("/pins/{action:str}", decide, methods=["POST"]),
    ]
