"""Checks shared by every client-facing HTTP route: DNS-rebinding guard, authentication, body size."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway import jsonrpc
from mcp_supervisor.gateway.auth import authenticate
from mcp_supervisor.gateway.security import RequestGuard


class EdgeChecks:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.guard = RequestGuard(settings)

    def admit(self, request: Request) -> str | Response:
        """The authenticated principal, or the response that refuses the request."""
        refusal = self.guard.check(request.headers)
        if refusal is not None:
            status, reason = refusal
            return PlainTextResponse(reason, status_code=status)
        principal = authenticate(self.settings, request.headers, request.query_params)
        if principal is None:
            return PlainTextResponse(
                "Unauthorized", status_code=401, headers={"WWW-Authenticate": 'Bearer realm="mcp-supervisor"'}
            )
        return principal


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


async def read_body(request: Request, limit: int) -> bytes | Response:
    """The body, or a 413 JSON-RPC error once it passes `limit` bytes (checked while streaming)."""
    declared = request.headers.get("content-length")
    too_large = Response(
        jsonrpc.error_bytes(None, jsonrpc.INVALID_REQUEST, f"Request body larger than {limit} bytes."),
        status_code=413,
        media_type="application/json",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return too_large
        chunks.append(chunk)
    return b"".join(chunks)
