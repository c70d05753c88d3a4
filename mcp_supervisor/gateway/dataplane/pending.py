"""The pending-request table: every request forwarded to a worker, until its reply, failure or timeout.

ZeroMQ silently loses whatever a dying peer held, so every request is recorded with the worker generation it
went to; when that generation exits, all of its requests fail at once with a JSON-RPC error. Requests are
never retried (a `tools/call` is not idempotent).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.notification_fields import defined_fields
from mcp_supervisor.gateway.server.request_context import RequestContext


def expire(future: asyncio.Future[tuple[bytes, bytes]]) -> None:
    """The call's timer: a timer that fails the future, rather than asyncio.wait_for (a waiter future,
    callbacks and a timer of its own), since this is on every call's path."""
    if not future.done():
        future.set_exception(TimeoutError())


@dataclass(eq=False)
class CallContext:
    """Where a relayed request came from, and how to deliver messages related to it (progress, …)."""

    session: RequestContext  # the request's context (a handshake-era one comes from its session)
    request_id: jsonrpc.RequestId
    # (message, droppable): a notification may be dropped under pressure, a request to the client never.
    emit: Callable[[bytes, bool], None]
    # The request's params, consulted only to attribute a backend's server→client request to it.
    params: dict[str, Any] = field(default_factory=dict)
    # What it asks of the backend ("tools/call <backend's tool name>"), for learning which ones are interactive.
    operation: str = ""


@dataclass(slots=True)
class Pending:
    key: str
    generation: int
    future: asyncio.Future[tuple[bytes, bytes]]
    context: CallContext | None = None
    progress_token: object = None  # the client's own token, restored on the way back


class PendingTable:
    """Requests in flight by rid (unique gateway-wide), and the same requests by backend key."""

    def __init__(self) -> None:
        self._pending: dict[int, Pending] = {}
        # The same requests by backend key: who is in flight where, without a scan of every request. A failed
        # request leaves `_pending` at once but stays here until its caller closes it.
        self._at: dict[str, dict[int, Pending]] = {}
        self._rids = itertools.count(1)

    def new(
        self, key: str, generation: int, params: dict[str, Any] | None, context: CallContext | None
    ) -> tuple[int, Pending, dict[str, Any] | None]:
        """A request about to be forwarded (not yet tracked): its rid, its entry and the params to forward.

        A client's progress token is replaced by the rid (so tokens of different sessions never collide on the
        shared backend) and restored on every progress notification.
        """
        rid = next(self._rids)
        pending = Pending(key, generation, asyncio.get_running_loop().create_future(), context)
        meta = params.get("_meta") if params is not None else None
        if params is not None and isinstance(meta, dict) and "progressToken" in meta:
            pending.progress_token = meta["progressToken"]
            params = {**params, "_meta": {**meta, "progressToken": rid}}
        return rid, pending, params

    def track(self, rid: int, pending: Pending) -> None:
        """The request is being sent: from now on it is in flight until `close`."""
        self._pending[rid] = pending
        at = self._at.get(pending.key)
        if at is None:
            at = self._at[pending.key] = {}
        at[rid] = pending
        if pending.context is not None:
            pending.context.session.in_flight[pending.context.request_id] = rid

    def close(self, rid: int, pending: Pending) -> None:
        """The caller is done with the request, whatever its outcome."""
        self._pending.pop(rid, None)
        del self._at[pending.key][rid]
        if pending.context is not None:
            pending.context.session.in_flight.pop(pending.context.request_id, None)

    def get(self, rid: int) -> Pending | None:
        return self._pending.get(rid)

    def resolve(self, rid: int, sender: tuple[str, int], result: bytes, error: bytes) -> bool:
        """A worker's reply; False (refused) when the request was routed to another key or generation."""
        pending = self._pending.get(rid)
        if pending is None or pending.future.done():
            return True  # answered, cancelled or timed out already
        if pending.key != sender[0] or pending.generation != sender[1]:
            return False
        pending.future.set_result((result, error))
        return True

    def fail(self, rid: int, code: int, message: str) -> None:
        pending = self._pending.pop(rid, None)
        if pending is not None and not pending.future.done():
            pending.future.set_result((b"", jsonrpc.encode_json({"code": code, "message": message})))

    def fail_all(self, code: int, message: str) -> None:
        for rid in list(self._pending):
            self.fail(rid, code, message)

    def fail_generation(self, key: str, generation: int, code: int, message: str) -> None:
        """Fail every request routed to `key` at `generation` or older."""
        for rid, pending in list(self._pending.items()):
            if pending.key == key and pending.generation <= generation:
                self.fail(rid, code, message)

    def contexts_at(self, key: str) -> list[CallContext]:
        """Contexts of the requests in flight at backend `key`, oldest first."""
        at = self._at.get(key)
        if not at:
            return []
        return [p.context for rid, p in at.items() if p.context is not None and rid in self._pending]

    def progress(self, key: str, params: dict[str, Any], message: dict[str, Any]) -> None:
        """A backend's progress notification goes to the client of the request it is about, with the client's
        own token; progress for a request that has ended (or was never ours) goes nowhere."""
        token = params.get("progressToken")
        pending = self._pending.get(token) if isinstance(token, int) else None
        if pending is not None and pending.context is not None and pending.key == key:
            clean = defined_fields(message)["params"]  # its method's fields and _meta only
            restored = {
                "jsonrpc": "2.0",
                "method": message["method"],
                "params": {**clean, "progressToken": pending.progress_token},
            }
            pending.context.emit(jsonrpc.encode_json(restored), True)
