"""What the relay needs of a backend connection: send raw JSON-RPC bytes, receive raw JSON-RPC bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class BackendConnection(Protocol):
    async def send(self, message: bytes) -> None:
        """Send one JSON-RPC message (a JSON object without newlines)."""

    def messages(self) -> AsyncIterator[bytes]:
        """Every message the backend sends, until the connection ends."""

    def negotiated(self, protocol_version: str) -> None:
        """The protocol version spoken from now on ("" before the handshake): HTTP transports stamp it on every
        later request, and a modern one (2026-07-28) the per-request Mcp-Method/Mcp-Name headers too."""

    def accept_tools(self, tools: list[Any]) -> list[Any]:
        """The listed tools this transport can call (Streamable HTTP in 2026-07-28 must drop a tool whose
        `x-mcp-header` annotations are invalid); stdio takes them all."""
