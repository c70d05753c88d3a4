"""JSON-RPC at the gateway edge: classifying client messages and building replies as bytes.

Replies from backends are spliced, not re-encoded: the worker sends the raw JSON of `result`/`error` and the
gateway wraps it with the client's own id, so a payload is decoded exactly once on its way (in the worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from mcp_supervisor.errors import SupervisorError
from mcp_supervisor.protocol.error_codes import INVALID_REQUEST, PARSE_ERROR

RequestId = int | str

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
# A client's message nested deeper than this is refused (-32700) before anything walks it. msgspec decodes
# recursively and stops at the interpreter's limit, which is ~1000 levels on CPython 3.11 and ~5000 on 3.12 (its C
# recursion limit): the gateway's own limit must not depend on which one it runs on. No MCP message needs a
# tenth of it; Python SDK backends refuse far less deep input themselves (pydantic's parser).
MAX_DEPTH = 512
_TOO_DEEP = f"Parse error: the JSON is nested too deeply (at most {MAX_DEPTH} levels)."


@dataclass(frozen=True, slots=True)
class Incoming:
    """One client message, classified. `id` is None for notifications; `method` is None for responses."""

    raw: dict[str, Any]
    id: RequestId | None
    method: str | None

    @property
    def is_request(self) -> bool:
        return self.method is not None and self.id is not None

    @property
    def is_notification(self) -> bool:
        return self.method is not None and self.id is None

    @property
    def params(self) -> dict[str, Any]:
        params = self.raw.get("params")
        return params if isinstance(params, dict) else {}


class JsonRpcFault(SupervisorError):
    """A client message that gets an error reply (code, message) instead of being processed."""

    def __init__(self, code: int, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def to_bytes(self) -> bytes:
        return error_bytes(self.request_id, self.code, self.message)


def parse_body(body: bytes) -> Any:
    try:
        document = _decode(body)
    except msgspec.DecodeError as exc:
        raise JsonRpcFault(PARSE_ERROR, f"Parse error: the body is not valid JSON ({exc}).") from None
    except RecursionError:
        raise JsonRpcFault(PARSE_ERROR, _TOO_DEEP) from None
    # Depth never exceeds the count of opening brackets: only a body with more of them than MAX_DEPTH is walked.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and nested_deeper_than(document, MAX_DEPTH):
        raise JsonRpcFault(PARSE_ERROR, _TOO_DEEP)
    return document


def nested_deeper_than(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels in `document` (iterative: no recursion limit)."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                pending.append((child, depth + 1))
    return False


def classify(document: Any) -> Incoming:
    """Validate the JSON-RPC 2.0 envelope of one message."""
    if not isinstance(document, dict):
        raise JsonRpcFault(INVALID_REQUEST, "Invalid request: a JSON-RPC message must be a JSON object.")
    raw_id = document.get("id")
    request_id: RequestId | None = None
    if "id" in document and raw_id is None and "method" in document:
        raise JsonRpcFault(INVALID_REQUEST, "Invalid request: MCP request ids must not be null.")
    if raw_id is not None:
        if isinstance(raw_id, bool) or not isinstance(raw_id, (int, str)):
            raise JsonRpcFault(INVALID_REQUEST, "Invalid request: the id must be a string or an integer.")
        request_id = raw_id
    if document.get("jsonrpc") != "2.0":
        raise JsonRpcFault(INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0".', request_id)
    method = document.get("method")
    if method is not None:
        if not isinstance(method, str) or not method:
            raise JsonRpcFault(INVALID_REQUEST, "Invalid request: the method must be a non-empty string.", request_id)
        params = document.get("params")
        if params is not None and not isinstance(params, dict):
            raise JsonRpcFault(INVALID_REQUEST, "Invalid request: params must be an object.", request_id)
        return Incoming(document, request_id, method)
    if request_id is not None and ("result" in document or "error" in document):
        return Incoming(document, request_id, None)
    raise JsonRpcFault(
        INVALID_REQUEST, "Invalid request: a message needs a method, or an id with a result.", request_id
    )


def parse_message(body: bytes) -> Incoming:
    """One JSON-RPC message from a request body: JSON, not a batch (gone since 2025-06-18), a valid envelope."""
    document = parse_body(body)
    if isinstance(document, list):
        raise JsonRpcFault(INVALID_REQUEST, "Invalid request: JSON-RPC batches are not supported.")
    return classify(document)


def result_bytes(request_id: RequestId, result: Any) -> bytes:
    return _encode({"jsonrpc": "2.0", "id": request_id, "result": result})


def spliced_result(request_id: RequestId, raw_result: bytes) -> bytes:
    # One join, one copy: `+` copied a large result (a 1000-tool list is 131 KB) once per operator.
    return b"".join((b'{"jsonrpc":"2.0","id":', _encode(request_id), b',"result":', raw_result, b"}"))


def spliced_error(request_id: RequestId, raw_error: bytes) -> bytes:
    return b"".join((b'{"jsonrpc":"2.0","id":', _encode(request_id), b',"error":', raw_error, b"}"))


def error_bytes(request_id: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return _encode({"jsonrpc": "2.0", "id": request_id, "error": error})


def encode_json(value: Any) -> bytes:
    return _encode(value)


def decode_json(value: bytes) -> Any:
    return _decode(value)
