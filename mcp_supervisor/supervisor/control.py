"""The supervisor's control socket: a ROUTER serving the gateway, the workers and the CLI.

Requests: Subscribe (gateway: Snapshot, then every BackendEvent), StatusRequest (CLI), ControlCommand (CLI),
WorkerStateReport and WorkerHeartbeat (only from workers without a heartbeat page: the others beat and report in
their page, protocol/beat_page.py, and connect no control socket). Never on the data path: if this loop
stalls, traffic keeps flowing.

Only peers holding credentials of this instance connect (protocol/socket_auth.py), and each message is checked
against the role its connection authenticated as: workers may only report on and beat for their own key and
generation; status, commands and the subscription belong to the gateway and the CLI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec
import zmq
import zmq.asyncio

from mcp_supervisor.errors import ProtocolError
from mcp_supervisor.protocol import codec, socket_auth
from mcp_supervisor.protocol.endpoints import Endpoints, configure_router
from mcp_supervisor.protocol.messages import (
    BackendEvent,
    BackendStatus,
    CommandResult,
    ControlCommand,
    GatewayHeartbeat,
    Snapshot,
    StatusRequest,
    Subscribe,
    WorkerHeartbeat,
    WorkerStateReport,
)
from mcp_supervisor.tasks import BackgroundTasks

log = logging.getLogger("mcp_supervisor.supervisor")


class ControlServer:
    def __init__(
        self,
        endpoints: Endpoints,
        instance_key: bytes,
        snapshot: Callable[[], Snapshot],
        on_report: Callable[[WorkerStateReport], None],
        on_command: Callable[[ControlCommand], Awaitable[CommandResult]],
    ) -> None:
        context = zmq.asyncio.Context.instance()
        self._guard = socket_auth.SocketGuard(zmq.Context.shadow(context.underlying), instance_key, _known_peer)
        self._socket = context.socket(zmq.ROUTER)
        configure_router(self._socket)
        socket_auth.as_server(self._socket)
        self._socket.bind(endpoints.control)
        self.refused = 0  # messages refused because the sender's role may not send them
        self._snapshot = snapshot
        self._on_report = on_report
        self._on_command = on_command
        self._subscribers: set[bytes] = set()
        self._task: asyncio.Task[None] | None = None
        self.on_heartbeat: Callable[[WorkerHeartbeat], None] = lambda beat: None
        self.on_gateway_heartbeat: Callable[[GatewayHeartbeat], None] = lambda beat: None
        self._commands = BackgroundTasks()

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="control-server")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._socket.close(0)
        self._guard.stop()

    async def _send(self, identity: bytes, message: msgspec.Struct) -> bool:
        try:
            await self._socket.send_multipart([identity, codec.encode(message)])
            return True
        except zmq.ZMQError:
            return False

    async def _command(self, identity: bytes, command: ControlCommand) -> None:
        try:
            result = await self._on_command(command)
        except Exception as exc:  # a failed command is answered, never left without a reply
            log.exception("Command %s failed.", command.name)
            result = CommandResult(ok=False, message=f"{command.name} failed: {exc}")
        await self._send(identity, result)

    async def publish(self, event: str, status: BackendStatus) -> None:
        await self.broadcast(BackendEvent(event=event, status=status))

    async def broadcast(self, message: msgspec.Struct) -> None:
        for identity in list(self._subscribers):
            if not await self._send(identity, message):
                self._subscribers.discard(identity)  # a gateway that went away

    async def _serve(self) -> None:
        while True:
            frames = await self._socket.recv_multipart(copy=False)
            if len(frames) != 2:
                continue
            identity, frame = frames[0].bytes, frames[1].bytes
            peer = socket_auth.peer_of(frames[1])
            try:
                message = codec.decode_to_supervisor(frame)
            except ProtocolError as exc:
                log.error("%s (from %s)", exc, peer)
                continue
            if not _allowed(peer, message):
                self.refused += 1
                log.warning("Refused a %s message from %s: not its to send.", type(message).__name__, peer)
                continue
            match message:
                case Subscribe():
                    self._subscribers.add(identity)
                    await self._send(identity, self._snapshot())
                case StatusRequest():
                    await self._send(identity, self._snapshot())
                case WorkerHeartbeat():
                    self.on_heartbeat(message)
                case GatewayHeartbeat():
                    self.on_gateway_heartbeat(message)
                case WorkerStateReport():
                    self._on_report(message)
                case ControlCommand():
                    # A command may wait on the very reports this loop delivers (a restart waits for the new
                    # worker's ready): run it aside so reports and heartbeats keep flowing meanwhile.
                    self._commands.spawn(self._command(identity, message))


def _known_peer(user: str) -> bool:
    return socket_auth.is_worker(user) or socket_auth.is_gateway(user) or user == socket_auth.CLI_USER


def _allowed(peer: str, message: msgspec.Struct) -> bool:
    """What each role may send; a worker speaks only for its own key and generation."""
    match message:
        case WorkerStateReport(key=key, generation=generation) | WorkerHeartbeat(key=key, generation=generation):
            return peer == socket_auth.worker_user(key, generation)
        case GatewayHeartbeat() | Subscribe():
            return socket_auth.is_gateway(peer)
        case StatusRequest() | ControlCommand():
            return socket_auth.is_gateway(peer) or peer == socket_auth.CLI_USER
    return False
