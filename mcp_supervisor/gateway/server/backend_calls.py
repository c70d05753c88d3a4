"""The one way a client request reaches a backend: in the backend's era, audited, its input rounds answered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mcp_supervisor.gateway.dataplane.backends import Backends, BackendUnavailable, CallContext
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.access import Profiles
from mcp_supervisor.gateway.server.audit import AuditLog, error_code
from mcp_supervisor.gateway.server.input_rounds import InputRounds
from mcp_supervisor.gateway.server.modern import INPUT_REQUIRED_METHODS, strip_envelope, with_envelope
from mcp_supervisor.gateway.server.server_requests import ServerRequests
from mcp_supervisor.protocol import error_codes
from mcp_supervisor.protocol.versions import Era


class BackendCalls:
    def __init__(
        self,
        backends: Backends,
        timeout_s: float,
        audit: AuditLog | None,
        profiles: Profiles,
        server_requests: ServerRequests,
    ) -> None:
        self._backends = backends
        self._timeout_s = timeout_s
        self._audit = audit
        self._profiles = profiles
        self._rounds = InputRounds(ask=server_requests.ask, call=self.call)

    async def forward(self, context: CallContext, key: str, method: str, params: dict[str, Any] | None) -> bytes:
        """The backend's reply to the client's request, under the client's id."""
        result, error = await self.call(context, key, method, params)
        if (
            not error
            and method in INPUT_REQUIRED_METHODS
            and context.session.era == Era.LEGACY
            and b'"input_required"' in result
        ):
            # A 2026-07-28 backend asks for input: its requests go to this handshake-era client, for real.
            result, error = await self._rounds.answer(context, key, method, params or {}, result)
        if error:
            return jsonrpc.spliced_error(context.request_id, error)
        return jsonrpc.spliced_result(context.request_id, result)

    async def call(
        self, context: CallContext, key: str, method: str, params: dict[str, Any] | None
    ) -> tuple[bytes, bytes]:
        """Every client request that reaches a backend passes here; with AUDIT_LOG unset, one check."""
        link = self._backends.links.get(key)
        if link is not None and params is not None and link.era != context.session.era:
            # Each backend gets its own era's request: a 2026-07-28 one learns from every request what this
            # client can do; a handshake-era one (which may reject it) never sees the envelope.
            params = with_envelope(params, context.session) if link.era == Era.MODERN else strip_envelope(params)
        if self._audit is None:
            return await self._backends.call(key, method, params, self._timeout_s, context)
        started = time.perf_counter()
        outcome: str | int = error_codes.INTERNAL_ERROR
        result = error = b""
        try:
            result, error = await self._backends.call(key, method, params, self._timeout_s, context)
            outcome = error_code(error) if error else "ok"
            return result, error
        except BackendUnavailable:
            outcome = error_codes.BACKEND_UNAVAILABLE
            raise
        except asyncio.CancelledError:
            outcome = error_codes.REQUEST_CANCELLED
            raise
        finally:
            client = self._profiles.of(context.session).name if self._profiles.present else ""
            self._audit.record_call(context, client, key, method, params, started, outcome, len(result) + len(error))
