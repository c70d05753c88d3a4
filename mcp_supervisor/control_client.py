"""The CLI's side of the supervisor's control socket (blocking, one request, bounded wait)."""

from __future__ import annotations

import zmq

from mcp_supervisor.config.settings import Settings
from mcp_supervisor.errors import ControlError
from mcp_supervisor.protocol import codec
from mcp_supervisor.protocol.endpoints import Endpoints, runtime_dir_for
from mcp_supervisor.protocol.messages import CommandResult, ControlCommand, Snapshot, StatusRequest

TIMEOUT_MS = 5000


def _ask(settings: Settings, request: bytes, timeout_ms: int = TIMEOUT_MS) -> object:
    endpoints = Endpoints(runtime_dir_for(settings.config_dir))
    if not (endpoints.runtime_dir / "control.sock").exists():
        raise ControlError(f"No supervisor is running for {settings.config_dir}.")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(endpoints.control)
        socket.send(request)
        if not socket.poll(timeout_ms):
            raise ControlError(f"The supervisor for {settings.config_dir} did not answer within {timeout_ms} ms.")
        return codec.decode_from_supervisor(socket.recv())
    finally:
        socket.close(0)


def request_status(settings: Settings) -> Snapshot:
    reply = _ask(settings, codec.encode(StatusRequest()))
    if not isinstance(reply, Snapshot):
        raise ControlError(f"Unexpected answer from the supervisor: {reply!r}.")
    return reply


def send_command(settings: Settings, name: str, key: str = "") -> CommandResult:
    reply = _ask(settings, codec.encode(ControlCommand(name=name, key=key or "")), timeout_ms=30_000)
    if not isinstance(reply, CommandResult):
        raise ControlError(f"Unexpected answer from the supervisor: {reply!r}.")
    return reply
