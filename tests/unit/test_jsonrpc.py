"""JSON-RPC envelope validation and reply building at the gateway edge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_supervisor.gateway.server.jsonrpc import (
    MAX_DEPTH,
    JsonRpcFault,
    classify,
    error_bytes,
    nested_deeper_than,
    parse_body,
    result_bytes,
    spliced_error,
    spliced_result,
)
from mcp_supervisor.protocol.error_codes import INVALID_REQUEST, PARSE_ERROR


@pytest.mark.parametrize("body", [b"{", b"", b"not json", b'{"a": 1,}', b"\xff\xfe"])
def test_parse_body_invalid_json_is_parse_error(body: bytes) -> None:
    with pytest.raises(JsonRpcFault) as info:
        parse_body(body)
    assert info.value.code == PARSE_ERROR == -32700
    assert info.value.request_id is None
    reply = json.loads(info.value.to_bytes())
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700


def nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    """A message whose `params.arguments.x` holds arrays (or objects) `depth` levels deep: 3 + depth in all."""
    inner = opener * depth + closer * depth if opener == b"[" else b'{"k":' * (depth - 1) + b"{}" + b"}" * (depth - 1)
    return b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"t","arguments":{"x":' + inner + b"}}}"


@pytest.mark.parametrize("opener", [b"[", b"{"])
def test_parse_body_refuses_json_nested_past_its_own_limit_on_any_interpreter(opener: bytes) -> None:
    """CPython 3.12's msgspec decodes 1000 levels that 3.11's refused: the limit is the gateway's own."""
    closer = b"]" if opener == b"[" else b"}"
    assert parse_body(nested(MAX_DEPTH - 3, opener, closer))["id"] == 9  # exactly MAX_DEPTH levels: accepted
    for depth in (MAX_DEPTH - 2, 1000, 100_000):
        with pytest.raises(JsonRpcFault) as info:
            parse_body(nested(depth, opener, closer))
        assert info.value.code == PARSE_ERROR and "nested too deeply" in info.value.message


def test_many_brackets_but_shallow_are_accepted() -> None:
    wide = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":[' + b",".join([b"[[1],{}]"] * 5000) + b"]}}"
    assert len(parse_body(wide)["params"]["a"]) == 5000
    strings = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"s":"' + b"[{" * 5000 + b'"}}'
    assert parse_body(strings)["params"]["s"] == "[{" * 5000  # brackets inside strings are not nesting


def test_nested_deeper_than_counts_arrays_and_objects() -> None:
    assert not nested_deeper_than([], 1) and nested_deeper_than([[]], 1) and not nested_deeper_than([[]], 2)
    assert not nested_deeper_than("[[[", 1) and not nested_deeper_than({"a": [1, {"b": 2}]}, 3)
    assert nested_deeper_than({"a": [1, {"b": []}]}, 3)


def test_parse_body_valid_json() -> None:
    assert parse_body(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}') == {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "ping",
    }
    assert parse_body(b"[1, 2]") == [1, 2]


def _fault(document: Any) -> JsonRpcFault:
    with pytest.raises(JsonRpcFault) as info:
        classify(document)
    assert info.value.code == INVALID_REQUEST == -32600
    return info.value


@pytest.mark.parametrize("document", [[{"jsonrpc": "2.0", "method": "x"}], "x", 3, None, []])
def test_non_object_is_invalid_request(document: Any) -> None:
    assert _fault(document).request_id is None


@pytest.mark.parametrize("version", [None, "1.0", 2.0, "2"])
def test_wrong_jsonrpc_version_keeps_the_id(version: Any) -> None:
    document: dict[str, Any] = {"id": 7, "method": "ping"}
    if version is not None:
        document["jsonrpc"] = version
    fault = _fault(document)
    assert fault.request_id == 7
    assert json.loads(fault.to_bytes())["id"] == 7


@pytest.mark.parametrize("bad_id", [True, False, 1.5, 2.0, [1], {"a": 1}])
def test_bad_id_types_are_invalid_and_not_echoed(bad_id: Any) -> None:
    fault = _fault({"jsonrpc": "2.0", "id": bad_id, "method": "ping"})
    assert fault.request_id is None
    assert json.loads(fault.to_bytes())["id"] is None


@pytest.mark.parametrize("method", ["", 5, ["x"]])
def test_bad_method_keeps_the_id(method: Any) -> None:
    fault = _fault({"jsonrpc": "2.0", "id": "abc", "method": method})
    assert fault.request_id == "abc"


@pytest.mark.parametrize("params", [5, "x", True, 1.5])
def test_params_not_object_keeps_the_id(params: Any) -> None:
    fault = _fault({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params})
    assert fault.request_id == 3
    assert "params" in fault.message


def test_message_without_method_or_result_is_invalid() -> None:
    assert _fault({"jsonrpc": "2.0", "id": 9}).request_id == 9
    assert _fault({"jsonrpc": "2.0"}).request_id is None


def test_request_classification() -> None:
    document = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x", "arguments": {}}}
    incoming = classify(document)
    assert incoming.id == 1
    assert incoming.method == "tools/call"
    assert incoming.is_request is True
    assert incoming.is_notification is False
    assert incoming.params == {"name": "x", "arguments": {}}
    assert incoming.raw is document


def test_request_with_string_id_and_no_params() -> None:
    incoming = classify({"jsonrpc": "2.0", "id": "req-1", "method": "ping"})
    assert incoming.id == "req-1"
    assert incoming.is_request is True
    assert incoming.params == {}


def test_request_with_id_zero_is_a_request() -> None:
    incoming = classify({"jsonrpc": "2.0", "id": 0, "method": "ping"})
    assert incoming.id == 0
    assert incoming.is_request is True
    assert incoming.is_notification is False


def test_notification_classification() -> None:
    incoming = classify({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert incoming.id is None
    assert incoming.method == "notifications/initialized"
    assert incoming.is_notification is True
    assert incoming.is_request is False


@pytest.mark.parametrize("payload", [{"result": {}}, {"error": {"code": -1, "message": "no"}}, {"result": None}])
def test_response_classification(payload: dict[str, Any]) -> None:
    incoming = classify({"jsonrpc": "2.0", "id": 4, **payload})
    assert incoming.id == 4
    assert incoming.method is None
    assert incoming.is_request is False
    assert incoming.is_notification is False


RESULT: dict[str, Any] = {
    "content": [{"type": "text", "text": 'héllo → 世界 🎉 "quoted" \\ back'}],
    "structuredContent": {"nested": {"deep": [1, 2.5, None, True, {"k": "v"}]}},
    "_meta": {"x": {}},
    "isError": False,
}


@pytest.mark.parametrize("request_id", [0, 42, -1, 2**53, "abc", "", 'id with "quotes" and ü'])
def test_spliced_result_is_valid_json(request_id: int | str) -> None:
    raw = json.dumps(RESULT, ensure_ascii=False).encode()
    reply = spliced_result(request_id, raw)
    assert json.loads(reply) == {"jsonrpc": "2.0", "id": request_id, "result": RESULT}
    assert json.loads(result_bytes(request_id, RESULT)) == json.loads(reply)


@pytest.mark.parametrize("request_id", [5, "e-1"])
def test_spliced_error_is_valid_json(request_id: int | str) -> None:
    error = {"code": -32602, "message": "Bad “params”", "data": {"field": ["a", 1]}}
    reply = spliced_error(request_id, json.dumps(error).encode())
    assert json.loads(reply) == {"jsonrpc": "2.0", "id": request_id, "error": error}


def test_spliced_result_keeps_raw_bytes_verbatim() -> None:
    raw = b'{ "b" : 1 , "a" : [ ] }'
    reply = spliced_result(1, raw)
    assert reply == b'{"jsonrpc":"2.0","id":1,"result":' + raw + b"}"


def test_error_bytes_with_data() -> None:
    reply = error_bytes("r1", -32003, "Backend unavailable", data={"backend": "time", "retry": False})
    assert json.loads(reply) == {
        "jsonrpc": "2.0",
        "id": "r1",
        "error": {"code": -32003, "message": "Backend unavailable", "data": {"backend": "time", "retry": False}},
    }


def test_error_bytes_without_data_and_null_id() -> None:
    assert json.loads(error_bytes(None, -32600, "Invalid")) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "Invalid"},
    }


def test_error_bytes_with_falsy_data_keeps_it() -> None:
    assert json.loads(error_bytes(1, -1, "m", data=0))["error"]["data"] == 0
    assert json.loads(error_bytes(1, -1, "m", data=""))["error"]["data"] == ""


def test_fault_to_bytes() -> None:
    fault = JsonRpcFault(-32601, "Method not found", 12)
    assert json.loads(fault.to_bytes()) == {
        "jsonrpc": "2.0",
        "id": 12,
        "error": {"code": -32601, "message": "Method not found"},
    }
    assert str(fault) == "Method not found"


def test_params_must_be_an_object_in_mcp() -> None:
    with pytest.raises(JsonRpcFault) as info:
        classify({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": [1, 2]})
    assert info.value.code == -32600 and info.value.request_id == 1


def test_null_id_on_a_request_is_refused() -> None:
    with pytest.raises(JsonRpcFault) as info:
        classify({"jsonrpc": "2.0", "id": None, "method": "ping"})
    assert info.value.code == -32600
