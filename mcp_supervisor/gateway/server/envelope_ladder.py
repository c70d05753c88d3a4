"""The 2026-07-28 envelope ladder, as the SDK's `mcp.shared.inbound` runs it, without importing the SDK.

Importing `mcp.shared.inbound` loads the whole SDK package and its pydantic types (~1 s of CPU, +33 MB of RSS
in the gateway) for a few dict lookups and string comparisons per request. These are the same rungs, in the
same order, with the same codes and messages (tests/unit/test_envelope_ladder.py runs both on the same inputs):

1. `params._meta` is an object carrying the protocol version and the client capabilities (-32602);
2. over HTTP, `MCP-Protocol-Version`, `Mcp-Method` and, for the name-bearing methods, `Mcp-Name` agree with
   the body (-32020);
3. the protocol version is a string (-32602) this gateway serves (-32022, with the supported versions).

Also the duplicated-routing-header check, the error codes' HTTP statuses, and the `Mcp-Param-*` header
validation (x_mcp_headers.py).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcp_supervisor.protocol import error_codes

PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_META_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_META_KEY = "io.modelcontextprotocol/clientInfo"

MCP_PROTOCOL_VERSION_HEADER = "mcp-protocol-version"
MCP_METHOD_HEADER = "mcp-method"
MCP_NAME_HEADER = "mcp-name"
_ROUTING_HEADER_NAMES = frozenset({MCP_PROTOCOL_VERSION_HEADER, MCP_METHOD_HEADER, MCP_NAME_HEADER})
# Method → the params key mirrored in `Mcp-Name`.
NAME_BEARING_METHODS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

# The spec's table (unlisted codes, INTERNAL_ERROR among them, are 200).
ERROR_CODE_HTTP_STATUS = {
    error_codes.PARSE_ERROR: 400,
    error_codes.INVALID_REQUEST: 400,
    error_codes.INVALID_PARAMS: 400,
    error_codes.HEADER_MISMATCH: 400,
    error_codes.MISSING_REQUIRED_CLIENT_CAPABILITY: 400,
    error_codes.UNSUPPORTED_PROTOCOL_VERSION: 400,
    error_codes.METHOD_NOT_FOUND: 404,
}

_B64_SENTINEL = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")


@dataclass(frozen=True, slots=True)
class Route:
    """Every rung passed: the envelope's values, unchecked in shape (client_info is None when absent)."""

    protocol_version: str
    client_info: Any
    client_capabilities: Any


@dataclass(frozen=True, slots=True)
class Rejection:
    """A modern request refused before it reaches anything: the JSON-RPC error, and its HTTP status."""

    code: int
    message: str
    data: Any = None

    @property
    def http_status(self) -> int:
        """The spec's table (unlisted codes are 200)."""
        return ERROR_CODE_HTTP_STATUS.get(self.code, 200)


def decode_header_value(value: str | None) -> str | None:
    """A header value, or the UTF-8 text of its `=?base64?...?=` sentinel; None when the sentinel is malformed
    (not canonical base64, not UTF-8), so a corrupt header never matches a body value."""
    if value is None:
        return None
    match = _B64_SENTINEL.fullmatch(value)
    if match is None:
        return value
    payload = match.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
    except binascii.Error:
        return None
    if base64.b64encode(decoded).decode("ascii") != payload:
        return None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None


def find_duplicated_routing_header(headers: Iterable[tuple[str, str]]) -> str | None:
    """A routing header sent more than once (first-copy and last-copy readers would disagree), or None."""
    seen: set[str] = set()
    for name, _ in headers:
        key = name.lower()
        if key in _ROUTING_HEADER_NAMES:
            if key in seen:
                return key
            seen.add(key)
    return None


def _headers_rung(body: Mapping[str, Any], headers: Mapping[str, str], version: Any) -> Rejection | None:
    version_header = headers.get(MCP_PROTOCOL_VERSION_HEADER)
    if version_header is None or version_header != version:
        return Rejection(
            error_codes.HEADER_MISMATCH,
            f"{MCP_PROTOCOL_VERSION_HEADER} header does not match the request envelope's protocol version",
        )
    method = body.get("method")
    if headers.get(MCP_METHOD_HEADER) != method:
        return Rejection(
            error_codes.HEADER_MISMATCH, f"{MCP_METHOD_HEADER} header does not match the request body's method"
        )
    name_key = NAME_BEARING_METHODS.get(method) if isinstance(method, str) else None
    if name_key is not None:
        body_value = body["params"].get(name_key)
        if body_value is not None and decode_header_value(headers.get(MCP_NAME_HEADER)) != body_value:
            return Rejection(
                error_codes.HEADER_MISMATCH,
                f"{MCP_NAME_HEADER} header does not match the request body's {name_key!r} parameter",
            )
    return None


def classify(body: Mapping[str, Any], headers: Mapping[str, str] | None, supported: Sequence[str]) -> Route | Rejection:
    """Run the ladder over a decoded request; `headers` (lower-case names) is None off HTTP."""
    params = body.get("params")
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    if not isinstance(meta, Mapping):
        return Rejection(
            error_codes.INVALID_PARAMS,
            "params._meta must be an object carrying the required "
            f"{PROTOCOL_VERSION_META_KEY!r} and {CLIENT_CAPABILITIES_META_KEY!r} envelope keys",
        )
    missing = [key for key in (PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY) if key not in meta]
    if missing:
        return Rejection(
            error_codes.INVALID_PARAMS,
            f"params._meta is missing the required envelope key(s): {', '.join(missing)}",
        )
    version = meta[PROTOCOL_VERSION_META_KEY]
    if headers is not None:
        mismatch = _headers_rung(body, headers, version)
        if mismatch is not None:
            return mismatch
    if not isinstance(version, str):
        return Rejection(error_codes.INVALID_PARAMS, "the protocol-version envelope value must be a string")
    if version not in supported:
        return Rejection(
            error_codes.UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
            {"supported": list(supported), "requested": version},
        )
    return Route(version, meta.get(CLIENT_INFO_META_KEY), meta[CLIENT_CAPABILITIES_META_KEY])
