"""Our envelope ladder (envelope_ladder.py, x_mcp_headers.py) against the SDK's own (`mcp.shared.inbound`), on
the same inputs: same verdicts, codes, messages and data. And the gateway's 2026-07-28 path without the SDK."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from mcp.shared import inbound
from starlette.datastructures import Headers

from mcp_supervisor.gateway.server import envelope_ladder, x_mcp_headers

V = "io.modelcontextprotocol/protocolVersion"
C = "io.modelcontextprotocol/clientCapabilities"
INFO = "io.modelcontextprotocol/clientInfo"
META = {V: "2026-07-28", C: {}, INFO: {"name": "c", "version": "1"}}
SUPPORTED = ("2026-07-28",)


def body(method: Any = "tools/call", params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def headers(version: str = "2026-07-28", method: str = "tools/call", name: str | None = "echo") -> dict[str, str]:
    found = {"mcp-protocol-version": version, "mcp-method": method}
    return found if name is None else {**found, "mcp-name": name}


BODIES = [
    body(params={"name": "echo", "_meta": META}),
    body(params={"name": "echo", "_meta": {V: "2026-07-28", C: {"sampling": {}}}}),
    body(params={"name": "echo", "_meta": {V: "2099-01-01", C: {}}}),
    body(params={"name": "echo", "_meta": {V: 20260728, C: {}}}),
    body(params={"name": "echo", "_meta": {V: None, C: {}}}),
    body(params={"name": "echo", "_meta": {C: {}}}),
    body(params={"name": "echo", "_meta": {V: "2026-07-28"}}),
    body(params={"name": "echo", "_meta": {}}),
    body(params={"name": "echo", "_meta": []}),
    body(params={"name": "echo"}),
    body(params=[1, 2]),
    body(params="text"),
    body(params=None),
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    body("resources/read", {"uri": "file:///a", "_meta": META}),
    body("prompts/get", {"name": "é", "_meta": META}),
    body("tools/list", {"_meta": META}),
    body(None, {"_meta": META}),
]
HEADER_SETS: list[dict[str, str] | None] = [
    None,
    headers(),
    headers(name=None),
    headers(name="other"),
    headers(version="2025-11-25"),
    headers(method="tools/list"),
    headers(method="resources/read", name="file:///a"),
    headers(method="prompts/get", name="=?base64?w6k=?="),
    headers(method="prompts/get", name="=?base64?w6k?="),
    headers(method="tools/list", name=None),
    {"mcp-method": "tools/call"},
]


@pytest.mark.parametrize("raw", BODIES)
@pytest.mark.parametrize("sent", HEADER_SETS)
def test_the_ladder_says_what_the_sdks_says(raw: dict[str, Any], sent: dict[str, str] | None) -> None:
    ours = envelope_ladder.classify(raw, sent, SUPPORTED)
    theirs = inbound.classify_inbound_request(raw, headers=sent, supported_modern_versions=SUPPORTED)
    if isinstance(theirs, inbound.InboundLadderRejection):
        assert isinstance(ours, envelope_ladder.Rejection)
        assert (ours.code, ours.message, ours.data) == (theirs.code, theirs.message, theirs.data)
    else:
        assert isinstance(ours, envelope_ladder.Route)
        assert (ours.protocol_version, ours.client_info, ours.client_capabilities) == (
            theirs.protocol_version,
            theirs.client_info,
            theirs.client_capabilities,
        )


def test_duplicated_routing_headers_and_statuses() -> None:
    for pairs in ([("Mcp-Method", "a"), ("mcp-method", "a")], [("mcp-name", "x")], [("MCP-Protocol-Version", "1")] * 2):
        assert envelope_ladder.find_duplicated_routing_header(pairs) == inbound.find_duplicated_routing_header(pairs)
    assert dict(inbound.ERROR_CODE_HTTP_STATUS) == envelope_ladder.ERROR_CODE_HTTP_STATUS


STRING_B = {"type": "string", "x-mcp-header": "B"}
STRING_LOWER_X = {"type": "string", "x-mcp-header": "x"}
SCHEMAS: list[Any] = [
    {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}},
    {"type": "object", "properties": {"n": {"type": "integer", "x-mcp-header": "N"}, "on": {"type": "boolean"}}},
    {"type": "object", "properties": {"on": {"type": "boolean", "x-mcp-header": "On"}}},
    {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "string", "x-mcp-header": "B"}}}},
    },
    {"type": "object", "properties": {"f": {"type": "number", "x-mcp-header": "F"}}},  # invalid: nothing checked
    {"type": "object", "properties": {"l": {"type": ["string"], "x-mcp-header": "L"}}},  # invalid
    {"type": "object", "items": {"x-mcp-header": "Deep", "type": "string"}},  # invalid: off the properties chain
    {"type": "object", "properties": {"r": {"type": "string", "x-mcp-header": "bad token"}}},  # invalid
    {
        "type": "object",
        "properties": {"x": {"type": "string", "x-mcp-header": "X"}, "y": {"type": "string", "x-mcp-header": "x"}},
    },
]
ARGUMENTS: list[dict[str, Any]] = [
    {},
    {"region": "eu"},
    {"region": "é"},
    {"region": None},
    {"region": ["eu"]},
    {"n": 42},
    {"n": 42.0},
    {"n": True},
    {"on": True},
    {"a": {"b": "deep"}},
    {"a": "flat"},
    {"f": 1.5},
    {"l": "x", "x": "1", "y": "2"},
]
PARAM_HEADERS: list[list[tuple[str, str]]] = [
    [],
    [("Mcp-Param-Region", "eu")],
    [("mcp-param-region", "=?base64?w6k=?=")],
    [("mcp-param-region", "=?base64?not base64?=")],
    [("Mcp-Param-Region", "eu"), ("Mcp-Param-Region", "eu")],
    [("Mcp-Param-N", "42")],
    [("Mcp-Param-N", "42.00")],
    [("Mcp-Param-N", "42.5")],
    [("Mcp-Param-On", "true")],
    [("Mcp-Param-B", "deep")],
    [("Mcp-Param-F", "1.5")],
]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("arguments", ARGUMENTS)
@pytest.mark.parametrize("pairs", PARAM_HEADERS)
def test_param_headers_as_the_sdk_checks_them(
    schema: Any, arguments: dict[str, Any], pairs: list[tuple[str, str]]
) -> None:
    sent = Headers(raw=[(name.lower().encode(), value.encode()) for name, value in pairs])
    ours = x_mcp_headers.validate(schema, arguments, sent)
    theirs = inbound.validate_mcp_param_headers(schema, arguments, sent)
    if theirs is None:
        assert ours is None
    else:
        assert ours is not None and (ours.code, ours.message) == (theirs.code, theirs.message)


def test_the_gateway_serves_the_modern_era_without_importing_the_sdk() -> None:
    """The SDK's import cost the gateway ~1 s of CPU and 33 MB of RSS (issue 27): none of its modules may load
    for a 2026-07-28 request's envelope, its reply, its requestState, or a sealed session id."""
    script = """
import sys
import mcp_supervisor.gateway.app, mcp_supervisor.gateway.frontends.stdio
from mcp_supervisor.gateway.server import modern
from mcp_supervisor.gateway.server.request_state import Binding, RequestStateSealer
from mcp_supervisor.gateway.frontends.sealed_sessions import SessionSealer
from starlette.datastructures import Headers
from mcp_supervisor.gateway.server import x_mcp_headers
meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
raw = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "_meta": meta}}
sent = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "t")]
assert isinstance(modern.envelope(raw, sent), modern.Envelope)
assert modern.http_status(-32602) == 400
schema = {"type": "object", "properties": {"r": {"type": "string", "x-mcp-header": "R"}}}
assert x_mcp_headers.validate(schema, {"r": "a"}, Headers({"mcp-param-r": "a"})) is None
modern.shape_reply(b'{"jsonrpc":"2.0","id":1,"result":{}}', "tools/call", None, 1)
sealer = RequestStateSealer("", 60.0)
binding = Binding("p", "tools/call", "t")
assert sealer.unseal(sealer.seal(binding, "held", "1"), binding)[1] == "1"
sessions = SessionSealer("", b"k" * 32, 60.0)
sealed = sessions.seal("p", "2025-11-25", {}, {})
assert sealed is not None and sessions.unseal(sealed[0], "p").principal == "p"
loaded = sorted(name for name in sys.modules if name == "mcp" or name.startswith(("mcp.", "mcp_types", "pydantic")))
print(loaded)
assert not loaded, loaded
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
