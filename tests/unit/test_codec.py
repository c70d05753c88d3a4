"""Every ZeroMQ envelope round-trips through msgpack; bad frames raise ProtocolError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from mcp_supervisor.errors import ProtocolError
from mcp_supervisor.protocol import codec
from mcp_supervisor.protocol.messages import (
    BackendEvent,
    BackendStatus,
    CatalogChanged,
    CommandResult,
    ControlCommand,
    Forward,
    Heartbeat,
    Reply,
    Resync,
    Snapshot,
    StatusRequest,
    Subscribe,
    WorkerReady,
    WorkerStateReport,
)

# Payloads that are not valid UTF-8 must survive byte for byte.
BINARY = b'\x00\xff\xfe\x80\xc3\x28{"a":1}\n\x9f'

STATUS = BackendStatus(
    key="time",
    type="stdio",
    state="ready",
    generation=3,
    pid=4242,
    restarts=2,
    started_at=1700000000.25,
    last_exit="exit code 1",
    last_error="boom ü",
)

Decoder = Callable[[bytes], Any]

CASES: list[tuple[msgspec.Struct, Decoder]] = [
    (
        WorkerReady(
            key="time",
            generation=1,
            pid=99,
            initialize_result=b'{"protocolVersion":"2025-06-18"}',
            tools=BINARY,
        ),
        codec.decode_worker_to_gateway,
    ),
    (WorkerReady(key="k", generation=0, pid=1), codec.decode_worker_to_gateway),
    (CatalogChanged(key="fs", generation=7, kind="prompts", items=BINARY), codec.decode_worker_to_gateway),
    (CatalogChanged(key="fs", generation=7), codec.decode_worker_to_gateway),
    (Reply(rid=12, result=BINARY), codec.decode_worker_to_gateway),
    (Reply(rid=13, error=b'{"code":-1,"message":"x"}'), codec.decode_worker_to_gateway),
    (Heartbeat(key="time", generation=2), codec.decode_worker_to_gateway),
    (Forward(rid=2**40, body=BINARY), codec.decode_gateway_to_worker),
    (Resync(), codec.decode_gateway_to_worker),
    (Subscribe(), codec.decode_to_supervisor),
    (StatusRequest(), codec.decode_to_supervisor),
    (ControlCommand(name="restart", key="time"), codec.decode_to_supervisor),
    (ControlCommand(name="reload"), codec.decode_to_supervisor),
    (WorkerStateReport(key="time", generation=4, state="failed", detail="spawn: ENOENT"), codec.decode_to_supervisor),
    (Snapshot(backends=[STATUS, BackendStatus(key="b", type="sse", state="starting")]), codec.decode_from_supervisor),
    (Snapshot(config_error="mcp_server.json: broken"), codec.decode_from_supervisor),
    (Snapshot(), codec.decode_from_supervisor),
    (BackendEvent(event="exited", status=STATUS), codec.decode_from_supervisor),
    (CommandResult(ok=True), codec.decode_from_supervisor),
    (CommandResult(ok=False, message="no such backend"), codec.decode_from_supervisor),
]

ALL_DECODERS: list[Decoder] = [
    codec.decode_worker_to_gateway,
    codec.decode_gateway_to_worker,
    codec.decode_to_supervisor,
    codec.decode_from_supervisor,
]


def _case_id(case: tuple[msgspec.Struct, Decoder]) -> str:
    return type(case[0]).__name__


@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
def test_round_trip(case: tuple[msgspec.Struct, Decoder]) -> None:
    message, decode = case
    frame = codec.encode(message)
    assert isinstance(frame, bytes)
    decoded = decode(frame)
    assert type(decoded) is type(message)
    assert decoded == message


def test_every_message_type_is_covered() -> None:
    covered = {type(message) for message, _ in CASES}
    assert covered == {
        WorkerReady,
        CatalogChanged,
        Reply,
        Heartbeat,
        Forward,
        Resync,
        Subscribe,
        StatusRequest,
        ControlCommand,
        WorkerStateReport,
        Snapshot,
        BackendEvent,
        CommandResult,
    }


def test_binary_payload_survives_byte_for_byte() -> None:
    decoded = codec.decode_gateway_to_worker(codec.encode(Forward(rid=1, body=BINARY)))
    assert isinstance(decoded, Forward)
    assert decoded.body == BINARY
    assert isinstance(decoded.body, bytes)


def test_tag_is_on_the_wire() -> None:
    assert msgspec.msgpack.decode(codec.encode(Heartbeat(key="k", generation=1))) == {
        "t": "hb",
        "key": "k",
        "generation": 1,
    }


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        b"garbage that is not msgpack",
        msgspec.msgpack.encode([1, 2, 3]),
        msgspec.msgpack.encode({"no": "tag"}),
        msgspec.msgpack.encode({"t": "nonexistent"}),
    ],
)
@pytest.mark.parametrize("decode", ALL_DECODERS)
def test_garbage_raises_protocol_error(frame: bytes, decode: Decoder) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert f"({len(frame)} bytes)" in str(info.value)


def test_missing_required_field_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        codec.decode_worker_to_gateway(msgspec.msgpack.encode({"t": "hb", "key": "k"}))


def test_wrong_field_type_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        codec.decode_gateway_to_worker(msgspec.msgpack.encode({"t": "fwd", "rid": "one", "body": b"x"}))


@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
def test_wrong_direction_raises_protocol_error(case: tuple[msgspec.Struct, Decoder]) -> None:
    message, right = case
    frame = codec.encode(message)
    for decode in ALL_DECODERS:
        if decode is right:
            continue
        with pytest.raises(ProtocolError):
            decode(frame)


@pytest.mark.parametrize(
    ("fields", "decode", "expected"),
    [
        (
            {"t": "hb", "key": "k", "generation": 3, "future": {"x": [1, 2]}},
            codec.decode_worker_to_gateway,
            Heartbeat(key="k", generation=3),
        ),
        (
            {"t": "fwd", "rid": 5, "body": b"{}", "trace_id": "abc", "priority": 9},
            codec.decode_gateway_to_worker,
            Forward(rid=5, body=b"{}"),
        ),
        (
            {"t": "command", "name": "stop", "requested_by": "cli"},
            codec.decode_to_supervisor,
            ControlCommand(name="stop"),
        ),
        (
            {
                "t": "event",
                "event": "ready",
                "status": {"key": "a", "type": "http", "state": "ready", "new_status_field": 1.5},
                "seq": 1,
            },
            codec.decode_from_supervisor,
            BackendEvent(event="ready", status=BackendStatus(key="a", type="http", state="ready")),
        ),
    ],
)
def test_unknown_fields_are_ignored(fields: dict[str, Any], decode: Decoder, expected: msgspec.Struct) -> None:
    assert decode(msgspec.msgpack.encode(fields)) == expected
