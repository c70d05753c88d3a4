"""One msgpack encoder, one typed decoder per direction: decoding validates the envelope at once."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from mcp_supervisor.errors import ProtocolError
from mcp_supervisor.protocol.messages import (
    FromSupervisor,
    GatewayToWorker,
    ToSupervisor,
    WorkerToGateway,
)

_encoder = msgspec.msgpack.Encoder()
# Annotated, so each decoder's result type is the union itself whatever msgspec's stubs infer from a union argument.
_worker_to_gateway: msgspec.msgpack.Decoder[WorkerToGateway] = msgspec.msgpack.Decoder(WorkerToGateway)
_gateway_to_worker: msgspec.msgpack.Decoder[GatewayToWorker] = msgspec.msgpack.Decoder(GatewayToWorker)
_to_supervisor: msgspec.msgpack.Decoder[ToSupervisor] = msgspec.msgpack.Decoder(ToSupervisor)
_from_supervisor: msgspec.msgpack.Decoder[FromSupervisor] = msgspec.msgpack.Decoder(FromSupervisor)


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


T = TypeVar("T")


def _decode(decoder: msgspec.msgpack.Decoder[T], frame: bytes, direction: str) -> T:
    try:
        return decoder.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(f"Undecodable {direction} message ({len(frame)} bytes): {exc}.") from None


def decode_worker_to_gateway(frame: bytes) -> WorkerToGateway:
    return _decode(_worker_to_gateway, frame, "worker-to-gateway")


def decode_gateway_to_worker(frame: bytes) -> GatewayToWorker:
    return _decode(_gateway_to_worker, frame, "gateway-to-worker")


def decode_to_supervisor(frame: bytes) -> ToSupervisor:
    return _decode(_to_supervisor, frame, "to-supervisor")


def decode_from_supervisor(frame: bytes) -> FromSupervisor:
    return _decode(_from_supervisor, frame, "from-supervisor")
