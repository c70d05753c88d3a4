"""JSON in and out for the admin routes: one error shape (`{"error": sentence}`), bounded bodies."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from mcp_supervisor.errors import SupervisorError

MAX_BODY_BYTES = 1024 * 1024


class BadRequest(SupervisorError):
    """The request body is missing, too large or not the JSON expected; the message says which."""


def json_response(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json", headers=headers)


def sse_frame(event: str, data: Any) -> bytes:
    """One server-sent event with a JSON payload."""
    return b"event: " + event.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


def ok(message: str = "", status: int = 200, **data: Any) -> Response:
    return json_response({"success": True, "message": message, **data}, status)


async def _read_body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    return body


async def read_form(request: Request) -> dict[str, str]:
    """A URL-encoded form body (the login page's plain form post); the last value of a repeated field wins."""
    fields = parse_qs((await _read_body(request)).decode(errors="replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


async def read_json(request: Request) -> Any:
    body = await _read_body(request)
    if not body.strip():
        raise BadRequest("The request needs a JSON body.")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON ({exc}).") from None


async def read_object(request: Request) -> dict[str, Any]:
    value = await read_json(request)
    if not isinstance(value, dict):
        raise BadRequest("The request body must be a JSON object.")
    return value
