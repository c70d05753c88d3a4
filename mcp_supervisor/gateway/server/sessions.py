"""Client sessions: one object per handshake-era MCP client session, whatever the transport.

Each session has its own negotiated version and capabilities, and a standalone event log for
server-initiated messages, whichever stream delivers them (the /mcp GET stream, the /sse stream, stdout).
Nothing is shared between sessions but the catalog, so two clients never see each other's replies.

The store bounds what clients can hold: sessions in all and per credential (a credential at its quota makes
room by closing its own least recently used idle session, so it can lock out nobody but itself), idle
sessions (an hour, a minute under load: the table half full or the notification budget half used), and the
bytes of notifications buffered for slow clients (`Budget`, shared by every stream).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.gateway.frontends.auth import ANONYMOUS_IDENTITY, Identity
from mcp_supervisor.gateway.frontends.event_log import Budget, EventLog
from mcp_supervisor.gateway.frontends.sealed_sessions import SessionRejected, SessionSealer
from mcp_supervisor.gateway.server.request_context import Emit, ProfileMemo, RequestContext
from mcp_supervisor.protocol.versions import Era

log = logging.getLogger("mcp_supervisor.gateway")

# A POST's finished stream is kept this long for a client that reconnects to fetch its tail.
FINISHED_STREAM_TTL_S = 120.0


@dataclass(eq=False)
class ClientSession:
    id: str
    principal: str
    # Set by `initialize`; a legacy SSE session exists (its stream is open) before that.
    protocol_version: str = ""
    client_info: dict[str, Any] = field(default_factory=dict)
    capabilities: dict[str, Any] = field(default_factory=dict)
    initialize_seen: bool = False
    # Set once the initialize reply is built: until then the session's other messages wait, and it gets no
    # notifications (a list_changed must not come before the initialize result).
    initialize_answered: asyncio.Event = field(default_factory=asyncio.Event)
    initialized: bool = False
    last_active: float = field(default_factory=time.monotonic)
    stream_open: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    # Client request id → gateway rid of its requests in flight at a backend (for cancellation).
    in_flight: dict[int | str, int] = field(default_factory=dict)
    # Resource URIs this session subscribed to.
    subscriptions: set[str] = field(default_factory=set)
    # The level set by this client's logging/setLevel; backend log messages below it are not sent to it.
    log_level: str = ""
    # Shared by every stream of the gateway: the budget of buffered notifications.
    budget: Budget = field(default_factory=Budget)
    # False for transports without resumption (legacy /sse, stdio): delivered events are forgotten at once.
    resumable: bool = True
    # Numbered streams: 0 is the standalone one (server-initiated messages); Streamable HTTP adds one per
    # POST answered as SSE. Notifications are bounded; responses are kept until delivered.
    streams: dict[int, EventLog] = field(default_factory=dict)
    next_stream: int = 1
    # The standalone stream's last delivered event, and the event that ends its current connection.
    standalone_sent: int = 0
    standalone_connection: asyncio.Event | None = None
    # Why the gateway ended this session, if it did (a client too slow even for its replies).
    ended_because: str = ""
    # Who opened the session (its principal's claims, for per-client access and the audit trail).
    identity: Identity = ANONYMOUS_IDENTITY
    # The session's view (clients.json), recomputed when the file's generation changes.
    profile_memo: ProfileMemo = field(default_factory=ProfileMemo)
    # A /mcp session whose id is sealed (gateway/frontends/sealed_sessions.py): when that id expires (wall
    # clock; 0 = not sealed), and whether this process rebuilt it from the id (its earlier streams were
    # another process's).
    sealed_until: float = 0.0
    revived: bool = False
    _drop_told: bool = False

    def __post_init__(self) -> None:
        self.streams[0] = self._log(0)

    def _log(self, stream_id: int) -> EventLog:
        return EventLog(stream_id, budget=self.budget, resumable=self.resumable, on_drop=self._dropped)

    def _dropped(self) -> None:
        """Said once per session: a flood must not become a flood of log lines."""
        if not self._drop_told:
            self._drop_told = True
            log.warning(
                "Session %s… of %s reads too slowly for its notifications: the oldest were dropped (counted in "
                "mcp_gateway_dropped_notifications_total; no reply is ever dropped). Said once per session; "
                "1 dropped notification so far.",
                self.id[:8],
                self.principal,
            )

    def open_stream(self) -> EventLog:
        """A new numbered stream for one POST's response; finished ones past their TTL are dropped."""
        now = time.monotonic()
        for stream_id, stream in list(self.streams.items()):
            if stream_id and stream.finished_at is not None and now - stream.finished_at > FINISHED_STREAM_TTL_S:
                stream.release()
                del self.streams[stream_id]
        stream = self._log(self.next_stream)
        self.streams[stream.stream_id] = stream
        self.next_stream += 1
        return stream

    @property
    def standalone(self) -> EventLog:
        return self.streams[0]

    def push(self, message: bytes) -> None:
        """Queue a response (or a request to the client): kept until delivered, never evicted."""
        self.standalone.append(message)

    def notify(self, message: bytes) -> None:
        """Queue a notification: past the stream's bound or the gateway's budget, the oldest are dropped."""
        self.standalone.append(message, True)

    def emit(self, message: bytes, droppable: bool) -> None:
        """A message related to one of this session's requests, for transports with a single stream."""
        self.standalone.append(message, droppable)

    def request_context(self, emit: Emit | None = None) -> RequestContext:
        """What the core needs to serve one request of this session; `emit` is where messages related to it
        go (by default, the session's standalone stream: transports with a single stream)."""
        return RequestContext(
            self.identity,
            Era.LEGACY,
            self.protocol_version,
            self.capabilities,
            self.client_info,
            emit or self.emit,
            self.notify,
            self.in_flight,
            self.profile_memo,
            self,
        )

    @property
    def busy(self) -> bool:
        """Not to be closed for idleness: a stream is open, or a request is in flight."""
        return self.stream_open or bool(self.in_flight)


class SessionStore:
    def __init__(
        self,
        max_sessions: int = 10_000,
        idle_timeout_s: float = 3600.0,
        max_per_credential: int | None = None,
        idle_timeout_under_load_s: float = 60.0,
        budget: Budget | None = None,
        sealer: SessionSealer | None = None,
    ) -> None:
        self._sessions: dict[str, ClientSession] = {}
        self.sealer = sealer
        # Credential → its sessions (insertion order), for the quota.
        self._by_principal: dict[str, dict[str, ClientSession]] = {}
        self.max_sessions = max_sessions
        self.max_per_credential = max_per_credential or max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.idle_timeout_under_load_s = idle_timeout_under_load_s
        self.budget = budget if budget is not None else Budget()
        self.on_close: Callable[[ClientSession], None] = lambda session: None

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def under_load(self) -> bool:
        return len(self._sessions) * 2 > self.max_sessions or self.budget.used * 2 > self.budget.limit

    def create(
        self, principal: str, resumable: bool = True, identity: Identity | None = None, session_id: str = ""
    ) -> ClientSession | None:
        """A new session, or None when the store is full even after expiring idle sessions (or the credential
        is at its quota with every one of its sessions busy)."""
        own = self._by_principal.get(principal, {})
        if len(own) >= self.max_per_credential and not self._evict_least_recent(own):
            return None
        if len(self._sessions) >= self.max_sessions:
            self.expire_idle(self.idle_timeout_under_load_s)
            if len(self._sessions) >= self.max_sessions:
                return None
        # 32 random bytes, URL-safe: visible ASCII as the spec requires, and unguessable.
        session = ClientSession(
            session_id or secrets.token_urlsafe(32),
            principal,
            budget=self.budget,
            resumable=resumable,
            identity=identity or Identity(principal),
        )
        self._sessions[session.id] = session
        self._by_principal.setdefault(principal, {})[session.id] = session
        return session

    def seal(self, session: ClientSession) -> None:
        """Once `initialize` has set its state: the session takes a sealed id, which any replica sharing the key
        (and this gateway after a restart) can rebuild it from. Kept as it is without a sealer, or if too big."""
        sealed = (
            self.sealer.seal(session.principal, session.protocol_version, session.capabilities, session.client_info)
            if self.sealer is not None
            else None
        )
        if sealed is None or self._sessions.get(session.id) is not session:
            return
        del self._sessions[session.id]
        own = self._by_principal[session.principal]
        del own[session.id]
        session.id, session.sealed_until = sealed
        self._sessions[session.id] = session
        own[session.id] = session

    def revive(self, session_id: str, identity: Identity) -> ClientSession | None:
        """The session a sealed id describes, rebuilt in this process (after a restart of the gateway, or on
        another replica), or None when the id is not a live sealed session of this principal."""
        if self.sealer is None:
            return None
        try:
            state = self.sealer.unseal(session_id, identity.principal)
        except SessionRejected as exc:
            # Debug only: anyone can send ids, and each refusal is a plain 404 to the client anyway.
            log.debug("Session id %s… of %s refused: %s.", session_id[:8], identity.principal, exc)
            return None
        session = self.create(identity.principal, identity=identity, session_id=session_id)
        if session is None:
            return None
        session.protocol_version = state.protocol_version
        session.capabilities = state.capabilities
        session.client_info = state.client_info
        session.initialize_seen = session.initialized = session.revived = True
        session.initialize_answered.set()
        session.sealed_until = state.expires_at
        # Streams numbered apart from the earlier process's, so that a resumption of one of those is never
        # answered with one of ours.
        session.next_stream = secrets.randbelow(1 << 40) + (1 << 20)
        log.info("Session %s… of %s rebuilt from its sealed id.", session_id[:8], identity.principal)
        return session

    def _evict_least_recent(self, own: dict[str, ClientSession]) -> bool:
        idle = [s for s in own.values() if not s.busy]
        if not idle:
            return False
        victim = min(idle, key=lambda s: s.last_active)
        log.info(
            "Credential %s is at its quota of %d sessions: closed its least recently used one.",
            victim.principal,
            self.max_per_credential,
        )
        self.close(victim.id, revoke=True)  # ended, as without sealed ids: not brought back by its next request
        return True

    def get(self, session_id: str, principal: str) -> ClientSession | None:
        """The session, if it exists and belongs to the same credential (a stolen id alone is not enough)."""
        session = self._sessions.get(session_id)
        if session is None or session.principal != principal:
            return None
        session.last_active = time.monotonic()
        return session

    def close(self, session_id: str, because: str = "", revoke: bool = False) -> None:
        """`revoke`: the session is ended (DELETE, a quota's eviction), so its sealed id must not bring it back.
        Without it (idle, the gateway stopping) the id revives the session on its next request."""
        session = self._sessions.pop(session_id, None)
        if session is not None:
            if revoke and session.sealed_until and self.sealer is not None:
                self.sealer.revoke(session_id.partition(".")[0], session.sealed_until)
            own = self._by_principal.get(session.principal)
            if own is not None:
                own.pop(session_id, None)
                if not own:
                    del self._by_principal[session.principal]
            session.ended_because = because
            session.closed.set()
            for stream in session.streams.values():
                stream.release()
                stream.wake()  # its followers see `closed` and end
            self.on_close(session)

    def all(self) -> list[ClientSession]:
        return list(self._sessions.values())

    def expire_idle(self, idle_timeout_s: float | None = None) -> int:
        """Close sessions idle for longer than the timeout (the short one under load)."""
        if idle_timeout_s is None:
            idle_timeout_s = self.idle_timeout_under_load_s if self.under_load else self.idle_timeout_s
        deadline = time.monotonic() - idle_timeout_s
        now = time.time()
        stale = [
            s.id
            for s in self._sessions.values()
            if (s.last_active < deadline and not s.busy) or 0 < s.sealed_until < now  # idle, or its id expired
        ]
        for session_id in stale:
            self.close(session_id)
        return len(stale)

    def broadcast(self, message: bytes) -> None:
        for session in self._sessions.values():
            if session.initialized and session.initialize_answered.is_set():
                session.notify(message)
