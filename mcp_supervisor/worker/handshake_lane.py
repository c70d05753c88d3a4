"""A second, handshake-era connection to a dual-era backend, for the requests of handshake-era clients.

Design: docs/architecture.md, "The handshake lane".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec

from mcp_supervisor.errors import BackendError
from mcp_supervisor.protocol.error_codes import BACKEND_UNAVAILABLE
from mcp_supervisor.protocol.messages import Reply
from mcp_supervisor.tasks import BackgroundTasks
from mcp_supervisor.worker import envelope
from mcp_supervisor.worker.connection import BackendConnection
from mcp_supervisor.worker.era import handshake
from mcp_supervisor.worker.relay import BackendRelay

log = logging.getLogger("mcp_supervisor.worker")

ID_PREFIX = "mcps-hs-"
_MIRRORED = ("logging/setLevel", "resources/unsubscribe")
_ID_MARK = b'"mcps-hs-'
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

Opener = Callable[[], AbstractAsyncContextManager[BackendConnection]]
Send = Callable[[int, bytes], Coroutine[Any, Any, None]]


class HandshakeLane:
    def __init__(
        self,
        opener: Opener,
        send_reply: Callable[[Reply], None],
        on_list_changed: Callable[[str], Coroutine[Any, Any, None]],
        send_message: Callable[[bytes], None],
        name: str,
        roots: tuple[str, ...],
        timeout: float,
    ) -> None:
        self._opener = opener
        self._send_reply = send_reply
        self._on_list_changed = on_list_changed
        self._send_message = send_message
        self._name = name
        self._roots = roots
        self._timeout = timeout
        self._stop = asyncio.Event()
        self._holder: asyncio.Task[None] | None = None
        self._opening: asyncio.Future[BackendRelay | None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._tasks = BackgroundTasks()
        self.relay: BackendRelay | None = None
        self._level: dict[str, Any] | None = None  # the last logging/setLevel params the gateway sent
        self.refused = False  # the backend has no handshake era: everything goes on the primary connection
        # Done (with the reason) when the open lane's connection ends: the worker fails, as when its primary
        # connection ends (the backend failed).
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # ------------------------------------------------------------------ state

    @property
    def in_flight(self) -> int:
        return len(self.relay.in_flight) if self.relay is not None else 0

    @property
    def pid(self) -> int | None:
        connection = self.relay.connection if self.relay is not None else None
        pid = getattr(connection, "pid", None)
        return pid if isinstance(pid, int) else None

    async def idle(self) -> None:
        if self.relay is not None:
            await self.relay.idle.wait()

    # ------------------------------------------------------------------ gateway → backend

    async def take(self, rid: int, body: bytes, fallback: Send) -> None:
        """Send a handshake-era client's request over the lane; `fallback` sends it on the primary connection
        when the backend has no handshake era. Once the lane is open it is sent at once, in order; before, the
        request waits for the opening in a task of its own (the worker's loop goes on meanwhile)."""
        if self.relay is None:
            self._spawn(self._forward(rid, body, fallback))
            return
        await self._forward(rid, body, fallback)

    async def _forward(self, rid: int, body: bytes, fallback: Send) -> None:
        relay = self.relay or await self._open()
        try:
            if relay is None:
                await fallback(rid, body)
            else:
                await relay.forward(rid, envelope.strip(body))
        except (OSError, ValueError) as exc:
            error = {"code": BACKEND_UNAVAILABLE, "message": f"The backend could not be sent the request: {exc}"}
            self._send_reply(Reply(rid=rid, error=_encode(error)))

    def mirror(self, body: bytes) -> None:
        """A request the gateway sends for nobody in particular (no client era): the shared log level, or the
        release of a resource subscription no session holds any more. Both concern the lane's connection too (a
        handshake-era client's subscription was made there): it gets the same, as a request of the worker's
        own, whose answer nobody waits for. The level is kept for a lane opened later."""
        if b'"logging/setLevel"' not in body and b'"resources/unsubscribe"' not in body:
            return
        with contextlib.suppress(msgspec.DecodeError, RecursionError):
            message = _decode(body)
            method, params = message.get("method"), message.get("params")
            if method not in _MIRRORED or not isinstance(params, dict):
                return
            if method == "logging/setLevel":
                self._level = params
            if self.relay is not None:
                self._spawn(self._own(self.relay, method, params))

    async def _own(self, relay: BackendRelay, method: str, params: dict[str, Any]) -> None:
        with contextlib.suppress(BackendError, OSError, ValueError):
            await relay.exchange(method, params, self._timeout)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(work)

    def claims(self, body: bytes) -> bool:
        """Whether a notification from the gateway is the lane's: an answer to one of its backend's requests, a
        cancellation of a request in flight on it, or a change of a client's roots (a handshake-era
        notification, which the 2026-07-28 connection drops)."""
        if self.relay is None:
            return False
        if _ID_MARK in body or b"notifications/roots/list_changed" in body:
            return True
        if b"notifications/cancelled" in body:
            with contextlib.suppress(msgspec.DecodeError, RecursionError, AttributeError):
                request_id = _decode(body).get("params", {}).get("requestId")
                return isinstance(request_id, int) and request_id in self.relay.in_flight
        return False

    async def send_raw(self, body: bytes) -> None:
        """A notification the lane claimed (see `claims`): an answer goes back under the backend's own id."""
        assert self.relay is not None
        if _ID_MARK in body:
            message = _decode(body)
            if isinstance(message, dict) and isinstance(message.get("id"), str):
                message["id"] = _restore(message["id"])
                await self.relay.connection.send(_encode(message))
                return
        await self.relay.send_raw(body)

    # ------------------------------------------------------------------ backend → gateway

    def _from_backend(self, raw: bytes) -> None:
        """The lane's backend's own request (or its cancellation of one): into the lane's id space."""
        message = _decode(raw)
        if isinstance(message, dict):
            if "id" in message:
                message["id"] = ID_PREFIX + _encode(message["id"]).decode()
                raw = _encode(message)
            elif message.get("method") == "notifications/cancelled":
                params = message.get("params")
                if isinstance(params, dict) and "requestId" in params:
                    params["requestId"] = ID_PREFIX + _encode(params["requestId"]).decode()
                    raw = _encode(message)
        self._send_message(raw)

    # ------------------------------------------------------------------ opening and closing

    async def _open(self) -> BackendRelay | None:
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._connect())
        return await asyncio.shield(self._opening)

    async def _hold(self, ready: asyncio.Future[BackendConnection]) -> None:
        """The lane's connection lives in this one task (the SDK's HTTP transport must be left by the task that
        entered it), until `aclose`."""
        async with self._opener() as connection:
            ready.set_result(connection)
            await self._stop.wait()

    async def _connect(self) -> BackendRelay | None:
        if self.refused:
            return None
        ready: asyncio.Future[BackendConnection] = asyncio.get_running_loop().create_future()
        self._holder = asyncio.create_task(self._hold(ready))
        try:
            await asyncio.wait((ready, self._holder), return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                self._holder.result()  # raises why the connection could not be opened
                raise BackendError("the second connection closed at once")
            relay = BackendRelay(
                ready.result(), self._send_reply, self._on_list_changed, self._from_backend, self._name, self._roots
            )
            self._pump = asyncio.create_task(relay.pump())
            opened = asyncio.ensure_future(handshake(relay, self._timeout))
            await asyncio.wait({opened, self._pump}, return_when=asyncio.FIRST_COMPLETED)
            if not opened.done():
                opened.cancel()
                raise BackendError("the second connection ended during the handshake")
            negotiated = opened.result()
        except Exception as exc:  # any failure means: no second era here
            log.info(
                "Backend %s: no handshake-era connection besides the 2026-07-28 one (%s); handshake-era clients' "
                "requests go on the 2026-07-28 connection.",
                self._name,
                _describe(exc),
            )
            self.refused = True
            await self._close_connection()
            return None
        self._pump.add_done_callback(self._pump_ended)
        log.info(
            "Backend %s: a handshake-era connection (%s) serves the handshake-era clients.",
            self._name,
            negotiated.protocol_version,
        )
        self.relay = relay
        if self._level is not None:
            self._spawn(self._own(relay, "logging/setLevel", self._level))
        return relay

    def _pump_ended(self, pump: asyncio.Task[None]) -> None:
        if self.ended.done():
            return
        if pump.cancelled() or pump.exception() is None:
            self.ended.set_result(None)
        else:
            self.ended.set_exception(pump.exception())  # type: ignore[arg-type]

    async def _close_connection(self) -> None:
        if self._pump is not None:
            self._pump.remove_done_callback(self._pump_ended)
            self._pump.cancel()
        self._stop.set()
        if self._holder is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._holder
        self._holder = None

    async def aclose(self) -> None:
        self._tasks.cancel_all()
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        await self._close_connection()
        self.relay = None
        if not self.ended.done():
            self.ended.cancel()


def _restore(lane_id: str) -> Any:
    """The backend's own id from its lane id (a JSON value after the prefix)."""
    try:
        return _decode(lane_id[len(ID_PREFIX) :])
    except msgspec.DecodeError:
        return lane_id


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return str(exc) or type(exc).__name__


def requests_in_flight(relay: BackendRelay | None, lane: HandshakeLane | None) -> int:
    """The worker's requests in flight, on both of its connections."""
    return (len(relay.in_flight) if relay is not None else 0) + (lane.in_flight if lane is not None else 0)


async def idle(relay: BackendRelay, lane: HandshakeLane | None) -> None:
    """Until neither connection has a request in flight (a draining worker waits for it)."""
    await relay.idle.wait()
    if lane is not None:
        await lane.idle()
    await relay.idle.wait()


def mirror(lane: HandshakeLane | None, body: bytes) -> None:
    """`HandshakeLane.mirror`, for a worker that may have no lane."""
    if lane is not None:
        lane.mirror(body)
