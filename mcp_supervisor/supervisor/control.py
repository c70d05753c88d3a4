"""The supervisor's control socket: a ROUTER serving the gateway, the workers and the CLI.

Requests: Subscribe (gateway: Snapshot, then every BackendEvent), StatusRequest (CLI), ControlCommand (CLI),
WorkerStateReport (workers). Never on the data path: if this loop stalls, traffic keeps flowing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec
import zmq
import zmq.asyncio

from mcp_supervisor.errors import ProtocolError
from mcp_supervisor.protocol import codec
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

log = logging.getLogger("mcp_supervisor.supervisor")


class ControlServer:
    def __init__(
        self,
        endpoints: Endpoints,
        snapshot: Callable[[], Snapshot],
        on_report: Callable[[WorkerStateReport], None],
        on_command: Callable[[ControlCommand], Awaitable[CommandResult]],
    ) -> None:
        self._socket = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
        configure_router(self._socket)
        self._socket.bind(endpoints.control)
        self._snapshot = snapshot
        self._on_report = on_report
        self._on_command = on_command
        self._subscribers: set[bytes] = set()
        self._task: asyncio.Task[None] | None = None
        self.on_heartbeat: Callable[[WorkerHeartbeat], None] = lambda beat: None
        self.on_gateway_heartbeat: Callable[[GatewayHeartbeat], None] = lambda beat: None
        self._commands: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="control-server")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._socket.close(0)

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
            identity, frame = await self._socket.recv_multipart()
            try:
                message = codec.decode_to_supervisor(frame)
            except ProtocolError as exc:
                log.error("%s", exc)
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
                    task = asyncio.create_task(self._command(identity, message))
                    self._commands.add(task)
                    task.add_done_callback(self._commands.discard)
