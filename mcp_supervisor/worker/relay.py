"""The relay between the gateway and the one backend connection, on raw JSON bytes.

Ids: the gateway rewrites every client request id to a gateway-wide integer (`rid`) before forwarding, so ids
from many client sessions never collide on the shared backend connection, and the worker writes the
gateway's bytes verbatim. The worker's own requests (initialize, tools/list) use string ids `mcps-<n>`, a
disjoint space. Of a backend message only the envelope is decoded: `result`/`error` stay raw JSON
(`msgspec.Raw`) and travel to the gateway as they came.

Eras (worker/era.py decides, at connect): toward a handshake-era backend the only change to the gateway's
bytes is that the 2026-07-28 `_meta` envelope keys are stripped (one bytes scan; decoded only when present).
Toward a modern backend, worker/modern.py completes the envelope, answers what the era removed, and keeps the
`subscriptions/listen` stream that brings change notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from mcp_supervisor.errors import BackendError
from mcp_supervisor.log_sparingly import Sparingly
from mcp_supervisor.protocol.error_codes import INTERNAL_ERROR, METHOD_NOT_FOUND
from mcp_supervisor.protocol.messages import Reply
from mcp_supervisor.worker import envelope
from mcp_supervisor.worker.budget import NotificationBudget
from mcp_supervisor.worker.coalesce import Coalesced
from mcp_supervisor.worker.connection import BackendConnection
from mcp_supervisor.worker.modern import ModernHop
from mcp_supervisor.worker.own_requests import no_caller_error, roots_result

log = logging.getLogger("mcp_supervisor.worker")

# Where an unreadable line would have kept its request id, were it JSON: enough to answer that request.
_ID = re.compile(rb'"id"\s*:\s*(-?[0-9]{1,18})\b')
_OWN_ID_PREFIX = "mcps-"
_SUBSCRIPTION_TAG = envelope.SUBSCRIPTION_ID.encode()
LOG_WINDOW_S = 10.0  # a misbehaving backend's unreadable lines and stray replies: one log line per kind per window


class Envelope(msgspec.Struct):
    """The routing part of a JSON-RPC message; the payload stays raw."""

    id: int | str | None = None
    method: str | None = None
    result: msgspec.Raw = msgspec.Raw()
    error: msgspec.Raw = msgspec.Raw()


_decode_envelope = msgspec.json.Decoder(Envelope).decode


class _ErrorShape(msgspec.Struct):
    """What JSON-RPC requires of an error object (extra members, such as data, are allowed)."""

    code: int
    message: str


_decode_error_shape = msgspec.json.Decoder(_ErrorShape).decode


def _reply_problem(reply: Envelope) -> str:
    """What makes a reply unusable, or "" (the usual case: one length check)."""
    if len(reply.error):
        try:
            _decode_error_shape(reply.error)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return f"its error is not an object with an integer code and a message ({bytes(reply.error)[:100]!r})"
        return ""
    if not len(reply.result):
        return "it has neither a result nor an error"
    return ""


class _CancelParams(msgspec.Struct):
    requestId: int | str | None = None


class _Cancellation(msgspec.Struct):
    method: str = ""
    params: _CancelParams = msgspec.field(default_factory=_CancelParams)


_decode_cancellation = msgspec.json.Decoder(_Cancellation).decode
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


# Catalog kind → (list method, result field, capability the backend must declare).
CATALOG_METHODS = {
    "tools": ("tools/list", "tools", "tools"),
    "resources": ("resources/list", "resources", "resources"),
    "resource_templates": ("resources/templates/list", "resourceTemplates", "resources"),
    "prompts": ("prompts/list", "prompts", "prompts"),
}
# Which kinds a `notifications/<x>/list_changed` refreshes.
LIST_CHANGED = {
    "notifications/tools/list_changed": ("tools",),
    "notifications/resources/list_changed": ("resources", "resource_templates"),
    "notifications/prompts/list_changed": ("prompts",),
}


class BackendMethodMissing(BackendError):
    """The backend answered -32601 to one of our own requests."""


class BackendClosed(BackendError):
    """The backend connection ended (process exited, HTTP stream closed)."""


class BackendRelay:
    def __init__(
        self,
        connection: BackendConnection,
        send_reply: Callable[[Reply], None],
        on_list_changed: Callable[[str], Coroutine[Any, Any, None]],
        send_message: Callable[[bytes], None] | None = None,
        name: str = "backend",
        roots: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self._send_message = send_message
        # What the gateway routes of the backend's notifications, within a per-backend budget (budget.py).
        self.budget = NotificationBudget(send_message, name) if send_message is not None else None
        # The server entry's `roots`: when set, the backend's roots/list is always answered with them.
        self.roots = roots
        self.connection = connection
        self._send_reply = send_reply
        # A catalog refresh per kind at a time, plus one pending: a list_changed flood is a few refreshes.
        self._refreshes = Coalesced(on_list_changed)
        self.capabilities: dict[str, Any] = {}
        self._own_ids = itertools.count(1)
        # The worker's own requests by id → their reply's decoded (result, error).
        self._own_pending: dict[str, asyncio.Future[tuple[Any, Any]]] = {}
        # Set once the backend turned out to speak 2026-07-28 (worker/era.py).
        self.modern: ModernHop | None = None
        # Gateway requests sent to the backend and not answered yet: what a draining worker waits for.
        self.in_flight: set[int] = set()
        self.refused_replies = 0
        self.unreadable = 0
        self._sparingly = Sparingly(LOG_WINDOW_S)  # a backend cannot flood the log with either of the above
        self.idle = asyncio.Event()
        self.idle.set()

    # ------------------------------------------------------------------ outgoing

    def speak_modern(self, protocol_version: str, capabilities: dict[str, Any], timeout: float = 10.0) -> None:
        """From now on the backend is spoken to in the 2026-07-28 era (see worker/modern.py)."""
        self.capabilities = capabilities if isinstance(capabilities, dict) else {}
        self.connection.negotiated(protocol_version)
        self.modern = ModernHop(
            protocol_version, self.capabilities, self._send_reply, self.open_stream, self.close_stream, timeout
        )

    async def forward(self, rid: int, body: bytes) -> None:
        """Relay a gateway-built JSON-RPC request (already carrying its rid) to the backend: verbatim but for
        the era's envelope (stripped toward a legacy backend, completed toward a modern one)."""
        if self.modern is not None:
            prepared = self.modern.outgoing(rid, body)
            if prepared is None:
                return  # answered here
            body = prepared
        elif envelope.PREFIX in body:
            body = envelope.strip(body)
        self.in_flight.add(rid)
        self.idle.clear()
        try:
            await self.connection.send(body)
        except Exception:
            self._settled(rid)
            raise

    def _settled(self, rid: int) -> None:
        self.in_flight.discard(rid)
        if not self.in_flight:
            self.idle.set()

    async def open_stream(self, method: str, params: dict[str, Any] | None) -> tuple[str, asyncio.Future[Any]]:
        """Send one of our own requests; return its id and the future of its reply's (result, error)."""
        request_id = f"{_OWN_ID_PREFIX}{next(self._own_ids)}"
        future: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        self._own_pending[request_id] = future
        if self.modern is not None and method != "server/discover":
            params = self.modern.own_params(params)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            await self.connection.send(_encode(message))
        except BaseException:
            self._own_pending.pop(request_id, None)
            raise
        return request_id, future

    async def close_stream(self, request_id: str) -> None:
        """Give up one of our own requests (a listen stream): cancelled toward the backend, its reply unwanted."""
        future = self._own_pending.pop(request_id, None)
        if future is not None:
            future.cancel()
        notice = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
        with contextlib.suppress(OSError, ValueError):
            await self.connection.send(_encode(notice))

    async def exchange(self, method: str, params: dict[str, Any] | None, timeout: float) -> tuple[Any, Any]:
        """One of our own requests: its reply's decoded (result, error); BackendError when none came in time."""
        request_id, future = await self.open_stream(method, params)
        try:
            reply: tuple[Any, Any] = await asyncio.wait_for(future, timeout)
            return reply
        except TimeoutError:
            raise BackendError(f"The backend did not answer {method} within {timeout:g} s.") from None
        finally:
            self._own_pending.pop(request_id, None)

    async def request(self, method: str, params: dict[str, Any] | None, timeout: float) -> Any:
        result, error = await self.exchange(method, params, timeout)
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else error
            kind = BackendMethodMissing if code == METHOD_NOT_FOUND else BackendError
            raise kind(f"The backend answered {method} with error {code}: {message}")
        return result

    async def notify(self, method: str) -> None:
        await self.connection.send(_encode({"jsonrpc": "2.0", "method": method}))

    async def send_raw(self, body: bytes) -> None:
        """A gateway-built notification, verbatim; a cancellation also settles its request (no reply will come)."""
        if self.modern is not None:
            prepared = self.modern.notification(body)
            if prepared is None:
                return
            body = prepared
        await self.connection.send(body)
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            cancelled = _decode_cancellation(body)
            if cancelled.method == "notifications/cancelled" and isinstance(cancelled.params.requestId, int):
                self._settled(cancelled.params.requestId)

    async def list_all(self, kind: str, timeout: float) -> list[Any]:
        """Every page of one catalog kind, concatenated; [] when the backend does not offer it."""
        method, field, capability = CATALOG_METHODS[kind]
        if capability not in self.capabilities:
            return []
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(10_000):
            try:
                result = await self.request(method, {"cursor": cursor} if cursor else None, timeout)
            except BackendMethodMissing:
                return items  # e.g. resources without templates
            items.extend(result.get(field) or [])
            cursor = result.get("nextCursor")
            if not cursor:
                return self.connection.accept_tools(items) if kind == "tools" else items
        raise BackendError(f"The backend's {method} pagination did not end after 10000 pages.")

    async def _answer(self, request_id: int | str, result: Any = None, error: Any = None) -> None:
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if error is not None:
            reply["error"] = error
        else:
            reply["result"] = result
        await self.connection.send(_encode(reply))

    # ------------------------------------------------------------------ incoming

    def _invalid_reply(self, problem: str) -> bytes:
        message = f'Backend "{self.name}" sent an invalid reply: {problem}.'
        return _encode({"code": INTERNAL_ERROR, "message": message})

    def _unreadable(self, raw: bytes, exc: Exception) -> None:
        """A line that is not JSON-RPC at all. If it names a request in flight, that request gets an error now
        rather than waiting for its timeout; otherwise it is logged (at most once per LOG_WINDOW_S) and dropped."""
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc) or type(exc).__name__
        found = _ID.search(raw[:4096])
        rid = int(found.group(1)) if found else None
        self.unreadable += 1
        self._sparingly.log(
            log,
            logging.WARNING,
            "unreadable",
            "The backend sent an unreadable message (%s, %d so far): %.200r",
            reason,
            self.unreadable,
            raw,
        )
        if rid is not None and rid in self.in_flight:
            self._settled(rid)
            self._send_reply(Reply(rid=rid, error=self._invalid_reply(f"not valid JSON ({reason})")))

    async def pump(self) -> None:
        """Read backend messages until the connection ends; then raise BackendClosed."""
        async for raw in self.connection.messages():
            try:
                head = _decode_envelope(raw)
                raw.decode()  # invalid UTF-8 would reach clients as it came (msgspec does not check Raw parts)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError) as exc:
                self._unreadable(raw, exc)
                continue
            if self.modern is not None and head.id is None and head.method and _SUBSCRIPTION_TAG in raw:
                untagged = self.modern.incoming(head.method, raw)  # a listen stream's frame
                if untagged is None:
                    continue
                raw = untagged
            await self._dispatch(head, raw)
        raise BackendClosed("The backend closed the connection.")

    async def _dispatch(self, message: Envelope, raw: bytes) -> None:
        match message:
            case Envelope(method=None, id=int() as rid) if rid not in self.in_flight:
                # An id it was never sent, or one already answered or cancelled: a confused backend, or one
                # fishing for other callers' requests. The gateway would drop it too; it never gets that far.
                # Counted (heartbeats carry the count to `status` and /metrics); logged at most once per
                # LOG_WINDOW_S, so that a backend cannot flood the log with them.
                self.refused_replies += 1
                self._sparingly.log(
                    log,
                    logging.WARNING,
                    "refused",
                    "The backend answered request id %d, which it has no request for; dropped (%d so far).",
                    rid,
                    self.refused_replies,
                )
            case Envelope(method=None, id=int() as rid):
                self._settled(rid)
                if self.budget is not None:
                    self.budget.before_reply(rid)  # its last progress, if one waits, comes before it
                problem = _reply_problem(message)
                if problem:
                    self._send_reply(Reply(rid=rid, error=self._invalid_reply(problem)))
                elif len(message.error):
                    self._send_reply(Reply(rid=rid, error=bytes(message.error)))
                else:
                    self._send_reply(Reply(rid=rid, result=bytes(message.result)))
            case Envelope(method=None, id=str() as own_id):
                future = self._own_pending.pop(own_id, None)
                if future is not None and not future.done():
                    problem = _reply_problem(message)
                    if problem:
                        future.set_result((None, {"code": INTERNAL_ERROR, "message": f"invalid reply: {problem}"}))
                    else:
                        result = _decode(message.result) if len(message.result) else None
                        future.set_result((result, _decode(message.error) if len(message.error) else None))
            case Envelope(method="ping", id=request_id) if request_id is not None:
                await self.connection.send(_encode({"jsonrpc": "2.0", "id": request_id, "result": {}}))
            case Envelope(method="roots/list", id=request_id) if request_id is not None and (
                self.roots or not self.in_flight
            ):
                await self._answer(request_id, result=roots_result(self.roots))
            case Envelope(method=str() as method, id=request_id) if request_id is not None and not self.in_flight:
                await self._answer(request_id, error=no_caller_error(method))  # no client to ask (see own_requests)
            case Envelope(id=request_id) if request_id is not None and self._send_message is not None:
                self._send_message(raw)  # sampling, elicitation, roots: the gateway finds the client
            case Envelope(method=method, id=request_id) if request_id is not None:
                error = {"code": METHOD_NOT_FOUND, "message": f"Nobody here can answer {method}."}
                await self.connection.send(_encode({"jsonrpc": "2.0", "id": request_id, "error": error}))
            case Envelope(method=str() as method) if method in LIST_CHANGED:
                for kind in LIST_CHANGED[method]:
                    self._refreshes.request(kind)
            case Envelope(method=str() as method) if self.budget is not None:
                self.budget.offer(method, raw)  # progress, logging, resource updates: the gateway routes them
            case Envelope(method=str() as method):
                log.debug("Ignoring backend notification %s", method)
            case _:
                log.warning("The backend sent a message without method or id.")
