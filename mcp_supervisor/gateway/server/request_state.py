"""Sealing the `requestState` the gateway hands 2026-07-28 clients (multi-round-trip requests).

The client echoes the state on its retry, so it is attacker-controlled input: it is encrypted and
authenticated (AES-256-GCM, aead.py: the SDK's codec's format), and what it carries is bound to the
principal that received it, to the request it answers (method and tool / prompt / URI), and to an expiry.
Two kinds travel in it:
- `held`: a handshake-era backend's server→client request the gateway holds for the retry (a handle into this
  gateway process's table, so that retry must reach the same replica);
- `backend`: a 2026-07-28 backend's own requestState, wrapped, because the backend sees every client of the
  gateway as one and cannot bind its state to the principal itself. Any replica sharing REQUEST_STATE_SECRET
  can unwrap it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp_supervisor.errors import SupervisorError
from mcp_supervisor.gateway.server import jsonrpc

if TYPE_CHECKING:
    from mcp_supervisor.gateway.server.aead import AeadCodec

PREFIX = "mcps1."


class StateRejected(SupervisorError):
    """The state fails verification; the reason is for the log, the client gets a plain -32602."""


@dataclass(frozen=True, slots=True)
class Binding:
    principal: str
    method: str
    name: str


class RequestStateSealer:
    def __init__(self, secret: str, ttl_s: float) -> None:
        self._secret = secret or secrets.token_hex(32)
        self._loaded: AeadCodec | None = None
        self.ttl_s = ttl_s

    @property
    def _codec(self) -> AeadCodec:
        """Made on first use: `cryptography` is not loaded by a gateway that never seals a state."""
        if self._loaded is None:
            from mcp_supervisor.gateway.server.aead import AeadCodec

            self._loaded = AeadCodec(self._secret)
        return self._loaded

    def seal(self, binding: Binding, kind: str, value: str, backend: str = "") -> str:
        payload = {
            "p": binding.principal,
            "m": binding.method,
            "n": binding.name,
            "x": time.time() + self.ttl_s,
            "k": kind,
            "v": value,
            "b": backend,
        }
        return PREFIX + self._codec.seal(jsonrpc.encode_json(payload))

    def unseal(self, token: object, binding: Binding) -> tuple[str, str, str]:
        """(kind, value, backend) of a state this gateway sealed for exactly this principal and request."""
        if not isinstance(token, str) or not token.startswith(PREFIX):
            raise StateRejected("not a state of this gateway")
        try:
            payload: Any = jsonrpc.decode_json(self._codec.unseal(token[len(PREFIX) :]))
        except ValueError as exc:  # aead.InvalidToken is one
            raise StateRejected(f"it does not verify ({exc})") from None
        if not isinstance(payload, dict):
            raise StateRejected("malformed")
        if payload.get("p") != binding.principal:
            raise StateRejected("it was issued to another principal")
        if payload.get("m") != binding.method or payload.get("n") != binding.name:
            raise StateRejected("it was issued for another request")
        expiry = payload.get("x")
        if not isinstance(expiry, (int, float)) or expiry < time.time():
            raise StateRejected("it expired")
        return str(payload.get("k")), str(payload.get("v")), str(payload.get("b"))
