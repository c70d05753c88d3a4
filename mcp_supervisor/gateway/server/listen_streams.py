"""`subscriptions/listen` (2026-07-28): long-lived notification streams, each with its client's filter.

Fed by the same events as the handshake era's GET streams: the gateway's own catalog changes (a backend came,
went or changed its lists; a tool_config.json or clients.json reload) and the backends' resource updates.
Every frame carries the subscription id (the listen request's JSON-RPC id); the first is the acknowledgement
with the honoured subset of the filter. A listener's notifications are droppable (bounded, like every stream's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.errors import SupervisorError
from mcp_supervisor.gateway.server import jsonrpc, modern
from mcp_supervisor.gateway.server.request_context import RequestContext

Emit = Callable[[bytes, bool], None]

# Filter field → the catalog kind whose list_changed it asks for.
LIST_FILTERS = {"toolsListChanged": "tools", "promptsListChanged": "prompts", "resourcesListChanged": "resources"}


class FilterError(SupervisorError, ValueError):
    pass


@dataclass(eq=False)
class Listener:
    subscription_id: jsonrpc.RequestId
    context: RequestContext  # the listen request's: whose stream it is
    emit: Emit
    kinds: frozenset[str] = frozenset()
    uris: frozenset[str] = frozenset()
    closed: bool = False
    on_close: list[Callable[[], None]] = field(default_factory=list)
    # Ends the stream after its last frame (HTTP: the response ends; stdio: nothing to end).
    finish: Callable[[], None] = lambda: None

    def send(self, method: str, params: dict[str, Any]) -> None:
        meta = params.get("_meta")
        tagged = {
            **params,
            "_meta": {**(meta if isinstance(meta, dict) else {}), modern.SUBSCRIPTION_ID_KEY: self.subscription_id},
        }
        self.emit(jsonrpc.encode_json({"jsonrpc": "2.0", "method": method, "params": tagged}), True)

    def acknowledge(self) -> None:
        honoured: dict[str, Any] = {field: True for field, kind in LIST_FILTERS.items() if kind in self.kinds}
        if self.uris:
            honoured["resourceSubscriptions"] = sorted(self.uris)
        self.send("notifications/subscriptions/acknowledged", {"notifications": honoured})

    def closing_result(self) -> bytes:
        """The graceful end: the listen request's own (complete) result."""
        result = {
            "resultType": "complete",
            "_meta": {modern.SUBSCRIPTION_ID_KEY: self.subscription_id, modern.SERVER_INFO_KEY: modern.SERVER_INFO},
        }
        return jsonrpc.result_bytes(self.subscription_id, result)


def parse_filter(params: dict[str, Any]) -> tuple[frozenset[str], list[str]]:
    """The list kinds and the resource URIs a listen request asks for."""
    wanted = params.get("notifications")
    if wanted is None:
        wanted = {}
    if not isinstance(wanted, dict):
        raise FilterError('Invalid params: subscriptions/listen needs a "notifications" object.')
    kinds = frozenset(kind for name, kind in LIST_FILTERS.items() if wanted.get(name) is True)
    uris = wanted.get("resourceSubscriptions") or []
    if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
        raise FilterError('Invalid params: "resourceSubscriptions" must be a list of URIs.')
    return kinds, list(dict.fromkeys(uris))


class TooManyListeners(SupervisorError):
    pass


class Listeners:
    def __init__(self, max_total: int = 10_000, max_per_credential: int = 1000) -> None:
        self._all: set[Listener] = set()
        self.max_total = max_total
        self.max_per_credential = max_per_credential

    def admit(self, principal: str) -> None:
        """Listen streams are bounded like sessions: in all, and per credential."""
        if len(self._all) >= self.max_total:
            raise TooManyListeners("The gateway holds too many subscriptions/listen streams; try again later.")
        if sum(1 for listener in self._all if listener.context.principal == principal) >= self.max_per_credential:
            raise TooManyListeners("This credential holds its quota of subscriptions/listen streams.")

    def __len__(self) -> int:
        return len(self._all)

    def add(self, listener: Listener) -> None:
        self._all.add(listener)

    def remove(self, listener: Listener) -> bool:
        if listener not in self._all:
            return False
        self._all.discard(listener)
        listener.closed = True
        for callback in listener.on_close:
            callback()
        return True

    def all(self) -> list[Listener]:
        return list(self._all)

    def close_all(self) -> None:
        """The gateway is stopping: every stream ends gracefully, with its listen request's result."""
        for listener in list(self._all):
            if self.remove(listener):
                listener.emit(listener.closing_result(), False)
                listener.finish()

    def holds(self, uri: str) -> bool:
        return any(uri in listener.uris for listener in self._all)

    def list_changed(self, kind: str) -> None:
        for listener in self._all:
            if kind in listener.kinds:
                listener.send(f"notifications/{kind}/list_changed", {})

    def resource_updated(self, uri: str, params: dict[str, Any], sees: Callable[[Listener], bool]) -> None:
        """To the streams that asked for `uri`, while their view still has it (clients.json may change)."""
        for listener in self._all:
            if uri in listener.uris and sees(listener):
                listener.send("notifications/resources/updated", dict(params))
