"""Checks shared by every client-facing HTTP route: DNS-rebinding guard, authentication, body size."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive

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
        return self.admit_raw(request.headers, request.query_params)

    def admit_raw(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | Response:
        """`admit` for raw ASGI handlers, which have no Request object."""
        refusal = self.guard.check(headers)
        if refusal is not None:
            status, reason = refusal
            return PlainTextResponse(reason, status_code=status)
        principal = authenticate(self.settings, headers, query)
        if principal is None:
            return PlainTextResponse(
                "Unauthorized", status_code=401, headers={"WWW-Authenticate": 'Bearer realm="mcp-supervisor"'}
            )
        return principal


def is_json(request: Request) -> bool:
    return is_json_type(request.headers.get("content-type", ""))


def is_json_type(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


def _too_large(limit: int) -> Response:
    return Response(
        jsonrpc.error_bytes(None, jsonrpc.INVALID_REQUEST, f"Request body larger than {limit} bytes."),
        status_code=413,
        media_type="application/json",
    )


async def read_body(request: Request, limit: int) -> bytes | Response:
    """The body, or a 413 JSON-RPC error once it passes `limit` bytes (checked while streaming)."""
    return await read_body_raw(request.receive, request.headers.get("content-length"), limit)


async def read_body_raw(receive: Receive, declared: str | None, limit: int) -> bytes | Response:
    """`read_body` for raw ASGI handlers, which have no Request object. A client that disconnected before
    its body was read gets a 400 (nobody will read it)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return PlainTextResponse("The client disconnected.", status_code=400)  # http.disconnect
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if not more and not chunks:
            return chunk if len(chunk) <= limit else _too_large(limit)  # the usual case: one message
        size += len(chunk)
        if size > limit:
            return _too_large(limit)
        chunks.append(chunk)
        if not more:
            return b"".join(chunks)
