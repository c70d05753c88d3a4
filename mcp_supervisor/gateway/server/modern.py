"""The 2026-07-28 era at the gateway edge: which requests are modern, their envelope, and their replies' shape.

Transport-agnostic and pure: the `/mcp` and stdio front ends share it. The envelope ladder (the `_meta` pair,
the routing headers, the version) runs the SDK's rungs (`mcp.shared.inbound`) in our own code
(envelope_ladder.py): importing the SDK for it cost the gateway ~1 s of CPU and 33 MB of RSS.
This module adds what a gateway needs around it: the decision "is this request modern?", and the reshaping of
replies that the core builds era-neutrally (`resultType`, `serverInfo`, caching hints, the modern error codes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp_supervisor import __version__
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.envelope_ladder import (
    ERROR_CODE_HTTP_STATUS,
    Rejection,
    classify,
    find_duplicated_routing_header,
)
from mcp_supervisor.protocol import error_codes
from mcp_supervisor.protocol.versions import HANDSHAKE_VERSIONS, MODERN_VERSIONS

if TYPE_CHECKING:
    from mcp_supervisor.gateway.server.request_context import RequestContext

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"

SERVER_INFO = {"name": "mcp-supervisor", "version": __version__}
# Results that carry caching hints (complete ones only).
CACHEABLE = frozenset(
    {"server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"}
)
# The only requests that may answer with an InputRequiredResult.
INPUT_REQUIRED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
# Handshake-era methods the 2026-07-28 revision removed: unknown to a modern request.
REMOVED_METHODS = frozenset({"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"})


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a modern request says about its client, in place of a session."""

    protocol_version: str
    capabilities: dict[str, Any]
    client_info: dict[str, Any]
    log_level: str


def http_status(code: int) -> int:
    """The HTTP status of a modern JSON-RPC error (the spec's table; unlisted codes are 200)."""
    return ERROR_CODE_HTTP_STATUS.get(code, 200)


def is_modern(raw: Mapping[str, Any], version_header: str | None, has_session: bool = False) -> bool:
    """Era per request, as the spec decides it. A modern version header makes a request modern. Otherwise
    `initialize` opens a handshake-era session, and a request naming a session belongs to it; the modern
    `_meta` envelope (whatever version it names: the ladder then says which are supported) makes the rest
    modern."""
    if version_header in MODERN_VERSIONS:
        return True  # even `initialize`: under a modern version it is a method this era removed (404)
    if raw.get("method") == "initialize":
        return False
    if has_session and (version_header is None or version_header in HANDSHAKE_VERSIONS):
        return False
    params = raw.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta


def envelope(raw: Mapping[str, Any], headers: Iterable[tuple[str, str]] | None) -> Envelope | Rejection:
    """Validate a modern request's envelope (and, over HTTP, its routing headers)."""
    header_map: dict[str, str] | None = None
    if headers is not None:
        pairs = list(headers)
        duplicated = find_duplicated_routing_header(pairs)
        if duplicated is not None:
            return Rejection(error_codes.HEADER_MISMATCH, f"The {duplicated} header appears more than once.")
        header_map = {name.lower(): value for name, value in pairs}
    verdict = classify(raw, header_map, MODERN_VERSIONS)
    if isinstance(verdict, Rejection):
        return verdict
    capabilities = verdict.client_capabilities
    if not isinstance(capabilities, dict):
        return Rejection(error_codes.INVALID_PARAMS, f"{CLIENT_CAPABILITIES_KEY} must be an object.")
    client_info = verdict.client_info if isinstance(verdict.client_info, dict) else {}
    meta = raw["params"]["_meta"]
    level = meta.get(LOG_LEVEL_KEY)
    if level is not None and not isinstance(level, str):
        return Rejection(error_codes.INVALID_PARAMS, f"{LOG_LEVEL_KEY} must be a string.")
    return Envelope(verdict.protocol_version, capabilities, client_info, level or "")


@dataclass(frozen=True, slots=True)
class CacheHint:
    ttl_ms: int
    scope: str  # "public" | "private"


@dataclass(frozen=True, slots=True)
class Shaped:
    body: bytes
    error_code: int | None  # None for a result


def shape_reply(
    reply: bytes, method: str, hint: CacheHint | None, request_id: jsonrpc.RequestId, uri: object = None
) -> Shaped:
    """Turn the core's era-neutral reply into a 2026-07-28 one, under `request_id`.

    Results get `resultType` (a backend's own is kept: `input_required` passes through), the gateway's
    serverInfo in `_meta`, and on complete results of the cacheable methods the caching hints (a modern
    backend's own hints on `resources/read` are kept). Errors get the modern codes: a resource that does not
    exist is -32602, no longer -32002.
    """
    message = jsonrpc.decode_json(reply)
    error = message.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        if code == error_codes.RESOURCE_NOT_FOUND:
            error = {**error, "code": error_codes.INVALID_PARAMS}
            if uri is not None and "data" not in error:
                error["data"] = {"uri": uri}  # which resource, as the era's ResourceNotFound names it
            code = error_codes.INVALID_PARAMS
        body = jsonrpc.encode_json({"jsonrpc": "2.0", "id": request_id, "error": error})
        return Shaped(body, code if isinstance(code, int) else error_codes.INTERNAL_ERROR)
    result = message.get("result")
    result = dict(result) if isinstance(result, dict) else {}
    result_type = result.get("resultType")
    if not isinstance(result_type, str):
        result_type = result["resultType"] = "complete"
    meta = result.get("_meta")
    result["_meta"] = {**(meta if isinstance(meta, dict) else {}), SERVER_INFO_KEY: SERVER_INFO}
    if result_type == "complete" and method in CACHEABLE and hint is not None:
        keep_backend = method == "resources/read" and isinstance(result.get("ttlMs"), int)
        if not keep_backend:
            result["ttlMs"] = hint.ttl_ms
            result["cacheScope"] = hint.scope
        result.setdefault("cacheScope", hint.scope)
    elif result_type != "complete":
        result.pop("ttlMs", None)
        result.pop("cacheScope", None)
    return Shaped(jsonrpc.encode_json({"jsonrpc": "2.0", "id": request_id, "result": result}), None)


def error_reply(request_id: jsonrpc.RequestId | None, rejection: Rejection) -> bytes:
    return jsonrpc.error_bytes(request_id, rejection.code, rejection.message, rejection.data)


def strip_envelope(params: dict[str, Any]) -> dict[str, Any]:
    """`params` without the per-request envelope keys (for a retry rebuilt from an earlier request)."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return params
    kept = {k: v for k, v in meta.items() if not k.startswith("io.modelcontextprotocol/")}
    return {**params, "_meta": kept} if kept else {k: v for k, v in params.items() if k != "_meta"}


def with_envelope(params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    """`params` carrying the modern envelope that describes a handshake-era session's client (for a
    2026-07-28 backend, which has no session to remember it by)."""
    meta = params.get("_meta")
    envelope_keys: dict[str, Any] = {
        PROTOCOL_VERSION_KEY: MODERN_VERSIONS[0],
        CLIENT_CAPABILITIES_KEY: context.capabilities,
        CLIENT_INFO_KEY: context.client_info or {"name": "mcp-supervisor", "version": __version__},
    }
    if context.log_level:
        envelope_keys[LOG_LEVEL_KEY] = context.log_level
    return {**params, "_meta": {**(meta if isinstance(meta, dict) else {}), **envelope_keys}}
