"""The client side of the supervisor's control socket: the CLI's blocking calls and the admin's async commands."""

from __future__ import annotations

import zmq
import zmq.asyncio

from mcp_supervisor.config.settings import Settings
from mcp_supervisor.errors import ControlError
from mcp_supervisor.protocol import codec, socket_auth
from mcp_supervisor.protocol.endpoints import Endpoints, runtime_dir_for
from mcp_supervisor.protocol.messages import CommandResult, ControlCommand, Snapshot, StatusRequest
from mcp_supervisor.protocol.socket_auth import Credentials

TIMEOUT_MS = 5000


def _ask(settings: Settings, request: bytes, timeout_ms: int = TIMEOUT_MS) -> object:
    endpoints = Endpoints(runtime_dir_for(settings.config_dir))
    if not (endpoints.runtime_dir / "control.sock").exists():
        raise ControlError(f"No supervisor is running for {settings.config_dir}.")
    try:
        password = (endpoints.runtime_dir / socket_auth.CLI_SECRET_FILE).read_text().strip()
    except OSError as exc:
        raise ControlError(
            f"Cannot read the supervisor's CLI credentials for {settings.config_dir}: {exc.strerror} "
            "(run the CLI as the user the supervisor runs as)."
        ) from None
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket_auth.as_client(socket, Credentials(user=socket_auth.CLI_USER, password=password))
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


async def send_command_async(
    endpoints: Endpoints, credentials: Credentials, name: str, key: str = "", timeout_s: float = 60.0
) -> CommandResult:
    """The gateway's (admin's) way to command the supervisor: one DEALER per command, so replies never mix
    with the event stream of the gateway's subscription."""
    socket = zmq.asyncio.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket_auth.as_client(socket, credentials)
    try:
        socket.connect(endpoints.control)
        await socket.send(codec.encode(ControlCommand(name=name, key=key)))
        if not await socket.poll(int(timeout_s * 1000)):
            raise ControlError(f"The supervisor did not answer the {name} command within {timeout_s:g} s.")
        reply = codec.decode_from_supervisor(await socket.recv())
    finally:
        socket.close(0)
    if not isinstance(reply, CommandResult):
        raise ControlError(f"Unexpected answer from the supervisor: {reply!r}.")
    return reply
