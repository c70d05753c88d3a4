"""The worker's era logic without processes: the probe's verdict, the envelope added and stripped, the locally
answered methods, the listen stream's lifecycle, and the negotiation driven over a scripted connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import msgspec
import pytest

from mcp_supervisor.errors import BackendError
from mcp_supervisor.protocol.messages import Reply
from mcp_supervisor.worker import envelope, era, listen_stream
from mcp_supervisor.worker.era import LEGACY, MODERN, RETRY, initialize_equivalent, judge, negotiate
from mcp_supervisor.worker.listen_stream import Listener
from mcp_supervisor.worker.modern import ModernHop
from mcp_supervisor.worker.relay import BackendRelay

PV = "io.modelcontextprotocol/protocolVersion"
CAPS = "io.modelcontextprotocol/clientCapabilities"
INFO = "io.modelcontextprotocol/clientInfo"
LEVEL = "io.modelcontextprotocol/logLevel"
SUB = "io.modelcontextprotocol/subscriptionId"
DISCOVER = {
    "resultType": "complete",
    "supportedVersions": ["2026-07-28"],
    "capabilities": {"tools": {"listChanged": True}, "resources": {"subscribe": True}},
    "instructions": "Be nice.",
    "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "srv", "version": "1.2"}},
    "ttlMs": 0,
    "cacheScope": "public",
}


def call(meta: dict[str, Any] | None = None, **params: Any) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "t", **params}}
    if meta is not None:
        body["params"]["_meta"] = meta
    return json.dumps(body, separators=(",", ":")).encode()


# ---------------------------------------------------------------- the probe's verdict


@pytest.mark.parametrize(
    ("result", "error", "verdict"),
    [
        (DISCOVER, None, (MODERN, "2026-07-28")),
        ({**DISCOVER, "supportedVersions": ["2025-11-25"]}, None, (LEGACY, "")),  # discover, but handshake-era
        ({"unexpected": True}, None, (LEGACY, "")),
        (None, {"code": -32601, "message": "Method not found"}, (LEGACY, "")),
        (None, {"code": -32602, "message": "Invalid params"}, (LEGACY, "")),
        (None, {"code": -32600, "message": "Bad Request: Missing session ID"}, (LEGACY, "")),
        (None, {"code": -32603, "message": "boom"}, (LEGACY, "")),
        (None, None, (LEGACY, "")),  # no answer in time
        (None, {"code": -32022, "message": "x", "data": {"supported": ["2026-07-28"]}}, (RETRY, "2026-07-28")),
        (None, {"code": -32022, "message": "x", "data": {"supported": ["2025-06-18", "2031-01-01"]}}, (LEGACY, "")),
        (None, {"code": -32022, "message": "x"}, (LEGACY, "")),  # names nothing: no evidence
    ],
)
def test_the_probe_is_modern_only_on_positive_evidence(result: Any, error: Any, verdict: tuple[str, str]) -> None:
    assert judge(result, error) == verdict


def test_a_modern_only_server_of_versions_we_do_not_speak_fails_clearly() -> None:
    with pytest.raises(BackendError, match="speaks only protocol versions 2031-01-01"):
        judge(None, {"code": -32022, "message": "x", "data": {"supported": ["2031-01-01"]}})


def test_the_initialize_result_equivalent_of_a_discover_result() -> None:
    assert initialize_equivalent(DISCOVER, "2026-07-28", "key") == {
        "protocolVersion": "2026-07-28",
        "capabilities": DISCOVER["capabilities"],
        "serverInfo": {"name": "srv", "version": "1.2"},
        "instructions": "Be nice.",
    }
    bare = initialize_equivalent({"supportedVersions": ["2026-07-28"]}, "2026-07-28", "key")
    assert bare == {"protocolVersion": "2026-07-28", "capabilities": {}, "serverInfo": {"name": "key", "version": ""}}


# ---------------------------------------------------------------- the envelope


def test_strip_without_the_prefix_is_the_very_same_bytes() -> None:
    body = call({"progressToken": 3}, arguments={"x": 1})
    assert envelope.strip(body) is body


def test_strip_takes_the_envelope_keys_and_keeps_everything_else() -> None:
    meta = {
        PV: "2026-07-28",
        CAPS: {"sampling": {}},
        INFO: {"name": "c", "version": "1"},
        LEVEL: "debug",
        "progressToken": 9,
        "io.modelcontextprotocol/related-task": {"taskId": "t1"},  # a handshake-era key (tasks, 2025-11-25)
    }
    stripped = json.loads(envelope.strip(call(meta, arguments={"a": [1, 2]})))
    assert stripped["params"] == {
        "name": "t",
        "arguments": {"a": [1, 2]},
        "_meta": {"progressToken": 9, "io.modelcontextprotocol/related-task": {"taskId": "t1"}},
    }
    assert stripped["id"] == 7 and stripped["method"] == "tools/call"


def test_strip_drops_a_meta_it_emptied_and_leaves_the_prefix_elsewhere_alone() -> None:
    assert "_meta" not in json.loads(envelope.strip(call({PV: "2026-07-28", CAPS: {}})))["params"]
    in_arguments = call(None, arguments={PV: "2026-07-28"})
    assert envelope.strip(in_arguments) is in_arguments
    not_json = b'{"io.modelcontextprotocol/protocolVersion": '
    assert envelope.strip(not_json) is not_json


def test_complete_adds_what_is_missing_and_keeps_what_the_gateway_passed() -> None:
    request = json.loads(call(None))
    envelope.complete(request, "2026-07-28", "warning")
    assert request["params"]["_meta"] == {
        PV: "2026-07-28",
        CAPS: {},
        INFO: envelope.CLIENT_INFO_VALUE,
        LEVEL: "warning",
    }
    passed = json.loads(call({PV: "2099-01-01", CAPS: {"elicitation": {}}, INFO: {"name": "real"}, LEVEL: "debug"}))
    envelope.complete(passed, "2026-07-28", "warning")
    assert passed["params"]["_meta"] == {
        PV: "2026-07-28",  # the version of this hop, whatever the client spoke
        CAPS: {"elicitation": {}},
        INFO: {"name": "real"},
        LEVEL: "debug",
    }
    bare: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    assert envelope.complete(bare, "2026-07-28")["params"] == {"_meta": envelope.envelope("2026-07-28")}


def test_untag() -> None:
    message = {"method": "notifications/tools/list_changed", "params": {"_meta": {SUB: "mcps-4"}}}
    assert envelope.untag(message) == "mcps-4" and message == {"method": "notifications/tools/list_changed",
                                                               "params": {}}  # fmt: skip
    kept = {"method": "m", "params": {"uri": "u", "_meta": {SUB: 1, "other": 2}}}
    assert envelope.untag(kept) == 1 and kept["params"] == {"uri": "u", "_meta": {"other": 2}}
    assert envelope.untag({"method": "m"}) is None


# ---------------------------------------------------------------- what a modern hop answers itself


class Streams:
    """open_stream / close_stream for a Listener, recording what it asked; the test plays the backend."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, dict[str, Any]]] = []
        self.closed: list[str] = []
        self.replies: dict[str, asyncio.Future[tuple[Any, Any]]] = {}

    async def open(self, method: str, params: dict[str, Any]) -> tuple[str, asyncio.Future[tuple[Any, Any]]]:
        request_id = f"mcps-{len(self.opened) + 1}"
        self.opened.append((request_id, params["notifications"]))
        future: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        self.replies[request_id] = future
        return request_id, future

    async def close(self, request_id: str) -> None:
        self.closed.append(request_id)
        self.replies[request_id].cancel()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


async def until(predicate: Callable[[], Any], what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_modern_hop_answers_what_the_era_removed_and_enveloped_the_rest() -> None:
    async def scenario() -> None:
        replies: list[Reply] = []
        streams = Streams()
        hop = ModernHop("2026-07-28", {"logging": {}}, replies.append, streams.open, streams.close, timeout=1)
        ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
        level = b'{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}}'
        assert hop.outgoing(1, ping) is None and hop.outgoing(2, level) is None
        assert [(r.rid, r.result) for r in replies] == [(1, b"{}"), (2, b"{}")]
        sent = json.loads(hop.outgoing(3, call(None)) or b"")
        assert sent["params"]["_meta"][LEVEL] == "debug" and sent["params"]["_meta"][PV] == "2026-07-28"
        # No resources.subscribe capability: the subscribe fails, as a legacy backend's would.
        assert hop.outgoing(4, b'{"jsonrpc":"2.0","id":4,"method":"resources/subscribe","params":{"uri":"u"}}') is None
        assert replies[-1].rid == 4 and json.loads(replies[-1].error)["code"] == -32601
        assert hop.notification(b'{"jsonrpc":"2.0","method":"notifications/initialized"}') is None
        cancel = b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}'
        assert hop.notification(cancel) is cancel
        assert streams.opened == []

    run(scenario)


def test_a_subscribe_is_answered_once_a_stream_with_its_uri_is_acknowledged() -> None:
    async def scenario() -> None:
        replies: list[Reply] = []
        streams = Streams()
        capabilities = {"tools": {"listChanged": True}, "resources": {"subscribe": True}}
        hop = ModernHop("2026-07-28", capabilities, replies.append, streams.open, streams.close, timeout=5)
        listener = hop.listener
        listener.start()
        await until(lambda: streams.opened, "the first listen")
        assert streams.opened == [("mcps-1", {"toolsListChanged": True})]
        tagged = json.dumps({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                             "params": {"_meta": {SUB: "mcps-1"}}}).encode()  # fmt: skip
        assert hop.incoming("notifications/tools/list_changed", tagged) is None  # before its acknowledgement
        ack = {"jsonrpc": "2.0", "method": listen_ack, "params": {"_meta": {SUB: "mcps-1"}, "notifications": {}}}
        assert hop.incoming(listen_ack, json.dumps(ack).encode()) is None
        assert await listener.settled(1, 1)
        assert json.loads(hop.incoming("notifications/tools/list_changed", tagged) or b"") == {
            "jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {}}  # fmt: skip

        subscribe = b'{"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":"file:///a"}}'
        assert hop.outgoing(5, subscribe) is None
        await until(lambda: len(streams.opened) == 2, "the replacing listen")
        assert streams.opened[1] == ("mcps-2", {"toolsListChanged": True, "resourceSubscriptions": ["file:///a"]})
        assert replies == []  # not before the backend took it
        updated = json.dumps({"jsonrpc": "2.0", "method": "notifications/resources/updated",
                              "params": {"uri": "file:///a", "_meta": {SUB: "mcps-1"}}}).encode()  # fmt: skip
        assert hop.incoming("notifications/resources/updated", updated) is not None  # the old one still counts
        ack2 = {
            "jsonrpc": "2.0",
            "method": listen_ack,
            "params": {"_meta": {SUB: "mcps-2"}, "notifications": {"resourceSubscriptions": ["file:///a"]}},
        }
        assert hop.incoming(listen_ack, json.dumps(ack2).encode()) is None
        assert hop.incoming("notifications/resources/updated", updated) is None  # now only the new one does
        await until(lambda: replies, "the subscribe's answer")
        assert (replies[0].rid, replies[0].result) == (5, b"{}")
        await until(lambda: streams.closed == ["mcps-1"], "the old stream's cancellation")
        await listener.stop()

    run(scenario)


listen_ack = "notifications/subscriptions/acknowledged"


def test_a_stream_that_ends_is_opened_again_and_an_unknown_method_is_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(listen_stream, "FIRST_DELAY_S", 0.05)

    async def scenario() -> None:
        streams = Streams()
        listener = Listener({"prompts": {"listChanged": True}}, streams.open, streams.close, ack_timeout=2)
        listener.start()
        await until(lambda: streams.opened, "the first listen")
        listener.acknowledged("mcps-1", {"promptsListChanged": True})
        assert await listener.settled(1, 1) and listener.current_id == "mcps-1"
        streams.replies["mcps-1"].set_result(({"resultType": "complete"}, None))  # a graceful end
        await until(lambda: len(streams.opened) == 2, "the reopened listen")
        assert listener.current_id is None
        listener.acknowledged("mcps-2", {})
        await until(lambda: listener.current_id == "mcps-2", "the new stream")
        streams.replies["mcps-2"].set_result((None, {"code": -32601, "message": "Method not found"}))
        await asyncio.sleep(0.3)
        assert len(streams.opened) == 2  # not asked again
        await listener.stop()

    run(scenario)


def test_no_stream_for_a_backend_that_announces_nothing() -> None:
    async def scenario() -> None:
        streams = Streams()
        listener = Listener({"tools": {}}, streams.open, streams.close, ack_timeout=1)
        listener.start()
        assert await listener.settled(1, 1)
        assert streams.opened == [] and listener.wanted_filter() is None
        await listener.stop()

    run(scenario)


# ---------------------------------------------------------------- negotiation over a scripted backend


class Scripted:
    """A BackendConnection whose backend answers each request with `answer(method, params)` (None: silence)."""

    def __init__(self, answer: Callable[[str, dict[str, Any]], dict[str, Any] | None]) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []
        self.versions: list[str] = []
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def send(self, message: bytes) -> None:
        decoded = json.loads(message)
        self.sent.append(decoded)
        if "id" in decoded and "method" in decoded:
            reply = self.answer(decoded["method"], decoded.get("params") or {})
            if reply is not None:
                await self.inbox.put(json.dumps({"jsonrpc": "2.0", "id": decoded["id"], **reply}).encode())

    async def messages(self) -> AsyncIterator[bytes]:
        while True:
            yield await self.inbox.get()

    def negotiated(self, protocol_version: str) -> None:
        self.versions.append(protocol_version)

    def accept_tools(self, tools: list[Any]) -> list[Any]:
        return tools

    @property
    def methods(self) -> list[str]:
        return [message["method"] for message in self.sent]


INITIALIZED = {"result": {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "l"}}}


def legacy_backend(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if method == "initialize":
        return INITIALIZED
    return {"error": {"code": -32601, "message": "Method not found"}}


def modern_backend(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if method == "server/discover":
        assert params["_meta"][PV] == "2026-07-28" and params["_meta"][CAPS] == {}
        return {"result": DISCOVER}
    return {"error": {"code": -32022, "message": "modern only", "data": {"supported": ["2026-07-28"]}}}


def negotiated_with(
    answer: Callable[[str, dict[str, Any]], dict[str, Any] | None], protocol: str = "auto", transport: str = "stdio"
) -> tuple[era.Negotiated | BaseException, Scripted, BackendRelay]:
    connection = Scripted(answer)
    relay = BackendRelay(connection, lambda reply: None, lambda kind: asyncio.sleep(0))

    async def scenario() -> era.Negotiated | BaseException:
        pump = asyncio.create_task(relay.pump())
        try:
            return await negotiate(relay, transport, protocol, timeout=2)
        except BackendError as exc:
            return exc
        finally:
            pump.cancel()

    return asyncio.run(scenario()), connection, relay


def test_a_legacy_backend_costs_one_probe_and_gets_the_handshake() -> None:
    outcome, connection, relay = negotiated_with(legacy_backend)
    assert isinstance(outcome, era.Negotiated) and (outcome.era, outcome.protocol_version) == (LEGACY, "2025-11-25")
    assert connection.methods == ["server/discover", "initialize", "notifications/initialized"]
    assert connection.versions == ["2026-07-28", "", "2025-11-25"]  # HTTP: the handshake goes without the header
    assert relay.modern is None and relay.capabilities == {"tools": {}}


def test_a_modern_backend_gets_no_handshake() -> None:
    outcome, connection, relay = negotiated_with(modern_backend)
    assert isinstance(outcome, era.Negotiated) and (outcome.era, outcome.protocol_version) == (MODERN, "2026-07-28")
    assert connection.methods == ["server/discover"]
    assert outcome.initialize_result["serverInfo"] == {"name": "srv", "version": "1.2"}
    assert relay.modern is not None and relay.capabilities == DISCOVER["capabilities"]


def test_a_silent_backend_is_legacy_after_the_probe_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(era, "PROBE_TIMEOUT_S", 0.2)
    outcome, connection, _ = negotiated_with(lambda m, p: INITIALIZED if m == "initialize" else None)
    assert isinstance(outcome, era.Negotiated) and outcome.era == LEGACY
    assert connection.methods == ["server/discover", "initialize", "notifications/initialized"]


def test_a_handshake_refused_with_a_modern_version_probes_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A modern backend slower than the probe's timeout: it read the probe late (locking itself modern), then
    refused the initialize naming 2026-07-28."""
    monkeypatch.setattr(era, "PROBE_TIMEOUT_S", 0.2)
    probes: list[int] = []

    def slow_first(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if method == "server/discover":
            probes.append(1)
            if len(probes) == 1:
                return None
        return modern_backend(method, params)

    outcome, connection, _ = negotiated_with(slow_first)
    assert isinstance(outcome, era.Negotiated) and outcome.era == MODERN
    assert connection.methods == ["server/discover", "initialize", "server/discover"]


def test_the_pins_skip_the_probe_or_require_it_to_succeed() -> None:
    outcome, connection, _ = negotiated_with(modern_backend, protocol="legacy")
    assert isinstance(outcome, BackendError) and "-32022" in str(outcome)
    assert connection.methods == ["initialize"]
    outcome, connection, _ = negotiated_with(legacy_backend, protocol="2026-07-28")
    assert isinstance(outcome, BackendError) and 'pinned to "protocol": "2026-07-28"' in str(outcome)
    assert connection.methods == ["server/discover"]
    outcome, connection, _ = negotiated_with(legacy_backend, transport="sse")
    assert isinstance(outcome, era.Negotiated) and connection.methods == ["initialize", "notifications/initialized"]


def test_a_relay_strips_toward_legacy_and_completes_toward_modern() -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        results = []
        for answer in (legacy_backend, modern_backend):
            connection = Scripted(answer)
            relay = BackendRelay(connection, lambda reply: None, lambda kind: asyncio.sleep(0))
            pump = asyncio.create_task(relay.pump())
            await negotiate(relay, "stdio", "auto", timeout=2)
            if relay.modern is not None:
                await relay.modern.listener.stop()
            connection.sent.clear()
            await relay.forward(7, call({PV: "2026-07-28", CAPS: {"sampling": {}}, "progressToken": 7}))
            results.append(connection.sent)
            pump.cancel()
        return results[0], results[1]

    legacy, modern = asyncio.run(scenario())
    assert legacy[0]["params"]["_meta"] == {"progressToken": 7}
    assert modern[0]["params"]["_meta"] == {PV: "2026-07-28", CAPS: {"sampling": {}}, "progressToken": 7,
                                            INFO: envelope.CLIENT_INFO_VALUE}  # fmt: skip


def test_own_requests_to_a_modern_backend_carry_the_envelope() -> None:
    seen: list[dict[str, Any]] = []

    def answer(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if method == "tools/list":
            seen.append(params)
            page = (
                {"tools": [{"name": "a"}], "nextCursor": "2"} if "cursor" not in params else {"tools": [{"name": "b"}]}
            )
            return {"result": {**page, "resultType": "complete", "ttlMs": 0, "cacheScope": "public"}}
        return modern_backend(method, params)

    connection = Scripted(answer)
    relay = BackendRelay(connection, lambda reply: None, lambda kind: asyncio.sleep(0))

    async def scenario() -> list[Any]:
        pump = asyncio.create_task(relay.pump())
        await negotiate(relay, "stdio", "auto", timeout=2)
        try:
            return await relay.list_all("tools", 2)
        finally:
            pump.cancel()

    assert asyncio.run(scenario()) == [{"name": "a"}, {"name": "b"}]
    assert [p["_meta"][PV] for p in seen] == ["2026-07-28", "2026-07-28"] and seen[1]["cursor"] == "2"


def test_messages_stay_msgspec_compatible() -> None:
    """WorkerReady's new field has a default: an old peer's message still decodes."""
    from mcp_supervisor.protocol import codec
    from mcp_supervisor.protocol.messages import WorkerReady

    old = msgspec.msgpack.encode({"t": "ready", "key": "k", "generation": 1, "pid": 2})
    decoded = codec.decode_worker_to_gateway(old)
    assert isinstance(decoded, WorkerReady) and decoded.era == "legacy"


def test_an_input_required_result_is_relayed_byte_for_byte() -> None:
    """A modern backend's InputRequiredResult is an ordinary result for the worker (the gateway translates it)."""
    result = (
        b'{"resultType":"input_required","inputRequests":{"answer":{"method":"elicitation/create","params":'
        b'{"mode":"form","message":"Name?","requestedSchema":{"type":"object"}}}},"requestState":"s.e.a.l"}'
    )

    def answer(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        return None if method == "tools/call" else modern_backend(method, params)

    connection = Scripted(answer)
    replies: list[Reply] = []
    relay = BackendRelay(connection, replies.append, lambda kind: asyncio.sleep(0))

    async def scenario() -> None:
        pump = asyncio.create_task(relay.pump())
        await negotiate(relay, "stdio", "auto", timeout=2)
        await relay.forward(11, call({CAPS: {"elicitation": {}}}))
        await connection.inbox.put(b'{"jsonrpc":"2.0","id":11,"result":' + result + b"}")
        await until(lambda: replies, "the reply")
        pump.cancel()

    asyncio.run(scenario())
    assert replies[0].rid == 11 and replies[0].result == result and not replies[0].error


def test_streamable_http_stamps_the_modern_headers_and_drops_tools_with_invalid_x_mcp_header() -> None:
    from mcp_types import jsonrpc_message_adapter

    from mcp_supervisor.worker.sdk_connection import SdkConnection

    connection = SdkConnection(None, None, modern_headers=True)
    connection.negotiated("2026-07-28")
    region = {"type": "string", "x-mcp-header": "Region"}
    tools = [
        {"name": "sql", "inputSchema": {"type": "object", "properties": {"region": region, "q": {"type": "string"}}}},
        {
            "name": "bad",
            "inputSchema": {"type": "object", "properties": {"n": {"type": "number", "x-mcp-header": "N"}}},
        },
    ]
    assert [tool["name"] for tool in connection.accept_tools(tools)] == ["sql"]

    def headers(message: dict[str, Any]) -> dict[str, str]:
        parsed = jsonrpc_message_adapter.validate_json(json.dumps(message))
        stamped = connection._modern_metadata(parsed).headers
        assert stamped is not None
        return stamped

    call_sql = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "sql", "arguments": {"region": "eu-west 1", "q": "x"}}}  # fmt: skip
    assert headers(call_sql) == {
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "sql",
        "Mcp-Param-Region": "eu-west 1",
    }
    read = {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "file:///grüße"}}
    assert headers(read)["mcp-name"] == "=?base64?ZmlsZTovLy9ncsO8w59l?="
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    assert headers(cancel) == {"mcp-protocol-version": "2026-07-28"}  # the transport's cue: a modern cancel
    legacy = SdkConnection(None, None, modern_headers=True)
    legacy.negotiated("2025-11-25")
    assert legacy.accept_tools(tools) == tools  # handshake era: x-mcp-header means nothing


def test_a_stdio_worker_imports_no_sdk() -> None:
    """The SDK's modules cost ~1 s of CPU to import: a stdio backend's worker must not pay for them."""
    import subprocess
    import sys

    code = (
        "import sys; import mcp_supervisor.worker.main, mcp_supervisor.worker.stdio_connection, "
        "mcp_supervisor.worker.era, mcp_supervisor.worker.modern, mcp_supervisor.worker.listen_stream; "
        "print([m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'pydantic', 'httpx2')])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout
