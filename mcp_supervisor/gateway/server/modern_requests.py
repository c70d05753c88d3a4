"""2026-07-28 requests in the core: one context per request, no session, and multi-round-trip requests.

A modern request brings its own context (`_meta`: version, client capabilities, client info, log level): the
front end builds a `RequestContext` from it (request_context.envelope_context), with no session (nothing is
broadcast to it, no quota counts it), and the era-neutral core serves it. Its reply is reshaped for the era
(modern.py).

Server→client requests cannot travel in this era. When a handshake-era backend sends one (sampling,
elicitation, roots) during a modern client's tools/call, prompts/get or resources/read, the gateway holds
the backend's request and the call still in flight (a `Held` entry), answers the client with an
`InputRequiredResult` whose sealed `requestState` names the entry, and resumes it when the client retries with
`inputResponses`: the backend gets its answer, and the client the call's result (or the next round). An
entry nobody comes back for expires after INPUT_REQUIRED_TIMEOUT_SECONDS: the backend's requests get an
error, and its call is cancelled. A 2026-07-28 backend's own InputRequiredResult passes through, its
requestState wrapped so that it is bound to the principal (request_state.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.server import jsonrpc, modern
from mcp_supervisor.gateway.server.envelope_ladder import Rejection
from mcp_supervisor.gateway.server.held_budget import HeldBytes
from mcp_supervisor.gateway.server.jsonrpc import Incoming
from mcp_supervisor.gateway.server.modern import CacheHint, Shaped
from mcp_supervisor.gateway.server.request_context import Emit, RequestContext
from mcp_supervisor.gateway.server.request_state import Binding, RequestStateSealer, StateRejected
from mcp_supervisor.gateway.server.tool_search import binding_name
from mcp_supervisor.protocol import error_codes
from mcp_supervisor.protocol.versions import MODERN_VERSIONS

log = logging.getLogger("mcp_supervisor.gateway")

# How long a backend's input requests are gathered into one round after the first.
INPUT_SETTLE_S = 0.03


@dataclass(frozen=True, slots=True)
class ModernPorts:
    """What 2026-07-28 requests need of the rest of the gateway (and nothing else of it)."""

    serve: Callable[[RequestContext, Incoming], Awaitable[bytes]]  # the era-neutral core's handle_request
    answer_input: Callable[..., bool]  # ServerRequests.answer(gateway_id, result=…, error=…)
    cancel: Callable[[int, str], Awaitable[None]]  # a request in flight at a backend, by its rid
    keep: Callable[[asyncio.Future[Any]], None]  # hold a background task
    settle: Callable[[], Awaitable[None]]  # until the starting backends have linked
    capabilities: Callable[[], dict[str, Any]]  # the gateway's, over the linked backends
    owner: Callable[[str, str], str]  # (method, name or URI) → the backend it routes to, or ""
    in_flux: Callable[[], bool]  # a backend is starting, restarting or not linked: the catalog may change
    private_views: Callable[[], bool]  # clients.json gives principals different views


@dataclass(eq=False)
class Held:
    """A modern request's call that is waiting for its client's answers."""

    binding: Binding
    context: RequestContext
    original_id: jsonrpc.RequestId
    task: asyncio.Future[bytes] | None = None
    # Input key (the gateway id of the backend's request) → the request, not yet shown to the client.
    new: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Shown to the client, waiting for its inputResponses.
    asked: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    emit_to: Emit | None = None
    timer: asyncio.TimerHandle | None = None
    # What it costs the gateway, roughly (held_budget.py): its params, plus the input requests it asks.
    charged: int = 0
    # Waiting for its client's retry (its backend waits for our answer): a new server→client request from that
    # backend is another call's.
    parked: bool = False
    # Takes its backend's server→client requests (until abandoned: then they go the handshake era's way).
    holding: bool = True

    def on_input(self, gateway_id: str, message: dict[str, Any]) -> None:
        self.new[gateway_id] = {"method": message.get("method"), "params": message.get("params") or {}}
        self.changed.set()

    def emit(self, data: bytes, droppable: bool) -> None:
        """Progress of the call goes to whichever request of the client is waiting for it now."""
        if self.emit_to is not None:
            self.emit_to(data, droppable)


class ModernRequests:
    def __init__(self, settings: Settings, ports: ModernPorts) -> None:
        self.ports = ports
        self.timeout_s = settings.input_required_timeout_s
        self.catalog_ttl_s = settings.catalog_ttl_s
        self.max_held_per_credential = settings.max_sessions_per_credential
        self.sealer = RequestStateSealer(settings.request_state_secret, settings.input_required_timeout_s)
        self._held: dict[str, Held] = {}
        self._handles = itertools.count(1)
        self.budget = HeldBytes(settings.held_bytes_per_credential, settings.held_bytes)

    # ------------------------------------------------------------------ entry

    async def handle(self, context: RequestContext, message: Incoming) -> Shaped:
        """One modern request (not subscriptions/listen, which is a stream: see listen_streams.py)."""
        assert message.id is not None and message.method is not None
        method = message.method
        if method in modern.REMOVED_METHODS:
            return self._reject(message.id, Rejection(error_codes.METHOD_NOT_FOUND, f"Method not found: {method}."))
        if method == "server/discover":
            return modern.shape_reply(await self._discover(message.id), method, self.hint(method), message.id)
        try:
            if method in modern.INPUT_REQUIRED_METHODS:
                reply = await self._interactive(context, message)
                if isinstance(reply, Shaped):
                    return reply
            else:
                reply = await self.ports.serve(context, message)
        except asyncio.CancelledError:
            self._cancel_at_backend(context, message.id, "the client closed the request's stream")
            raise
        return modern.shape_reply(reply, method, self.hint(method), message.id, message.params.get("uri"))

    def hint(self, method: str) -> CacheHint:
        """The gateway's own caching hints. The catalog may be cached for CATALOG_TTL_SECONDS while every
        backend is up and linked; while one is starting, restarting or not yet linked it is about to change,
        and the TTL is 0. Lists are "private" when clients.json gives principals different views. A resource's
        content is the backend's business: 0 and "private" unless a modern backend said otherwise."""
        if method == "resources/read":
            return CacheHint(0, "private")
        ttl = 0 if self.ports.in_flux() else int(self.catalog_ttl_s * 1000)
        scope = "private" if self.ports.private_views() and method != "server/discover" else "public"
        return CacheHint(ttl, scope)

    async def _discover(self, request_id: jsonrpc.RequestId) -> bytes:
        await self.ports.settle()
        result = {"supportedVersions": list(MODERN_VERSIONS), "capabilities": self.ports.capabilities()}
        return jsonrpc.result_bytes(request_id, result)

    def _reject(self, request_id: jsonrpc.RequestId, rejection: Rejection) -> Shaped:
        return Shaped(modern.error_reply(request_id, rejection), rejection.code)

    def _cancel_at_backend(self, context: RequestContext, request_id: jsonrpc.RequestId, reason: str) -> None:
        rid = context.in_flight.get(request_id)
        if rid is not None:
            task = asyncio.ensure_future(self.ports.cancel(rid, reason))
            self.ports.keep(task)

    # ------------------------------------------------------------------ multi-round-trip requests

    def _binding(self, context: RequestContext, message: Incoming) -> Binding:
        params = message.params
        name = params.get("uri") if message.method == "resources/read" else binding_name(params)
        return Binding(context.principal, str(message.method), str(name))

    async def _interactive(self, context: RequestContext, message: Incoming) -> bytes | Shaped:
        assert message.id is not None
        binding = self._binding(context, message)
        params = message.params
        state = params.get("requestState")
        if state is None:
            size = len(jsonrpc.encode_json(params))
            refusal = self.budget.refusal(context.principal, size)
            if refusal:
                return self._reject(message.id, Rejection(error_codes.OVER_BUDGET, f"Not accepted: {refusal}."))
            held = Held(binding, context, message.id, emit_to=context.emit, charged=size)
            self.budget.charge(context.principal, size)
            # The call's own context: its messages go to whichever request of the client waits for it now, and
            # its backend's server→client requests are held with it.
            held.context = dataclasses.replace(context, emit=held.emit, inputs=held)
            held.task = asyncio.ensure_future(self.ports.serve(held.context, message))
            held.task.add_done_callback(lambda _: held.changed.set())
            return await self._progress(held, message.id)
        try:
            kind, value, backend = self.sealer.unseal(state, binding)
        except StateRejected as why:
            log.info("A requestState from %s was refused: %s.", context.principal, why)
            return self._reject(
                message.id, Rejection(error_codes.INVALID_PARAMS, "Invalid params: the requestState does not verify.")
            )
        if kind == "backend":
            # A 2026-07-28 backend's own state: unwrapped for it, and the request forwarded as usual.
            raw = {**message.raw, "params": {**params, "requestState": value}}
            unwrapped = Incoming(raw, message.id, message.method)
            return self._wrap_backend_state(await self.ports.serve(context, unwrapped), binding, backend)
        held_entry = self._unhold(value)
        if held_entry is None or held_entry.binding != binding:
            if held_entry is not None:
                self._abandon(held_entry, "its requestState was presented for another request")
            return self._reject(
                message.id,
                Rejection(
                    error_codes.INVALID_PARAMS,
                    "Invalid params: the held request this requestState names is gone (it expired, was answered, "
                    "or was held by another replica).",
                ),
            )
        held_entry.emit_to = context.emit
        held_entry.parked = False
        responses = params.get("inputResponses")
        responses = responses if isinstance(responses, dict) else {}
        for key in list(held_entry.asked):
            if key in responses:
                del held_entry.asked[key]
                self.ports.answer_input(key, result=responses[key])
        if held_entry.asked:
            return self._input_required(held_entry, message.id)  # asked again for what the retry lacked
        return await self._progress(held_entry, message.id)

    async def _progress(self, held: Held, request_id: jsonrpc.RequestId) -> bytes | Shaped:
        """Wait until the call ends (its result is this request's) or needs the client (an InputRequiredResult)."""
        assert held.task is not None
        try:
            while True:
                # Cleared before the checks, never after: a call that ends meanwhile (its done callback sets
                # it) is seen by the checks or wakes the wait. Clearing after `_settle`, which returns when
                # the call ended, lost that wake-up: the client got no answer at all (issue 22).
                held.changed.clear()
                if held.task.done():
                    self._abandon(held, "the call ended without them")  # requests it left unanswered, if any
                    return self._wrap_backend_state(held.task.result(), held.binding, "")
                if held.new:
                    await self._settle(held)  # a backend may send several requests at once: one round
                    if not held.task.done():
                        return self._input_required(held, request_id)
                    continue  # it ended while settling: its result is the answer
                await held.changed.wait()  # set by a new input request, or by the call's end
        except asyncio.CancelledError:
            self._abandon(held, "the client closed the request's stream")
            raise

    @staticmethod
    async def _settle(held: Held) -> None:
        """Until no new input request came for INPUT_SETTLE_S (or the call ended)."""
        while not (held.task is not None and held.task.done()):
            held.changed.clear()
            try:
                await asyncio.wait_for(held.changed.wait(), INPUT_SETTLE_S)
            except TimeoutError:
                return

    def _input_required(self, held: Held, request_id: jsonrpc.RequestId) -> Shaped:
        extra = sum(len(jsonrpc.encode_json(asked)) for asked in held.new.values())
        refusal = self.budget.refusal(held.binding.principal, extra)
        if refusal:
            self._abandon(held, refusal)
            return self._reject(request_id, Rejection(error_codes.OVER_BUDGET, f"Not held: {refusal}."))
        self.budget.charge(held.binding.principal, extra)
        held.charged += extra
        held.asked.update(held.new)
        held.new.clear()
        held.parked = True
        held.emit_to = None
        handle = f"h{next(self._handles)}"
        self._bound(held.binding.principal)
        self._hold(handle, held)
        held.timer = asyncio.get_running_loop().call_later(self.timeout_s, self._expire, handle)
        result = {
            "resultType": "input_required",
            "inputRequests": dict(held.asked),
            "requestState": self.sealer.seal(held.binding, "held", handle),
            "_meta": {modern.SERVER_INFO_KEY: modern.SERVER_INFO},
        }
        return Shaped(jsonrpc.result_bytes(request_id, result), None)

    def _bound(self, principal: str) -> None:
        """A credential holds at most MAX_SESSIONS_PER_CREDENTIAL waiting calls (each holds a backend call):
        past it, its oldest is abandoned, so it can crowd out nobody but itself."""
        own = [handle for handle, held in self._held.items() if held.binding.principal == principal]
        for handle in own[: max(0, len(own) - self.max_held_per_credential + 1)]:
            held = self._unhold(handle)
            if held is not None:
                self._abandon(held, "its credential holds too many requests waiting for input")

    def _hold(self, handle: str, held: Held) -> None:
        self._held[handle] = held

    def _unhold(self, handle: str) -> Held | None:
        """A held call taken out (retried, expired, evicted), its timer stopped; its bytes stay charged until
        it ends (`_abandon`)."""
        held = self._held.pop(handle, None)
        if held is not None and held.timer is not None:
            held.timer.cancel()
            held.timer = None
        return held

    def _expire(self, handle: str) -> None:
        held = self._unhold(handle)
        if held is not None:
            log.info(
                "A held %s %s of %s expired: the client did not retry within %g s.",
                held.binding.method,
                held.binding.name,
                held.binding.principal,
                self.timeout_s,
            )
            self._abandon(held, f"the client did not retry within {self.timeout_s:g} s")

    def _abandon(self, held: Held, reason: str) -> None:
        """Nobody will take the call's result: its backend requests fail, and the call is cancelled."""
        error = {"code": error_codes.REQUEST_TIMEOUT, "message": f"Abandoned: {reason}."}
        for key in [*held.asked, *held.new]:
            self.ports.answer_input(key, error=error)
        held.asked.clear()
        held.new.clear()
        self.budget.release(held.binding.principal, held.charged)
        held.charged = 0
        held.holding = False
        held.parked = False
        if held.task is not None and not held.task.done():
            self._cancel_at_backend(held.context, held.original_id, reason)

    def _wrap_backend_state(self, reply: bytes, binding: Binding, backend: str) -> bytes:
        """A 2026-07-28 backend's InputRequiredResult: its requestState sealed to the principal and request."""
        if b'"input_required"' not in reply:
            return reply
        message = jsonrpc.decode_json(reply)
        result = message.get("result")
        if not isinstance(result, dict) or result.get("resultType") != "input_required":
            return reply
        state = result.get("requestState")
        if isinstance(state, str):
            route = self.ports.owner(binding.method, binding.name)
            result = {**result, "requestState": self.sealer.seal(binding, "backend", state, backend or route)}
        return jsonrpc.encode_json({**message, "result": result})
