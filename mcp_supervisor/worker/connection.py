"""What the relay needs of a backend connection: send raw JSON-RPC bytes, receive raw JSON-RPC bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class BackendConnection(Protocol):
    async def send(self, message: bytes) -> None:
        """Send one JSON-RPC message (a JSON object without newlines)."""

    def messages(self) -> AsyncIterator[bytes]:
        """Every message the backend sends, until the connection ends."""

    def negotiated(self, protocol_version: str) -> None:
        """The handshake chose this protocol version (HTTP transports stamp it on every later request)."""
