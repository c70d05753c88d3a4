"""The 2026-07-28 per-request `_meta` envelope on the worker → backend hop.

A modern backend needs `io.modelcontextprotocol/protocolVersion` and `…/clientCapabilities` in the `_meta` of
every request (missing: -32602), and `…/clientInfo` SHOULD be there. A handshake-era backend must not see them
at all: the SDK's servers answer a request carrying them with -32600 ("this connection serves the handshake
protocol era"). The gateway may already put the envelope in a request's `params._meta` (the real client's
capabilities and log level); the worker completes it toward a modern backend and strips it toward a legacy one.

Only the envelope keys are stripped: other `io.modelcontextprotocol/*` keys are not ours to drop (the 2025-11-25
tasks extension's `io.modelcontextprotocol/related-task` is a handshake-era key).

Cost: the legacy path (every request of every legacy backend) is one `in` scan of the request's bytes; a
request is decoded only when it names the prefix. Toward a modern backend every request is decoded and
re-encoded (msgspec: microseconds for a tool call), since every one needs the envelope.
"""

from __future__ import annotations

from typing import Any

import msgspec

from mcp_supervisor import __version__

PREFIX = b"io.modelcontextprotocol/"
PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL = "io.modelcontextprotocol/logLevel"
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
SERVER_INFO = "io.modelcontextprotocol/serverInfo"
ENVELOPE_KEYS = frozenset({PROTOCOL_VERSION, CLIENT_CAPABILITIES, CLIENT_INFO, LOG_LEVEL})

CLIENT_INFO_VALUE: dict[str, str] = {"name": "mcp-supervisor", "version": __version__}

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def envelope(protocol_version: str, log_level: str | None = None) -> dict[str, Any]:
    """The `_meta` of the worker's own requests: it speaks for itself, with no client capabilities."""
    meta: dict[str, Any] = {PROTOCOL_VERSION: protocol_version, CLIENT_CAPABILITIES: {}, CLIENT_INFO: CLIENT_INFO_VALUE}
    if log_level:
        meta[LOG_LEVEL] = log_level
    return meta


def complete(request: dict[str, Any], protocol_version: str, log_level: str | None = None) -> dict[str, Any]:
    """Give a decoded request (changed in place, and returned) the complete envelope.

    The protocol version is always the one this hop negotiated: the backend's version is the worker's
    choice, whatever the gateway's client spoke. Capabilities, client info and log level the gateway passed
    on are kept; missing ones get defaults: no capabilities (the worker cannot promise what it does not know
    the client can do), mcp-supervisor's identity, and the log level set with `logging/setLevel` (if any).
    """
    params = request.get("params")
    if not isinstance(params, dict):
        params = request["params"] = {}
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        meta = params["_meta"] = {}
    meta[PROTOCOL_VERSION] = protocol_version
    if not isinstance(meta.get(CLIENT_CAPABILITIES), dict):
        meta[CLIENT_CAPABILITIES] = {}
    if CLIENT_INFO not in meta:
        meta[CLIENT_INFO] = CLIENT_INFO_VALUE
    if log_level and LOG_LEVEL not in meta:
        meta[LOG_LEVEL] = log_level
    return request


def strip(body: bytes) -> bytes:
    """The message without the envelope keys in `params._meta` (an emptied `_meta` goes too); the very same
    bytes when there is nothing to strip, which one scan tells in the usual case."""
    if PREFIX not in body:
        return body
    try:
        message = _decode(body)
    except (msgspec.DecodeError, RecursionError):
        return body  # not ours to judge: the backend answers it as it would have
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or ENVELOPE_KEYS.isdisjoint(meta):
        return body
    assert isinstance(params, dict)
    kept = {key: value for key, value in meta.items() if key not in ENVELOPE_KEYS}
    if kept:
        params["_meta"] = kept
    else:
        del params["_meta"]
    return _encode(message)


def untag(message: dict[str, Any]) -> Any:
    """Take the `subscriptionId` tag off a listen-stream notification (changed in place); return the tag."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or SUBSCRIPTION_ID not in meta:
        return None
    assert isinstance(params, dict)
    tag = meta.pop(SUBSCRIPTION_ID)
    if not meta:
        del params["_meta"]
    return tag
