"""Sealed session ids: a handshake-era `/mcp` session's state travels in its `Mcp-Session-Id`, so a restarted
gateway, or another replica, serves the session's next request.

The id is `<handle>.<token>`: `handle` is 16 random URL-safe characters (the session's name in logs and in the
revocation set), `token` the state sealed with AES-256-GCM (gateway/server/aead.py, as for 2026-07-28
requestState). What is sealed: the principal the session is bound to, the
negotiated protocol version, the client's capabilities and info, the handle, and an absolute
expiry (SESSION_MAX_LIFETIME_SECONDS after
`initialize`: an id cannot slide, the client never learns a new one). A token presented by another principal, one
that does not verify, has expired or was revoked by DELETE is refused like an unknown session (404).

Keys: REQUEST_STATE_SECRET (shared by replicas), hashed with a label of its own so a requestState token never
verifies as a session id; without it, the supervisor's instance key: sessions then survive a restart of the
gateway process, not of the whole tree, and no other replica can read them.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp_supervisor.errors import SupervisorError
from mcp_supervisor.gateway.server import jsonrpc

if TYPE_CHECKING:
    from mcp_supervisor.gateway.server.aead import AeadCodec

log = logging.getLogger("mcp_supervisor.gateway")

# Past this the id is trimmed (client info to its name and version, capabilities to their first level), and
# past it again the session is not sealed: headers of several kB are refused by some proxies.
MAX_ID_CHARS = 2048
HANDLE_CHARS = 16
# DELETEd handles remembered until their token would have expired anyway; past this many the nearest to
# expiring are forgotten first (said in the log).
MAX_REVOKED = 100_000
_LABEL = b"mcp-supervisor sealed session id v1\0"


class SessionRejected(SupervisorError):
    """The id is not a live sealed session of this principal; the reason is for the log only."""


@dataclass(frozen=True, slots=True)
class SealedState:
    handle: str
    principal: str
    protocol_version: str
    capabilities: dict[str, Any]
    client_info: dict[str, Any]
    expires_at: float


def _trimmed(capabilities: dict[str, Any], client_info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the core acts on, when the whole does not fit: each capability's own flags, not their contents."""
    shallow = {
        name: {key: {} if isinstance(value, dict) else value for key, value in flags.items()}
        if isinstance(flags, dict)
        else flags
        for name, flags in capabilities.items()
    }
    return shallow, {key: client_info[key] for key in ("name", "version") if key in client_info}


class SessionSealer:
    def __init__(self, secret: str, instance_key: bytes, max_lifetime_s: float) -> None:
        material = secret.encode() if secret else instance_key or secrets.token_bytes(32)
        self._key = hashlib.sha256(_LABEL + material).hexdigest()
        self.shared = bool(secret)
        self.max_lifetime_s = max_lifetime_s
        self._loaded: AeadCodec | None = None
        self._revoked: dict[str, float] = {}

    @property
    def _codec(self) -> AeadCodec:
        if self._loaded is None:
            from mcp_supervisor.gateway.server.aead import AeadCodec  # cryptography: on the first sealed id

            self._loaded = AeadCodec(self._key)
        return self._loaded

    def seal(
        self, principal: str, protocol_version: str, capabilities: dict[str, Any], client_info: dict[str, Any]
    ) -> tuple[str, float] | None:
        """(id, expiry) of a new sealed session, or None when its state does not fit a header."""
        handle = secrets.token_urlsafe(12)  # 16 characters
        expires_at = float(int(time.time() + self.max_lifetime_s))
        for caps, info in ((capabilities, client_info), _trimmed(capabilities, client_info)):
            payload = {"h": handle, "p": principal, "v": protocol_version, "c": caps, "i": info, "x": expires_at}
            token = self._codec.seal(zlib.compress(jsonrpc.encode_json(payload), 9))
            session_id = f"{handle}.{token}"
            if len(session_id) <= MAX_ID_CHARS:
                return session_id, expires_at
        log.warning(
            "A session of %s is not sealed: its client's capabilities and info take more than %d characters "
            "even trimmed. It will not survive a gateway restart or reach another replica.",
            principal,
            MAX_ID_CHARS,
        )
        return None

    def unseal(self, session_id: str, principal: str) -> SealedState:
        handle, dot, token = session_id.partition(".")
        if not dot or len(handle) != HANDLE_CHARS or len(session_id) > MAX_ID_CHARS:
            raise SessionRejected("not a sealed session id")
        try:
            payload: Any = jsonrpc.decode_json(zlib.decompress(self._codec.unseal(token)))
        except (ValueError, zlib.error) as exc:  # aead.InvalidToken is a ValueError
            raise SessionRejected(f"it does not verify ({exc})") from None
        if not isinstance(payload, dict) or payload.get("h") != handle:
            raise SessionRejected("malformed")
        if payload.get("p") != principal:
            raise SessionRejected("it was issued to another principal")
        expires_at = payload.get("x")
        if not isinstance(expires_at, (int, float)) or expires_at < time.time():
            raise SessionRejected("it expired")
        if handle in self._revoked:
            raise SessionRejected("it was deleted")
        caps, info = payload.get("c"), payload.get("i")
        return SealedState(
            handle,
            principal,
            str(payload.get("v") or ""),
            caps if isinstance(caps, dict) else {},
            info if isinstance(info, dict) else {},
            float(expires_at),
        )

    def revoke(self, handle: str, expires_at: float) -> None:
        """A DELETEd session's handle, refused until its token expires (in this process: see docs/sessions.md)."""
        now = time.time()
        if len(self._revoked) >= MAX_REVOKED:
            for stale in [h for h, until in self._revoked.items() if until < now]:
                del self._revoked[stale]
        if len(self._revoked) >= MAX_REVOKED:
            nearest = min(self._revoked, key=self._revoked.__getitem__)
            del self._revoked[nearest]
            log.warning(
                "The revocation set is full (%d deleted sessions): forgot the one nearest to expiring.", MAX_REVOKED
            )
        self._revoked[handle] = expires_at
