"""What the core takes per request: a session's context, a 2026-07-28 request's context, and the route table
that picks a route by method and context."""

from __future__ import annotations

from mcp_supervisor.gateway.dataplane.backends import CallContext
from mcp_supervisor.gateway.frontends.auth import Identity
from mcp_supervisor.gateway.server.modern import Envelope
from mcp_supervisor.gateway.server.request_context import RequestContext, envelope_context
from mcp_supervisor.gateway.server.routes import Reply, Route, Router, SessionRoute
from mcp_supervisor.gateway.server.sessions import ClientSession, SessionStore
from mcp_supervisor.protocol.versions import Era


def _session() -> ClientSession:
    session = SessionStore().create("ann", identity=Identity("ann", "key", 0))
    assert session is not None
    session.protocol_version = "2025-11-25"
    session.capabilities = {"sampling": {}}
    session.client_info = {"name": "c", "version": "1"}
    return session


def _modern(emitted: list[bytes]) -> RequestContext:
    envelope = Envelope("2026-07-28", {"elicitation": {}}, {"name": "m", "version": "2"}, "info")
    return envelope_context(Identity("bob"), envelope, lambda data, droppable: emitted.append(data))


def test_a_sessions_context_is_the_sessions_own() -> None:
    session = _session()
    context = session.request_context()
    assert (context.principal, context.era, context.protocol_version) == ("ann", Era.LEGACY, "2025-11-25")
    assert context.capabilities == {"sampling": {}} and context.session is session
    assert context.in_flight is session.in_flight  # the session's notifications/cancelled finds its requests
    assert context.client is session.request_context().client  # every request of a session: one client
    session.log_level = "error"
    assert context.log_level == "error"  # setLevel applies to the lines of a call already in flight
    context.emit(b"x", False)
    assert session.standalone.kept_bytes > 0  # single-stream transports: related messages go to the session


def test_a_modern_request_has_a_context_and_no_session() -> None:
    emitted: list[bytes] = []
    context = _modern(emitted)
    assert context.session is None and context.era == Era.MODERN
    assert (context.principal, context.log_level, context.client_info["name"]) == ("bob", "info", "m")
    assert context.client is context and context.input_sink is None and not context.parked
    context.emit(b"progress", True)
    context.notify(b"nowhere")  # no stream outside its own: nothing to deliver, nothing raised
    assert emitted == [b"progress"]


class _Echo(Route):
    methods = frozenset({"tools/call"})

    async def handle(self, call: CallContext, method: str) -> bytes:
        return b"echo"

    def owner(self, name: str) -> str:
        return f"owner-of-{name}"


async def _set_level(call: CallContext, session: ClientSession, method: str) -> bytes:
    return b"level"


def _call(context: RequestContext) -> CallContext:
    return CallContext(context, 1, context.emit, {})


def test_the_router_picks_by_method_and_context() -> None:
    ping, echo, level = Reply("ping", {}), _Echo(), SessionRoute(("logging/setLevel",), _set_level)
    router = Router([ping, echo, level])
    modern = _call(_modern([]))
    assert router.route("ping", modern) is ping
    assert router.route("tools/call", modern) is echo
    assert router.route("logging/setLevel", _call(_session().request_context())) is level
    assert router.route("logging/setLevel", modern) is None  # a session's method: no session, no route
    assert router.route("nope", modern) is None
    assert router.owner("tools/call", "t") == "owner-of-t" and router.owner("ping", "x") == ""
