"""Backend log lines (notifications/message) to the clients they concern, and logging/setLevel.

The backends are shared, so a level is a per-client filter at the gateway: each backend gets the most verbose
level any session asked for, and each client only the lines at or above its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mcp_supervisor.gateway.dataplane.backends import Backends
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.jsonrpc import JsonRpcFault
from mcp_supervisor.gateway.server.sessions import ClientSession, SessionStore
from mcp_supervisor.protocol import error_codes
from mcp_supervisor.protocol.versions import Era

log = logging.getLogger("mcp_supervisor.gateway")

# RFC 5424 severities as MCP names them, least severe first.
LOG_LEVELS = {
    name: rank
    for rank, name in enumerate(("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"))
}


class LogRouting:
    def __init__(self, backends: Backends, sessions: SessionStore, timeout_s: float) -> None:
        self._backends = backends
        self._sessions = sessions
        self._timeout_s = timeout_s

    def route(self, key: str, message: dict[str, Any], params: dict[str, Any]) -> None:
        """A backend's log line goes to the session it concerns, never to another credential.

        Nothing on a handshake-era backend's wire says which request a log line belongs to. While requests of
        one credential only are in flight at the backend, the line is theirs: it goes to the most recent one's
        stream (its session). With no request in flight it concerns no client in particular: it goes to the
        sessions that asked for logs (logging/setLevel). While several credentials have requests in flight
        it cannot be attributed, and goes nowhere (counted in mcp_gateway_unattributed_log_messages_total).
        """
        level = LOG_LEVELS.get(str(params.get("level")), 0)
        contexts = self._backends.contexts_at(key)
        if contexts:
            newest = contexts[-1]
            if any(c.session.principal != newest.session.principal for c in contexts):
                self._backends.metrics.unattributed_logs += 1
                return
            if newest.session.era == Era.MODERN and newest.session.log_level not in LOG_LEVELS:
                return  # a 2026-07-28 request gets log lines only if it asked for them, at its level
            if level >= LOG_LEVELS.get(newest.session.log_level, 0):
                newest.emit(jsonrpc.encode_json(message), True)
            return
        encoded = jsonrpc.encode_json(message)
        for session in self._sessions.all():
            if session.initialized and session.log_level in LOG_LEVELS and level >= LOG_LEVELS[session.log_level]:
                session.notify(encoded)

    async def set_level(self, session: ClientSession, request_id: jsonrpc.RequestId, params: dict[str, Any]) -> bytes:
        """Fan out to every backend that logs; the gateway answers once they all have."""
        level = params.get("level")
        if not isinstance(level, str):
            raise JsonRpcFault(error_codes.INVALID_PARAMS, 'Invalid params: logging/setLevel needs a string "level".')
        if level not in LOG_LEVELS:
            raise JsonRpcFault(error_codes.INVALID_PARAMS, f"Invalid params: unknown logging level {level!r}.")
        session.log_level = level
        # The backends are shared: they get the most verbose level any session asked for, and the gateway
        # filters per session (one client's "error" must not silence another's "debug").
        wanted = [s.log_level for s in self._sessions.all() if s.log_level in LOG_LEVELS]
        shared = {**params, "level": min(wanted, key=LOG_LEVELS.__getitem__)}
        # A modern backend's worker keeps the level for the backend's requests (their _meta logLevel): the
        # SDK's servers log per request without declaring the (deprecated) capability.
        keys = [
            k for k, link in self._backends.links.items() if "logging" in link.capabilities or link.era == Era.MODERN
        ]
        outcomes = await asyncio.gather(
            *(self._backends.call(key, "logging/setLevel", shared, self._timeout_s) for key in keys),
            return_exceptions=True,
        )
        for key, outcome in zip(keys, outcomes, strict=True):
            if isinstance(outcome, BaseException) or outcome[1]:
                log.warning("Backend %s did not accept logging/setLevel: %r", key, outcome)
        return jsonrpc.result_bytes(request_id, {})
