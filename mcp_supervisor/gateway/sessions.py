"""Client sessions: one object per MCP client session, whatever the transport.

Each session has its own negotiated version and capabilities, and a standalone event log for
server-initiated messages, whichever stream delivers them (the /mcp GET stream, the /sse stream, stdout).
Nothing is shared between sessions but the catalog, so two clients never see each other's replies.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.gateway.event_log import EventLog

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
    # Numbered streams: 0 is the standalone one (server-initiated messages); Streamable HTTP adds one per
    # POST answered as SSE. Bounded, and kept for resumption.
    streams: dict[int, EventLog] = field(default_factory=lambda: {0: EventLog(0)})
    next_stream: int = 1
    # The standalone stream's last delivered event, and the event that ends its current connection.
    standalone_sent: int = 0
    standalone_connection: asyncio.Event | None = None
    # Query string to append to the announced legacy-SSE POST endpoint (`&key=…` when auth came by query).
    endpoint_suffix: str = ""

    def open_stream(self) -> EventLog:
        """A new numbered stream for one POST's response; finished ones past their TTL are dropped."""
        now = time.monotonic()
        for stream_id, log in list(self.streams.items()):
            if stream_id and log.finished_at is not None and now - log.finished_at > FINISHED_STREAM_TTL_S:
                del self.streams[stream_id]
        log = EventLog(self.next_stream)
        self.streams[log.stream_id] = log
        self.next_stream += 1
        return log

    @property
    def standalone(self) -> EventLog:
        return self.streams[0]

    def push(self, message: bytes) -> None:
        """Queue a server-initiated message; past the log's bound, a slow client loses the oldest first."""
        self.standalone.append(message)


class SessionStore:
    def __init__(self, max_sessions: int = 10_000, idle_timeout_s: float = 3600.0) -> None:
        self._sessions: dict[str, ClientSession] = {}
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.on_close: Callable[[ClientSession], None] = lambda session: None

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, principal: str) -> ClientSession | None:
        """A new session, or None when the store is full even after expiring idle sessions."""
        if len(self._sessions) >= self.max_sessions:
            self.expire_idle()
            if len(self._sessions) >= self.max_sessions:
                return None
        # 32 random bytes, URL-safe: visible ASCII as the spec requires, and unguessable.
        session = ClientSession(secrets.token_urlsafe(32), principal)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, principal: str) -> ClientSession | None:
        """The session, if it exists and belongs to the same credential (a stolen id alone is not enough)."""
        session = self._sessions.get(session_id)
        if session is None or session.principal != principal:
            return None
        session.last_active = time.monotonic()
        return session

    def close(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.closed.set()
            for log in session.streams.values():
                log.wake()  # its followers see `closed` and end
            self.on_close(session)

    def all(self) -> list[ClientSession]:
        return list(self._sessions.values())

    def expire_idle(self) -> int:
        deadline = time.monotonic() - self.idle_timeout_s
        stale = [s.id for s in self._sessions.values() if s.last_active < deadline and not s.stream_open]
        for session_id in stale:
            self.close(session_id)
        return len(stale)

    def broadcast(self, message: bytes) -> None:
        for session in self._sessions.values():
            if session.initialized and session.initialize_answered.is_set():
                session.push(message)
