"""The gateway's subscription to the supervisor: backend state changes, exits above all.

A DEALER↔ROUTER pair rather than PUB/SUB: the supervisor answers a Subscribe with a full Snapshot and then
pushes events in order on the same pipe, so a gateway that (re)starts never misses state (no slow joiner).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Callable

import zmq
import zmq.asyncio

from mcp_supervisor.config.clients import ClientsConfig
from mcp_supervisor.config.loader import parse_clients_file, parse_tool_config
from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.errors import ConfigError, ProtocolError
from mcp_supervisor.gateway.dataplane.backends import Backends
from mcp_supervisor.protocol import codec, socket_auth
from mcp_supervisor.protocol.endpoints import Endpoints, configure_dealer
from mcp_supervisor.protocol.messages import (
    BackendEvent,
    BackendStatus,
    ClientsUpdate,
    ConfigStatus,
    GatewayHeartbeat,
    Snapshot,
    Subscribe,
    ToolConfigUpdate,
)
from mcp_supervisor.protocol.socket_auth import Credentials

log = logging.getLogger("mcp_supervisor.gateway")

HEARTBEAT_INTERVAL_S = 1.0
# A bound on what a heartbeat carries of the catalog's problems (a backend decides how many it causes).
MAX_PROBLEMS = 200
MAX_PROBLEM_CHARS = 500
REPEAT_PROBLEMS_EVERY = 30


class SupervisorLink:
    def __init__(
        self,
        endpoints: Endpoints,
        credentials: Credentials,
        backends: Backends,
        apply_tool_config: Callable[[ToolConfig], None],
        apply_clients: Callable[[ClientsConfig], None] | None = None,
    ) -> None:
        self._backends = backends
        self._apply_tool_config = apply_tool_config
        self._apply_clients = apply_clients
        self.gateway_status: BackendStatus | None = None
        self._socket = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        configure_dealer(self._socket, f"gateway:{os.getpid()}")
        socket_auth.as_client(self._socket, credentials)
        self._socket.connect(endpoints.control)
        self.config_error = ""
        # The raw mcp_server.json the supervisor runs (what the admin shows while the file on disk is broken).
        self.running_servers = b""
        # Called with the new config error ("" = none) whenever it changes (the admin's live page).
        self.config_listeners: list[Callable[[str], None]] = []
        # What the catalog withholds, sent with every heartbeat (the supervisor's `status` shows it).
        self.catalog_problems: Callable[[], list[str]] = list

    async def run(self) -> None:
        await self._socket.send(codec.encode(Subscribe()))
        while True:
            frame = await self._socket.recv()
            try:
                message = codec.decode_from_supervisor(frame)
            except ProtocolError as exc:
                log.error("%s", exc)
                continue
            match message:
                case Snapshot(backends=statuses, config_error=config_error):
                    self.running_servers = message.running_servers
                    self._set_config_error(config_error)
                    self.gateway_status = message.gateway
                    self._tool_config(message.tool_config)
                    self._clients(message.clients)
                    known = {status.key for status in statuses}
                    for key in set(self._backends.statuses) - known:
                        old = self._backends.statuses[key]
                        self._backends.on_status(old, "removed")
                    for status in statuses:
                        self._backends.on_status(status, "snapshot")
                    self._backends.snapshot_seen = True
                case BackendEvent(status=status) if status.type == "gateway":
                    self.gateway_status = status  # a sample of this very process
                case BackendEvent(event=event, status=status):
                    self._backends.on_status(status, event)
                case ToolConfigUpdate(data=data):
                    self._tool_config(data)
                case ClientsUpdate(data=data):
                    self._clients(data)
                case ConfigStatus(config_error=config_error, running_servers=running):
                    self.running_servers = running
                    self._set_config_error(config_error)

    def _set_config_error(self, config_error: str) -> None:
        changed = config_error != self.config_error
        self.config_error = config_error
        if changed:
            for listener in self.config_listeners:
                listener(config_error)

    async def heartbeat(self) -> None:
        """From this event loop: silence (a hung or stopped gateway) makes the supervisor replace us."""
        sent: list[str] | None = None
        for beat in itertools.count():
            problems = [problem[:MAX_PROBLEM_CHARS] for problem in self.catalog_problems()[:MAX_PROBLEMS]]
            # Carried when they change, and every REPEAT_PROBLEMS_EVERY beats (a supervisor that missed one).
            carried = problems if problems != sent or beat % REPEAT_PROBLEMS_EVERY == 0 else None
            await self._socket.send(codec.encode(GatewayHeartbeat(pid=os.getpid(), catalog_problems=carried)))
            sent = problems
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    def _tool_config(self, data: bytes) -> None:
        """The supervisor validated it already; a failure here would be a bug, and keeps the old config."""
        try:
            self._apply_tool_config(parse_tool_config(data) if data.strip() else ToolConfig())
        except ConfigError as exc:
            log.error("Ignoring a tool_config update: %s", exc)

    def _clients(self, data: bytes) -> None:
        if self._apply_clients is None:
            return
        try:
            self._apply_clients(parse_clients_file(data))
        except ConfigError as exc:
            log.error("Ignoring a clients.json update: %s", exc)

    def close(self) -> None:
        self._socket.close(0)
