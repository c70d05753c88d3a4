"""The gateway's side of the data plane: the ROUTER the workers connect to, and the pending-request table.

ZeroMQ silently loses whatever a dying peer held, so every forwarded request is recorded with the worker
generation it went to; when the supervisor reports that generation's exit, all of its requests fail at once
with a JSON-RPC error. Requests are never retried (a `tools/call` is not idempotent).

Workers are untrusted in what they relay (a backend chooses every id it answers), so a message counts only
for the worker that sent it: the sender is the user name its connection authenticated as (ZAP, per-spawn
credentials), which must equal its routing identity `<key>/<generation>`; a reply resolves a pending request
only if that request was routed to that very key and generation; ready, catalog and backend messages speak
only for the sender's own key and generation. Anything else is dropped, counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from mcp_supervisor.errors import ProtocolError, SupervisorError
from mcp_supervisor.gateway.dataplane.metrics import Metrics
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.notification_fields import defined_fields
from mcp_supervisor.gateway.server.sessions import ClientSession
from mcp_supervisor.protocol import codec, error_codes, socket_auth
from mcp_supervisor.protocol.channel import Channel
from mcp_supervisor.protocol.endpoints import Endpoints, configure_router
from mcp_supervisor.protocol.messages import (
    CATALOG_KINDS,
    BackendMessage,
    BackendStatus,
    CatalogChanged,
    Forward,
    Heartbeat,
    Notify,
    Reply,
    Resync,
    WorkerReady,
)
from mcp_supervisor.protocol.states import BackendState
from mcp_supervisor.protocol.versions import Era

log = logging.getLogger("mcp_supervisor.gateway")


def _expire(future: asyncio.Future[tuple[bytes, bytes]]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class BackendUnavailable(SupervisorError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f'Backend "{key}" is not available: {reason}.')
        self.key = key


@dataclass
class BackendLink:
    """A worker generation that reported its backend initialized."""

    key: str
    generation: int
    identity: bytes
    initialize_result: dict[str, Any]
    # Catalog kind (tools, resources, resource_templates, prompts) → items as the backend listed them.
    catalog: dict[str, list[dict[str, Any]]]
    name_prefix: str | None = None
    # The server entry's display name ("" = its key), shown in its tools' titles (gateway/server/ownership.py).
    display_name: str = ""
    # The protocol era its worker speaks to the backend ("legacy" or "modern", from WorkerReady).
    era: str = Era.LEGACY

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.catalog.get("tools", [])

    @property
    def capabilities(self) -> dict[str, Any]:
        capabilities = self.initialize_result.get("capabilities")
        return capabilities if isinstance(capabilities, dict) else {}


@dataclass(eq=False)
class CallContext:
    """Where a relayed request came from, and how to deliver messages related to it (progress, …)."""

    session: ClientSession
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
        # The process's one ZeroMQ context (one I/O thread), seen through a synchronous shadow.
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(zmq.asyncio.Context.instance().underlying)
        # Before the bind: a PLAIN server with no ZAP handler in its context would accept any credentials.
        self._guard = socket_auth.SocketGuard(context, instance_key, socket_auth.is_worker)
        router = context.socket(zmq.ROUTER)
        configure_router(router)
        socket_auth.as_server(router)
        router.bind(endpoints.data)
        self._router = Channel(router, with_peer=True)
        # Routing identity → (key, generation) of workers whose messages were accepted.
        self._senders: dict[bytes, tuple[str, int]] = {}
        self._on_catalog_change = on_catalog_change
        self.links: dict[str, BackendLink] = {}
        # The last link of every backend ever linked, kept while it is down so a call names the backend.
        self.last_links: dict[str, BackendLink] = {}
        self.statuses: dict[str, BackendStatus] = {}
        # Called with (status, event) for every supervisor event, after it is applied (the admin's live page).
        self.status_listeners: list[Callable[[BackendStatus, str], None]] = []
        self._pending: dict[int, Pending] = {}
        # The same requests by backend key: who is in flight where, without a scan of every request.
        self._pending_at: dict[str, dict[int, Pending]] = {}
        self._rids = itertools.count(1)
        self.metrics = Metrics()
        self._changed = asyncio.Event()  # set (and replaced) on every status or link change
        self.snapshot_seen = False
        self._born = time.monotonic()
        self._waiting_logged: list[str] = []
        self._gave_up_waiting = False
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._router.start()
        self._reader = asyncio.create_task(self._read_loop(), name="data-plane-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        for rid in list(self._pending):
            self._fail(rid, error_codes.BACKEND_UNAVAILABLE, "The gateway is shutting down.")
        self._router.close()
        self._guard.stop()

    # ------------------------------------------------------------------ requests

    def require_link(self, key: str) -> BackendLink:
        link = self.links.get(key)
        if link is None:
            raise BackendUnavailable(key, self._describe_down(key))
        return link

    async def call(
        self,
        key: str,
        method: str,
        params: dict[str, Any] | None,
        timeout: float,
        context: CallContext | None = None,
    ) -> tuple[bytes, bytes]:
        """Forward one request; return (raw result JSON, raw error JSON), exactly one of them non-empty.

        A client's progress token is replaced by the rid (unique gateway-wide, so tokens of different
        sessions never collide on the shared backend) and restored on every progress notification.
        """
        link = self.require_link(key)
        rid = next(self._rids)
        pending = Pending(key, link.generation, asyncio.get_running_loop().create_future(), context)
        meta = params.get("_meta") if params is not None else None
        if params is not None and isinstance(meta, dict) and "progressToken" in meta:
            pending.progress_token = meta["progressToken"]
            params = {**params, "_meta": {**meta, "progressToken": rid}}
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            request["params"] = params
        # A handshake-era client's request to a 2026-07-28 backend says so: if the backend speaks both eras, its
        # worker gives the client its own era (real server→client requests), as a direct connection would.
        era = Era.LEGACY if link.era == Era.MODERN and context is not None and context.session.era == Era.LEGACY else ""
        frame = codec.encode(Forward(rid=rid, body=jsonrpc.encode_json(request), era=era))
        future = pending.future
        self._pending[rid] = pending
        at = self._pending_at.get(key)
        if at is None:
            at = self._pending_at[key] = {}
        at[rid] = pending
        if context is not None:
            context.session.in_flight[context.request_id] = rid
        started = time.perf_counter()
        failed = True
        # A timer that fails the future, rather than asyncio.wait_for (a waiter future, callbacks and a
        # timer of its own): this is on every call's path.
        timer = asyncio.get_running_loop().call_later(timeout, _expire, future)
        try:
            try:
                self._router.send([link.identity, frame])
            except zmq.ZMQError as exc:
                raise BackendUnavailable(key, f"its worker cannot be reached ({exc.strerror})") from None
            del frame  # sent: not kept for the call's whole flight (a held call's can be megabytes)
            result, error = await future
            failed = bool(error)
            return result, error
        except TimeoutError:
            raise BackendUnavailable(key, f"no answer within {timeout:g} s") from None
        finally:
            timer.cancel()
            self._pending.pop(rid, None)
            del at[rid]
            if context is not None:
                context.session.in_flight.pop(context.request_id, None)
            self.metrics.observe(key, time.perf_counter() - started, failed)

    async def cancel(self, rid: int, reason: str) -> None:
        """The client cancelled: tell the backend, and end the waiting request (its reply is not wanted)."""
        pending = self._pending.get(rid)
        if pending is None:
            return
        link = self.links.get(pending.key)
        if link is not None and link.generation == pending.generation:
            notice = {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": rid, "reason": reason},
            }
            self._send_quietly(link.identity, Notify(body=jsonrpc.encode_json(notice)))
        self._fail(rid, error_codes.REQUEST_CANCELLED, f"Request cancelled by the client: {reason}")

    def _notify_change(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def settle_startup(self, window_s: float) -> None:
        """Within `window_s` of the gateway's start, wait until no configured backend is still STARTING, and
        every RUNNING one is linked.

        A client that lists tools right after connecting (desktop clients do, once) would otherwise see an
        empty list just because the backends are a second slower than the gateway; and right after a gateway
        restart, the workers (RUNNING all along) need a heartbeat and a resync to link to the new gateway.
        """
        deadline = self._born + window_s
        starting: list[str] = []
        while time.monotonic() < deadline:
            starting = [
                k
                for k, s in self.statuses.items()
                if s.state in (BackendState.STARTING, BackendState.RUNNING) and k not in self.links
            ]
            if self.snapshot_seen and not starting:
                return
            if starting and self._waiting_logged != starting:
                self._waiting_logged = starting
                log.info(
                    "Waiting up to %.1f s more for backends still starting: %s.",
                    deadline - time.monotonic(),
                    ", ".join(starting),
                )
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(0.0, deadline - time.monotonic()))
        if starting and not self._gave_up_waiting:
            self._gave_up_waiting = True
            log.warning(
                "Answering without backends still starting after %g s (STARTUP_WAIT_SECONDS): %s; their tools "
                "come with notifications/tools/list_changed once they are ready.",
                window_s,
                ", ".join(starting),
            )

    @property
    def in_flux(self) -> bool:
        """Whether the catalog is about to change: a backend starting, restarting or RUNNING but not yet linked."""
        return any(
            s.state in (BackendState.STARTING, BackendState.BACKOFF)
            or (s.state == BackendState.RUNNING and k not in self.links)
            for k, s in self.statuses.items()
        )

    def _describe_down(self, key: str) -> str:
        status = self.statuses.get(key)
        if status is None:
            return "it is not configured or not active"
        detail = f"state {status.state}" + (f" ({status.detail})" if status.detail else "")
        if status.last_exit:
            detail += f", last exit: {status.last_exit}"
        if status.last_error:
            detail += f", last error: {status.last_error}"
        if status.last_stderr:
            detail += f", its stderr said: {status.last_stderr}"
        return detail

    def _fail(self, rid: int, code: int, message: str) -> None:
        pending = self._pending.pop(rid, None)
        if pending is not None and not pending.future.done():
            pending.future.set_result((b"", jsonrpc.encode_json({"code": code, "message": message})))

    # ------------------------------------------------------------------ supervisor events

    def on_status(self, status: BackendStatus, event: str) -> None:
        """A state change reported by the supervisor; an exit fails that generation's requests at once.

        During a replacement two generations of one key live side by side: the newest generation's status is
        the one shown, but an older generation's exit still fails that generation's requests.
        """
        current = self.statuses.get(status.key)
        self._notify_change()
        if event == "removed":
            self.statuses.pop(status.key, None)
            self.last_links.pop(status.key, None)
        elif current is None or status.generation >= current.generation:
            self.statuses[status.key] = status
        if event in {"exited", "removed"}:
            self.worker_gone(status.key, status.generation, status.last_exit or "it exited")
        for listener in self.status_listeners:
            listener(status, event)

    def worker_gone(self, key: str, generation: int, why: str) -> None:
        link = self.links.get(key)
        if link is not None and link.generation <= generation:
            del self.links[key]
            self._on_catalog_change()
        message = (
            f'Backend "{key}" worker (generation {generation}) ended while this request was in flight ({why}); '
            "the request was not retried."
        )
        for rid, pending in list(self._pending.items()):
            if pending.key == key and pending.generation <= generation:
                self._fail(rid, error_codes.BACKEND_UNAVAILABLE, message)

    # ------------------------------------------------------------------ worker messages

    async def _read_loop(self) -> None:
        while True:
            identity, frame, peer = await self._router.recv()
            sender = self._senders.get(identity)
            if sender is None or identity != peer:
                sender = self._sender_of(identity, peer)
                if sender is None:
                    continue
            try:
                message = codec.decode_worker_to_gateway(frame)
            except ProtocolError as exc:
                log.error("%s", exc)
                continue
            key, generation = sender
            match message:
                case Reply(rid=rid, result=result, error=error):
                    pending = self._pending.get(rid)
                    if pending is None or pending.future.done():
                        continue  # answered, cancelled or timed out already
                    if pending.key != key or pending.generation != generation:
                        self._refuse(sender, f"a reply to request {rid}, which was routed elsewhere")
                        continue
                    pending.future.set_result((result, error))
                case Heartbeat() if message.key != key or message.generation != generation:
                    self._refuse(sender, f"a heartbeat in the name of {message.key}/{message.generation}")
                case Heartbeat():
                    self.metrics.notified(key, message.notifications_dropped, message.notifications_coalesced)
                    link = self.links.get(key)
                    if link is None or link.generation < generation:
                        # A worker we do not know (we restarted, or missed its ready): ask it to introduce itself.
                        self._send_quietly(identity, Resync())
                case WorkerReady() | BackendMessage() | CatalogChanged() if (
                    message.key != key or message.generation != generation
                ):
                    self._refuse(sender, f"a message in the name of {message.key}/{message.generation}")
                case WorkerReady():
                    self._on_ready(identity, message)
                case BackendMessage(body=body):
                    self._route_backend_message(key, generation, body)
                case CatalogChanged(kind=kind, items=items):
                    link = self.links.get(key)
                    if link is not None and link.generation == generation and kind in CATALOG_KINDS:
                        link.catalog[kind] = jsonrpc.decode_json(items)
                        self._on_catalog_change()

    def _sender_of(self, identity: bytes, peer: bytes) -> tuple[str, int] | None:
        """The (key, generation) a message really comes from, or None (dropped) when its routing identity is
        not the name its connection authenticated as."""
        parsed = socket_auth.parse_worker(peer.decode(errors="replace")) if identity == peer else None
        if parsed is None:
            self.metrics.refused_messages += 1
            log.warning(
                "Dropped a data-plane message from %r: its routing identity %r is not what it authenticated as.",
                peer.decode(errors="replace")[:80],
                identity.decode(errors="replace")[:80],
            )
            return None
        if len(self._senders) > 10_000:
            self._senders.clear()  # identities of long-gone generations; the live ones are re-learned at once
        self._senders[identity] = parsed
        return parsed

    def _refuse(self, sender: tuple[str, int], what: str) -> None:
        self.metrics.refused_messages += 1
        log.warning("Dropped %s from worker[%s] (generation %d).", what, *sender)

    def contexts_at(self, key: str) -> list[CallContext]:
        """Contexts of the requests in flight at backend `key`, oldest first."""
        at = self._pending_at.get(key)
        if not at:
            return []
        return [p.context for rid, p in at.items() if p.context is not None and rid in self._pending]

    def send_to_backend(self, key: str, generation: int, body: bytes) -> None:
        """A JSON-RPC message (a response to the backend's own request) for one worker generation."""
        link = self.links.get(key)
        if link is None or link.generation != generation:
            return  # that backend connection is gone, and its request with it
        self._send_quietly(link.identity, Notify(body=body))

    def _route_backend_message(self, key: str, generation: int, body: bytes) -> None:
        try:
            message = jsonrpc.decode_json(body)
        except Exception:
            log.warning("Backend %s sent an undecodable message.", key)
            return
        if not isinstance(message, dict):
            return
        params = message.get("params")
        if message.get("method") == "notifications/progress" and isinstance(params, dict):
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
            return  # progress for a request that has ended (or was never ours) goes nowhere
        self._on_backend_message(key, generation, message)

    def _on_ready(self, identity: bytes, ready: WorkerReady) -> None:
        current = self.links.get(ready.key)
        if current is not None and current.generation > ready.generation:
            return  # a late message from a generation already replaced
        status = self.statuses.get(ready.key)
        if status is not None and status.generation > ready.generation:
            return
        # A newer generation takes new requests at once; the old one drains what it has and its exit
        # (reported by the supervisor) fails whatever it could not finish.
        self.links[ready.key] = BackendLink(
            key=ready.key,
            generation=ready.generation,
            identity=identity,
            initialize_result=jsonrpc.decode_json(ready.initialize_result),
            catalog={kind: jsonrpc.decode_json(getattr(ready, kind)) for kind in CATALOG_KINDS},
            name_prefix=ready.name_prefix,
            display_name=ready.display_name,
            era=ready.era,
        )
        self.last_links[ready.key] = self.links[ready.key]
        self._notify_change()
        log.info("Backend %s (generation %d) is linked.", ready.key, ready.generation)
        self._on_catalog_change()

    def _send_quietly(self, identity: bytes, message: msgspec.Struct) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._router.send([identity, codec.encode(message)])
