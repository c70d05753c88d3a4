"""What the core knows of one client request: who asks, in which era, and where its related messages go.

The core serves requests, not sessions. A handshake-era transport owns a `ClientSession` and derives a context
from it for each request (sessions.py); a 2026-07-28 request has no session and brings its context in its
`_meta` envelope (`envelope_context`). Only the handshake era's session-scoped methods (logging/setLevel,
resources/subscribe) reach through to the session, and that era alone has one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mcp_supervisor.gateway.frontends.auth import Identity
from mcp_supervisor.protocol.versions import Era

if TYPE_CHECKING:
    from mcp_supervisor.config.clients import Profile
    from mcp_supervisor.gateway.server.modern import Envelope
    from mcp_supervisor.gateway.server.sessions import ClientSession

# (message, droppable): a notification may be dropped under pressure, a request to the client never.
Emit = Callable[[bytes, bool], None]


@dataclass(eq=False, slots=True)
class ProfileMemo:
    """A principal's view (clients.json), resolved once per file generation: kept by a session for all its
    requests, by a 2026-07-28 request for itself."""

    generation: int = -1
    profile: Profile | None = None


class InputHolder(Protocol):
    """A 2026-07-28 call held for its client's retry (modern_requests.Held): its backend's server→client
    requests are held with it instead of being sent."""

    @property
    def parked(self) -> bool:
        """Waiting for the client's retry: a new server→client request from its backend is another call's."""
        ...

    @property
    def holding(self) -> bool:
        """Still takes input requests (False once abandoned)."""
        ...

    def on_input(self, gateway_id: str, message: dict[str, Any]) -> None: ...


def _nowhere(message: bytes) -> None:
    """A 2026-07-28 request has no stream for messages outside its own."""


@dataclass(frozen=True, eq=False, slots=True)
class RequestContext:
    identity: Identity
    era: Era
    protocol_version: str
    capabilities: dict[str, Any]
    client_info: dict[str, Any]
    # Messages related to this request (progress, its server→client requests, its log lines).
    emit: Emit
    # Messages about it that are not replies on its stream (a backend gave up on its server→client request).
    notify: Callable[[bytes], None] = _nowhere
    # Client request id → gateway rid of its requests in flight at a backend (for cancellation): the session's
    # map in the handshake era (its notifications/cancelled looks there), the request's own otherwise.
    in_flight: dict[int | str, int] = field(default_factory=dict)
    profile_memo: ProfileMemo = field(default_factory=ProfileMemo)
    # The handshake-era session the request belongs to; None for a 2026-07-28 request.
    session: ClientSession | None = None
    # A 2026-07-28 request's log level (its envelope's); a session's is read live (logging/setLevel).
    requested_log_level: str = ""
    inputs: InputHolder | None = None

    @property
    def principal(self) -> str:
        return self.identity.principal

    @property
    def client(self) -> object:
        """What tells clients apart: the session (all its requests are one client's), else the request."""
        return self.session if self.session is not None else self

    @property
    def log_level(self) -> str:
        """The level this request's client asked for ("" = none): a session's current one (a setLevel during a
        long call applies to its later lines), or the 2026-07-28 request's own."""
        return self.session.log_level if self.session is not None else self.requested_log_level

    @property
    def parked(self) -> bool:
        return self.inputs is not None and self.inputs.parked

    @property
    def input_sink(self) -> Callable[[str, dict[str, Any]], None] | None:
        """Where a backend's server→client request for this call goes instead of the client (modern only)."""
        return self.inputs.on_input if self.inputs is not None and self.inputs.holding else None


def envelope_context(identity: Identity, envelope: Envelope, emit: Emit) -> RequestContext:
    """The context of one 2026-07-28 request: its `_meta` envelope says what a session would have."""
    return RequestContext(
        identity,
        Era.MODERN,
        envelope.protocol_version,
        envelope.capabilities,
        envelope.client_info,
        emit,
        requested_log_level=envelope.log_level,
    )
