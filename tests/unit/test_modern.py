"""The 2026-07-28 era's pure pieces: which request is modern, its envelope, the reshaped replies, the sealed
requestState, the listen filter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_supervisor.gateway.server import modern
from mcp_supervisor.gateway.server.listen_streams import FilterError, parse_filter
from mcp_supervisor.gateway.server.modern import CacheHint, Envelope, Rejection
from mcp_supervisor.gateway.server.request_state import Binding, RequestStateSealer, StateRejected

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
    "io.modelcontextprotocol/clientInfo": {"name": "c", "version": "1"},
}


def request(method: str = "tools/list", meta: dict[str, object] | None = None) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": META if meta is None else meta}}


@pytest.mark.parametrize(
    ("raw", "header", "has_session", "expected"),
    [
        (request(), "2026-07-28", False, True),
        (request(), None, False, True),  # stdio: the envelope alone
        (request(meta={}), None, False, False),
        (request("initialize"), None, False, False),  # initialize opens a session
        (request("initialize"), "2026-07-28", False, True),  # ... except under a modern version: removed
        (request(meta={}), "2026-07-28", True, True),  # a modern header wins over a stale session id
        (request(), "2025-11-25", True, False),  # a session's request, whatever its _meta holds
        (request(), "2099-01-01", False, True),  # unsupported: modern, so that the ladder says -32022
    ],
)
def test_the_era_is_decided_per_request(
    raw: dict[str, object], header: str | None, has_session: bool, expected: bool
) -> None:
    assert modern.is_modern(raw, header, has_session) is expected


def test_the_envelope_and_its_rejections() -> None:
    headers = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list")]
    envelope = modern.envelope(request(), headers)
    assert envelope == Envelope("2026-07-28", {"sampling": {}}, {"name": "c", "version": "1"}, "")
    assert isinstance(rejected := modern.envelope(request(), headers[:1]), Rejection) and rejected.code == -32020
    doubled = [*headers, ("Mcp-Method", "tools/list")]
    assert isinstance(rejected := modern.envelope(request(), doubled), Rejection) and rejected.code == -32020
    assert isinstance(rejected := modern.envelope(request(meta={}), None), Rejection) and rejected.code == -32602
    future = {**META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
    rejected = modern.envelope(request(meta=future), None)
    assert isinstance(rejected, Rejection) and rejected.code == -32022 and rejected.http_status == 400
    assert rejected.data["supported"] == ["2026-07-28"]
    loud = {**META, "io.modelcontextprotocol/logLevel": "debug"}
    envelope = modern.envelope(request(meta=loud), None)
    assert isinstance(envelope, Envelope) and envelope.log_level == "debug"


PUBLIC = CacheHint(5000, "public")


def shaped(reply: dict[str, object], method: str, hint: CacheHint = PUBLIC) -> dict[str, Any]:
    result = modern.shape_reply(json.dumps(reply).encode(), method, hint, 9)
    decoded: dict[str, Any] = json.loads(result.body)
    assert decoded["id"] == 9
    return decoded


def test_replies_get_the_eras_shape() -> None:
    listed = shaped({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}, "tools/list")["result"]
    assert listed["resultType"] == "complete" and (listed["ttlMs"], listed["cacheScope"]) == (5000, "public")
    assert listed["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-supervisor"
    called = shaped({"jsonrpc": "2.0", "id": 1, "result": {"content": [], "_meta": {"x": 1}}}, "tools/call")
    assert "ttlMs" not in called["result"] and called["result"]["_meta"]["x"] == 1
    asking = {"resultType": "input_required", "requestState": "s", "ttlMs": 3}
    passed = shaped({"jsonrpc": "2.0", "id": 1, "result": asking}, "resources/read")["result"]
    assert passed["resultType"] == "input_required" and "ttlMs" not in passed  # interim results are not cached
    own = {"contents": [], "ttlMs": 1234, "cacheScope": "public"}
    read = shaped({"jsonrpc": "2.0", "id": 1, "result": own}, "resources/read", CacheHint(0, "private"))["result"]
    assert (read["ttlMs"], read["cacheScope"]) == (1234, "public")  # a modern backend's own hints are kept
    gone = shaped({"jsonrpc": "2.0", "id": 1, "error": {"code": -32002, "message": "no"}}, "resources/read")
    assert gone["error"]["code"] == -32602


def test_envelope_keys_are_stripped_and_added() -> None:
    params = {"name": "t", "_meta": {**META, "progressToken": 3}}
    assert modern.strip_envelope(params) == {"name": "t", "_meta": {"progressToken": 3}}
    assert modern.strip_envelope({"name": "t", "_meta": dict(META)}) == {"name": "t"}

    class Session:
        capabilities = {"elicitation": {}}
        client_info = {"name": "old", "version": "0"}
        log_level = "info"

    meta = modern.with_envelope({"name": "t"}, Session())["_meta"]
    assert meta["io.modelcontextprotocol/clientCapabilities"] == {"elicitation": {}}
    assert meta["io.modelcontextprotocol/logLevel"] == "info"


def test_the_request_state_is_bound_and_expires() -> None:
    sealer = RequestStateSealer("k" * 64, ttl_s=60)
    binding = Binding("ann", "tools/call", "x--t")
    token = sealer.seal(binding, "held", "h1")
    assert sealer.unseal(token, binding) == ("held", "h1", "")
    for wrong in (Binding("bob", "tools/call", "x--t"), Binding("ann", "tools/call", "x--u")):
        with pytest.raises(StateRejected):
            sealer.unseal(token, wrong)
    with pytest.raises(StateRejected):
        sealer.unseal(token[:-2] + ("A" if token[-1] != "A" else "B") + token[-1], binding)
    with pytest.raises(StateRejected):
        RequestStateSealer("j" * 64, 60).unseal(token, binding)  # another replica's key
    # A shared secret verifies on every replica; an expired state nowhere.
    assert RequestStateSealer("k" * 64, 60).unseal(token, binding)[1] == "h1"
    stale = RequestStateSealer("k" * 64, ttl_s=-1).seal(binding, "held", "h2")
    with pytest.raises(StateRejected):
        sealer.unseal(stale, binding)


def test_the_listen_filter() -> None:
    kinds, uris = parse_filter({"notifications": {"toolsListChanged": True, "resourceSubscriptions": ["a", "a", "b"]}})
    assert kinds == {"tools"} and uris == ["a", "b"]
    assert parse_filter({}) == (frozenset(), [])
    for bad in ({"notifications": []}, {"notifications": {"resourceSubscriptions": [1]}}):
        with pytest.raises(FilterError):
            parse_filter(bad)
