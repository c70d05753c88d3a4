"""The gateway's side of the data plane: requests out to the workers, and what the workers send back.

`Backends` is what the rest of the gateway calls; it composes the ROUTER (worker_router.py: who sent a
message), the pending-request table (pending.py: what is in flight where, and its timeouts) and the link
state (links.py: which generation serves each backend, and the supervisor's statuses).

A reply resolves a pending request only if that request was routed to its sender's very key and generation;
ready, catalog and backend messages speak only for the sender's own key and generation. Anything else is
dropped, counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq

from mcp_supervisor.gateway.dataplane.links import BackendLink, BackendUnavailable, LinkTable
from mcp_supervisor.gateway.dataplane.metrics import Metrics
from mcp_supervisor.gateway.dataplane.pending import CallContext, PendingTable, expire
from mcp_supervisor.gateway.dataplane.worker_router import WorkerRouter
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.protocol import codec, error_codes
from mcp_supervisor.protocol.endpoints import Endpoints
from mcp_supervisor.protocol.messages import (
    BackendMessage,
    BackendStatus,
    CatalogChanged,
    Forward,
    Heartbeat,
    Notify,
    Reply,
    Resync,
    WorkerReady,
    WorkerToGateway,
)
from mcp_supervisor.protocol.versions import Era

# The names the rest of the gateway imports from here (the data plane's one front door).
__all__ = ["BackendLink", "BackendUnavailable", "Backends", "CallContext"]

log = logging.getLogger("mcp_supervisor.gateway")


class Backends:
    """Registry of live backend links, plus the supervisor's view of every configured backend."""

    def __init__(
        self,
        endpoints: Endpoints,
        instance_key: bytes,
        on_catalog_change: Callable[[], None],
        on_backend_message: Callable[[str, int, dict[str, Any]], None] = lambda key, generation, message: None,
    ) -> None:
        self._on_backend_message = on_backend_message
        self.metrics = Metrics()
        self._router = WorkerRouter(endpoints, instance_key, self.metrics)
        self._links = LinkTable(on_catalog_change)
        self._pending = PendingTable()
        # The link state's own containers (never replaced), read directly by the core, probes and admin.
        self.links: dict[str, BackendLink] = self._links.links
        self.last_links: dict[str, BackendLink] = self._links.last_links
        self.statuses: dict[str, BackendStatus] = self._links.statuses
        self.status_listeners: list[Callable[[BackendStatus, str], None]] = self._links.status_listeners
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._router.start()
        self._reader = asyncio.create_task(self._router.run(self._dispatch), name="data-plane-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self._pending.fail_all(error_codes.BACKEND_UNAVAILABLE, "The gateway is shutting down.")
        self._router.close()

    # ------------------------------------------------------------------ link state

    @property
    def snapshot_seen(self) -> bool:
        return self._links.snapshot_seen

    @snapshot_seen.setter
    def snapshot_seen(self, seen: bool) -> None:
        self._links.snapshot_seen = seen

    @property
    def in_flux(self) -> bool:
        """Whether the catalog is about to change: a backend starting, restarting or RUNNING but not yet linked."""
        return self._links.in_flux

    async def settle_startup(self, window_s: float) -> None:
        """Wait (within `window_s` of the gateway's start) for the backends still starting: see LinkTable."""
        await self._links.settle_startup(window_s)

    def require_link(self, key: str) -> BackendLink:
        return self._links.require(key)

    def contexts_at(self, key: str) -> list[CallContext]:
        """Contexts of the requests in flight at backend `key`, oldest first."""
        return self._pending.contexts_at(key)

    # ------------------------------------------------------------------ requests

    async def call(
        self,
        key: str,
        method: str,
        params: dict[str, Any] | None,
        timeout: float,
        context: CallContext | None = None,
    ) -> tuple[bytes, bytes]:
        """Forward one request; return (raw result JSON, raw error JSON), exactly one of them non-empty."""
        link = self._links.require(key)
        rid, pending, params = self._pending.new(key, link.generation, params, context)
        frame = codec.encode(Forward(rid=rid, body=_request(rid, method, params), era=_era_for(link, context)))
        self._pending.track(rid, pending)
        started = time.perf_counter()
        failed = True
        timer = asyncio.get_running_loop().call_later(timeout, expire, pending.future)
        try:
            try:
                self._router.send(link.identity, frame)
            except zmq.ZMQError as exc:
                raise BackendUnavailable(key, f"its worker cannot be reached ({exc.strerror})") from None
            del frame  # sent: not kept for the call's whole flight (a held call's can be megabytes)
            result, error = await pending.future
            failed = bool(error)
            return result, error
        except TimeoutError:
            raise BackendUnavailable(key, f"no answer within {timeout:g} s") from None
        finally:
            timer.cancel()
            self._pending.close(rid, pending)
            self.metrics.observe(key, time.perf_counter() - started, failed)

    async def cancel(self, rid: int, reason: str) -> None:
        """The client cancelled: tell the backend, and end the waiting request (its reply is not wanted)."""
        pending = self._pending.get(rid)
        if pending is None:
            return
        link = self._links.current(pending.key, pending.generation)
        if link is not None:
            notice = {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": rid, "reason": reason},
            }
            self._router.send_quietly(link.identity, Notify(body=jsonrpc.encode_json(notice)))
        self._pending.fail(rid, error_codes.REQUEST_CANCELLED, f"Request cancelled by the client: {reason}")

    def send_to_backend(self, key: str, generation: int, body: bytes) -> None:
        """A JSON-RPC message (a response to the backend's own request) for one worker generation."""
        link = self._links.current(key, generation)
        if link is not None:  # else that backend connection is gone, and its request with it
            self._router.send_quietly(link.identity, Notify(body=body))

    # ------------------------------------------------------------------ supervisor events

    def on_status(self, status: BackendStatus, event: str) -> None:
        """A state change reported by the supervisor; an exit fails that generation's requests at once.

        During a replacement two generations of one key live side by side: an older generation's exit still
        fails that generation's requests.
        """
        self._links.apply_status(status, event)
        if event in {"exited", "removed"}:
            self.worker_gone(status.key, status.generation, status.last_exit or "it exited")
        self._links.announce(status, event)

    def worker_gone(self, key: str, generation: int, why: str) -> None:
        self._links.unlink(key, generation)
        message = (
            f'Backend "{key}" worker (generation {generation}) ended while this request was in flight ({why}); '
            "the request was not retried."
        )
        self._pending.fail_generation(key, generation, error_codes.BACKEND_UNAVAILABLE, message)

    # ------------------------------------------------------------------ worker messages

    def _dispatch(self, identity: bytes, sender: tuple[str, int], message: WorkerToGateway) -> None:
        """One authenticated worker message: it counts only for its sender's own key and generation."""
        key, generation = sender
        match message:
            case Reply(rid=rid, result=result, error=error):
                if not self._pending.resolve(rid, sender, result, error):
                    self._router.refuse(sender, f"a reply to request {rid}, which was routed elsewhere")
            case Heartbeat() if message.key != key or message.generation != generation:
                self._router.refuse(sender, f"a heartbeat in the name of {message.key}/{message.generation}")
            case Heartbeat():
                self.metrics.notified(key, message.notifications_dropped, message.notifications_coalesced)
                if self._links.needs_resync(key, generation):
                    # A worker we do not know (we restarted, or missed its ready): ask it to introduce itself.
                    self._router.send_quietly(identity, Resync())
            case WorkerReady() | BackendMessage() | CatalogChanged() if (
                message.key != key or message.generation != generation
            ):
                self._router.refuse(sender, f"a message in the name of {message.key}/{message.generation}")
            case WorkerReady():
                self._links.link(identity, message)
            case BackendMessage(body=body):
                self._route_backend_message(key, generation, body)
            case CatalogChanged(kind=kind, items=items):
                self._links.update_catalog(key, generation, kind, items)

    def _route_backend_message(self, key: str, generation: int, body: bytes) -> None:
        """The backend's own messages: progress goes to the request it is about, the rest to the core."""
        try:
            message = jsonrpc.decode_json(body)
        except Exception:
            log.warning("Backend %s sent an undecodable message.", key)
            return
        if not isinstance(message, dict):
            return
        params = message.get("params")
        if message.get("method") == "notifications/progress" and isinstance(params, dict):
            self._pending.progress(key, params, message)
            return
        self._on_backend_message(key, generation, message)


def _request(rid: int, method: str, params: dict[str, Any] | None) -> bytes:
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        request["params"] = params
    return jsonrpc.encode_json(request)


def _era_for(link: BackendLink, context: CallContext | None) -> str:
    """A handshake-era client's request to a 2026-07-28 backend says so: if the backend speaks both eras, its
    worker gives the client its own era (real server→client requests), as a direct connection would."""
    if link.era == Era.MODERN and context is not None and context.session.era == Era.LEGACY:
        return Era.LEGACY
    return ""
