"""Requests a backend sends to the client (sampling/createMessage, elicitation/create, roots/list, …).

Design: docs/architecture.md, "Server-to-client requests".
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from mcp_supervisor.gateway.dataplane.backends import Backends, CallContext
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.jsonrpc import Incoming
from mcp_supervisor.gateway.server.request_context import RequestContext
from mcp_supervisor.gateway.server.sessions import ClientSession
from mcp_supervisor.gateway.server.turns import FairTurns
from mcp_supervisor.protocol import error_codes
from mcp_supervisor.protocol.versions import Era

log = logging.getLogger("mcp_supervisor.gateway")

# Method → the client capability it needs.
REQUIRED_CAPABILITY = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}


@dataclass(eq=False)
class Outstanding:
    key: str
    generation: int
    backend_id: int | str
    # The request it was sent for (its session's, in the handshake era: only that session may answer it).
    context: RequestContext
    timer: asyncio.TimerHandle | None = None
    # Set when the gateway itself asks (a 2026-07-28 backend's input request relayed to a legacy client):
    # the client's answer resolves it instead of going to a backend.
    future: asyncio.Future[dict[str, Any]] | None = None


class ServerRequests:
    def __init__(self, backends: Backends, timeout_s: float) -> None:
        self._backends = backends
        self._timeout_s = timeout_s
        self._ids = itertools.count(1)
        self._outstanding: dict[str, Outstanding] = {}
        self._interactive: set[tuple[str, str]] = set()  # (backend key, operation)
        self.turns = FairTurns()

    def is_interactive(self, key: str, operation: str) -> bool:
        return (key, operation) in self._interactive

    def turn(self, key: str, principal: str) -> AbstractAsyncContextManager[None]:
        """Held by an interactive call for its whole flight: one at a time per backend, and fair across
        credentials (turns.py)."""
        return self.turns.turn(key, principal)

    # ------------------------------------------------------------------ backend → client

    def from_backend(self, key: str, generation: int, message: dict[str, Any]) -> None:
        method = str(message.get("method"))
        backend_id = message.get("id")
        assert isinstance(backend_id, (int, str))
        capability = REQUIRED_CAPABILITY.get(method)
        context = self._attribute(key, capability, jsonrpc.encode_json(message.get("params")).decode())
        if context is None:
            self._answer_backend(key, generation, backend_id, error=_unattributed(method, capability))
            return
        request = context.session
        if capability is not None and capability not in request.capabilities:
            # What a client without the capability answers directly (a JSON-RPC error), and the call goes on: the
            # backend decides what to do without it, in either era of the client.
            self._answer_backend(key, generation, backend_id, error=_no_client(method, capability))
            return
        gateway_id = f"mcps-{next(self._ids)}"
        sink = request.input_sink
        if sink is not None:
            # A 2026-07-28 request: held until the client's retry brings the answer (its holder times it out).
            self._outstanding[gateway_id] = Outstanding(key, generation, backend_id, request)
            sink(gateway_id, message)
            return
        outstanding = Outstanding(key, generation, backend_id, request)
        outstanding.timer = asyncio.get_running_loop().call_later(self._timeout_s, self._expire, gateway_id)
        self._outstanding[gateway_id] = outstanding
        context.emit(jsonrpc.encode_json({**message, "id": gateway_id}), False)

    def _attribute(self, key: str, capability: str | None, request_text: str) -> CallContext | None:
        """The in-flight request this server→client request most likely belongs to.

        Exact when one session has requests in flight at the backend. Otherwise the request whose string
        arguments appear in the server request wins (a tool usually passes its input on to the LLM or the
        user), then the most recent one; that residual guess is logged.
        """
        contexts = self._backends.contexts_at(key)  # oldest first
        link = self._backends.links.get(key)
        if link is not None and link.era == Era.MODERN:
            # A 2026-07-28 connection carries no server→client request: this one came over a dual-era backend's
            # handshake-era connection, which carries only handshake-era clients' requests.
            contexts = [c for c in contexts if c.session.era == Era.LEGACY]
        # A call parked for its modern client's retry has its own request outstanding: not this one's source.
        contexts = [c for c in contexts if not c.session.parked] or contexts
        principals = {c.session.principal for c in contexts}
        if len(principals) > 1:
            # Requests of several credentials are in flight: a guess could hand one tenant's request (and its
            # answer) to another. Refuse, and make every operation involved take turns from now on.
            learnt = sorted(
                {c.operation for c in contexts if c.operation and (key, c.operation) not in self._interactive}
            )
            self._interactive.update((key, operation) for operation in learnt)
            log.warning(
                "Backend %s sent a server request while requests of %d credentials were in flight there: it "
                "cannot be attributed, so it is refused; %s now take turns.",
                key,
                len(principals),
                ", ".join(learnt) or "the operations involved",
            )
            return None
        # Legacy calls to an interactive operation take turns: the one in flight is the source. Modern ones do
        # not (routes.NamedRoute): several may be in flight, and going to the newest would hand one call's request
        # to another (all of them, once learnt); they are attributed by their arguments below.
        interactive = [c for c in contexts if (key, c.operation) in self._interactive and c.session.era != Era.MODERN]
        if interactive:
            return interactive[-1]
        if capability is not None:
            able = [c for c in contexts if capability in c.session.capabilities]
            contexts = able or contexts
        if len(contexts) <= 1:
            return self._learn(key, contexts[0]) if contexts else None
        if len({id(c.session.client) for c in contexts}) == 1:
            return contexts[-1]  # the right session for sure; which of its requests, not: nothing learnt
        scores = [sum(clue in request_text for clue in _clues(c.params)) for c in contexts]
        best = max(scores)
        chosen = [c for c, score in zip(contexts, scores, strict=True) if score == best]
        if len({id(c.session.client) for c in chosen}) > 1:
            log.warning(
                "Backend %s sent a server request that %d sessions' in-flight requests could have caused; "
                "it goes to the most recent one.",
                key,
                len({id(c.session.client) for c in chosen}),
            )
            return chosen[-1]
        return self._learn(key, chosen[-1]) if len(chosen) == 1 else chosen[-1]

    def _learn(self, key: str, context: CallContext) -> CallContext:
        """`context` certainly caused a server request: its operation is interactive from now on."""
        if context.operation and (key, context.operation) not in self._interactive:
            self._interactive.add((key, context.operation))
            log.info("Backend %s: %s asks the client things; its calls now take turns.", key, context.operation)
        return context

    def answer(self, gateway_id: str, result: Any = None, error: Any = None) -> bool:
        """Answer a held server request (a modern client's retry brought `result`); False if it is gone."""
        outstanding = self._outstanding.get(gateway_id)
        if outstanding is None or outstanding.future is not None:
            return False
        self._forget(gateway_id)
        self._answer(outstanding, result, error)
        return True

    def ask(self, context: CallContext, method: str, params: Any) -> asyncio.Future[dict[str, Any]]:
        """Send the client of `context` a request of the gateway's own; the future gets its response message
        (a result or an error), or a timeout error after SERVER_REQUEST_TIMEOUT_SECONDS."""
        loop = asyncio.get_running_loop()
        gateway_id = f"mcps-{next(self._ids)}"
        outstanding = Outstanding("", 0, gateway_id, context.session, future=loop.create_future())
        outstanding.timer = loop.call_later(self._timeout_s, self._expire, gateway_id)
        self._outstanding[gateway_id] = outstanding
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": gateway_id, "method": method}
        if params is not None:
            request["params"] = params
        context.emit(jsonrpc.encode_json(request), False)
        assert outstanding.future is not None
        return outstanding.future

    def backend_cancelled(self, key: str, backend_id: object, reason: object) -> None:
        """The backend gave up on its own request: tell the client, forget it."""
        for gateway_id, outstanding in list(self._outstanding.items()):
            if outstanding.key == key and outstanding.backend_id == backend_id:
                self._forget(gateway_id)
                notice = {"requestId": gateway_id, "reason": reason} if reason else {"requestId": gateway_id}
                outstanding.context.notify(
                    jsonrpc.encode_json({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": notice})
                )

    # ------------------------------------------------------------------ client → backend

    def from_client(self, session: ClientSession, message: Incoming) -> bool:
        """A client's response to one of our requests: relay it. False if it answers nothing of ours."""
        gateway_id = message.id
        outstanding = self._outstanding.get(gateway_id) if isinstance(gateway_id, str) else None
        if outstanding is None or outstanding.context.session is not session:
            return False
        assert isinstance(gateway_id, str)
        self._forget(gateway_id)
        raw = message.raw
        if outstanding.future is not None:
            if not outstanding.future.done():
                outstanding.future.set_result(raw)
            return True
        if "error" in raw:
            self._answer_backend(outstanding.key, outstanding.generation, outstanding.backend_id, error=raw["error"])
        else:
            self._answer_backend(
                outstanding.key, outstanding.generation, outstanding.backend_id, result=raw.get("result")
            )
        return True

    def session_closed(self, session: ClientSession) -> None:
        for gateway_id, outstanding in list(self._outstanding.items()):
            if outstanding.context.session is session:
                self._forget(gateway_id)
                error = {"code": error_codes.INTERNAL_ERROR, "message": "The client session ended before it answered."}
                self._answer(outstanding, error=error)

    # ------------------------------------------------------------------ helpers

    def _expire(self, gateway_id: str) -> None:
        outstanding = self._outstanding.pop(gateway_id, None)
        if outstanding is not None:
            error = {
                "code": error_codes.REQUEST_TIMEOUT,
                "message": f"The client did not answer within {self._timeout_s:g} s.",
            }
            if outstanding.future is not None:
                if not outstanding.future.done():
                    outstanding.future.set_result({"error": error})
                return
            self._answer_backend(outstanding.key, outstanding.generation, outstanding.backend_id, error=error)

    def _forget(self, gateway_id: str) -> None:
        outstanding = self._outstanding.pop(gateway_id, None)
        if outstanding is not None and outstanding.timer is not None:
            outstanding.timer.cancel()

    def _answer(self, outstanding: Outstanding, result: Any = None, error: Any = None) -> None:
        if outstanding.future is not None:
            if not outstanding.future.done():
                outstanding.future.set_result({"error": error} if error is not None else {"result": result})
            return
        self._answer_backend(outstanding.key, outstanding.generation, outstanding.backend_id, result, error)

    def _answer_backend(
        self, key: str, generation: int, backend_id: int | str, result: Any = None, error: Any = None
    ) -> None:
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": backend_id}
        if error is not None:
            reply["error"] = error
        else:
            reply["result"] = result if result is not None else {}
        self._backends.send_to_backend(key, generation, jsonrpc.encode_json(reply))


def _no_client(method: str, capability: str | None) -> dict[str, Any]:
    if capability is None:
        return {"code": error_codes.METHOD_NOT_FOUND, "message": f"No client session can answer {method} now."}
    return {
        "code": error_codes.METHOD_NOT_FOUND,
        "message": f"Method not found: {method} (the client did not declare the {capability} capability).",
    }


def _unattributed(method: str, capability: str | None) -> dict[str, Any]:
    return {
        "code": error_codes.METHOD_NOT_FOUND,
        "message": (
            f"{method} could not be attributed to one client (no request is in flight at this backend, or "
            "requests of several credentials are), so it is not sent to any; a retry will be."
            if capability is None
            else f"{method} could not be attributed to one client: requests of several credentials were in "
            "flight at this backend, or none was. Retry: calls to this tool now take turns."
        ),
    }


def _clues(params: dict[str, Any]) -> tuple[str, ...]:
    """Distinctive strings a request passed to its backend (tool or prompt arguments)."""
    arguments = params.get("arguments")
    if not isinstance(arguments, dict):
        return ()
    return tuple(value for value in arguments.values() if isinstance(value, str) and len(value) >= 3)[:16]
