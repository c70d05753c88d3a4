"""The MCP protocol versions this product speaks, at both edges (clients → gateway, worker → backend).

Our own constants rather than `mcp_types.version`: importing the SDK's types costs the gateway and the
stdio workers ~0.5 s of start-up and their memory, for four strings.
"""

from __future__ import annotations

import enum

# Reachable through the initialize handshake, newest first.
HANDSHAKE_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
# The stateless era (2026-07-28 on): no handshake, the `_meta` envelope on every request; newest first.
MODERN_VERSIONS = ("2026-07-28",)
# Every released version, for validating the MCP-Protocol-Version header.
KNOWN_PROTOCOL_VERSIONS = (*HANDSHAKE_VERSIONS, *MODERN_VERSIONS)


class Era(enum.StrEnum):
    """The protocol era spoken on a connection: the initialize handshake (2024-11-05 to 2025-11-25), or the
    stateless one (2026-07-28 on). A member is its string: the wire and `status` spell it as before."""

    LEGACY = "legacy"
    MODERN = "modern"
