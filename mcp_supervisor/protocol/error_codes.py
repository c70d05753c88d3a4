"""JSON-RPC and MCP error codes: every code the gateway, the workers and the supervisor send or look for.

Names follow the official SDK (`mcp_types.jsonrpc`) where it names the code; the others are ours, in the
implementation-defined band -32000..-32019 (the spec reserves -32020..-32099 for itself).
"""

from __future__ import annotations

from typing import Final

# Standard JSON-RPC 2.0 codes.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

# Implementation-defined codes (-32000..-32019). The SDK uses -32000 for its client-side CONNECTION_CLOSED,
# which never reaches the wire; on our wire it answers a request for a session the gateway does not know.
SESSION_NOT_FOUND: Final = -32000
REQUEST_TIMEOUT: Final = -32001
BACKEND_UNAVAILABLE: Final = -32003
REQUEST_CANCELLED: Final = -32004
# A bound of the gateway's (what one credential, or everyone, may hold) is reached; retry later.
OVER_BUDGET: Final = -32005

# MCP codes. -32002 is the handshake era's "resource not found"; the 2026-07-28 era retired it (a resource that
# does not exist is INVALID_PARAMS there), and the gateway reshapes it on modern replies.
RESOURCE_NOT_FOUND: Final = -32002
# The 2026-07-28 era's codes.
HEADER_MISMATCH: Final = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY: Final = -32021
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022
