"""The worker's sockets: the data DEALER to the gateway, and its reports and heartbeats to the supervisor.

With a heartbeat page and a report eventfd from the handoff, the worker has no control socket at all (one
ZeroMQ connection, ~100 kB here and ~35 kB in the supervisor, a handshake and its pings, per worker); without,
it beats and reports by message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio

from mcp_supervisor.protocol import codec, socket_auth
from mcp_supervisor.protocol.beat_page import BeatPage
from mcp_supervisor.protocol.channel import Channel
from mcp_supervisor.protocol.endpoints import Endpoints, configure_dealer
from mcp_supervisor.protocol.messages import WorkerHeartbeat, WorkerStateReport
from mcp_supervisor.protocol.spawn import WorkerSpec
from mcp_supervisor.worker.budget import gateway_heartbeat


class GatewayLink:
    def __init__(self, spec: WorkerSpec, beats: BeatPage | None, report_fd: int | None) -> None:
        """`beats`: the heartbeat page; `report_fd`: the eventfd that wakes the supervisor to read a report in
        it (used only with a page)."""
        self.key = spec.server.key
        self._generation = spec.generation
        self._beats = beats
        self._report_fd = report_fd if beats is not None else None
        endpoints = Endpoints(runtime_dir=Path(spec.runtime_dir))
        self._ctx = zmq.asyncio.Context()
        # The data socket carries every relayed message: driven without zmq.asyncio's Future per message.
        data: zmq.Socket[bytes] = zmq.Context.shadow(self._ctx.underlying).socket(zmq.DEALER)
        configure_dealer(data, spec.identity)
        socket_auth.as_client(data, spec.credentials)
        data.connect(endpoints.data)
        self.data = Channel(data)
        # Handshakes of the data socket with a (restarted) gateway: see GATEWAY_BEAT_EVERY in worker/main.py.
        self._connections: zmq.Socket[bytes] = data.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._to_gateway = gateway_heartbeat(self.key, spec.generation, (0, 0))
        self._counts = (0, 0)
        self._on_handshake: Callable[[], None] = lambda: None
        self._control: zmq.asyncio.Socket | None = None
        if self._report_fd is None:
            self._control = self._ctx.socket(zmq.DEALER)
            configure_dealer(self._control, f"worker:{spec.identity}")
            socket_auth.as_client(self._control, spec.credentials)
            self._control.connect(endpoints.control)

    def start(self, on_handshake: Callable[[], None]) -> None:
        """Start the data channel; `on_handshake` runs whenever a handshake with the gateway succeeded."""
        self.data.start()
        self._on_handshake = on_handshake
        asyncio.get_running_loop().add_reader(self._connections.FD, self._connection_events)
        self._connection_events()  # edge-triggered: whatever happened before we watched

    def send(self, message: msgspec.Struct) -> None:
        self.data.send([codec.encode(message)])

    async def report(self, state: str, detail: str = "", era: str = "", protocol_version: str = "") -> None:
        if self._beats is not None and self._report_fd is not None:
            self._beats.report(state, detail, era, protocol_version)
            with contextlib.suppress(OSError):
                os.eventfd_write(self._report_fd, 1)
            return
        assert self._control is not None
        report = WorkerStateReport(
            key=self.key,
            generation=self._generation,
            state=state,
            detail=detail,
            era=era,
            protocol_version=protocol_version,
        )
        await self._control.send(codec.encode(report))

    async def beat(self, in_flight: int, refused: int) -> None:
        """Into the heartbeat page (read by the supervisor's watchdog, waking nobody), or as a message when the
        handoff brought no page."""
        if self._beats is not None:
            self._beats.beat(in_flight, refused)
        elif self._control is not None:
            beat = WorkerHeartbeat(
                key=self.key, generation=self._generation, in_flight=in_flight, refused_replies=refused
            )
            await self._control.send(codec.encode(beat))

    def beat_gateway(self, counts: tuple[int, int], due: bool) -> None:
        """The data-plane heartbeat, when `due` or when the notification budget's (dropped, coalesced) changed."""
        if due or counts != self._counts:
            self._counts = counts  # for the gateway's /metrics
            self._to_gateway = gateway_heartbeat(self.key, self._generation, counts)
            self.data.send([self._to_gateway])

    def resend_beat(self) -> None:
        self.data.send([self._to_gateway])

    def _connection_events(self) -> None:
        handshakes = 0
        while not self._connections.closed and int(self._connections.get(zmq.EVENTS)) & zmq.POLLIN:
            try:
                self._connections.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            handshakes += 1
        if handshakes:
            self._on_handshake()

    def close(self) -> None:
        if not self._connections.closed:
            with contextlib.suppress(RuntimeError, ValueError):
                asyncio.get_running_loop().remove_reader(self._connections.FD)
            self._connections.close(0)
        self.data.close()
        if self._control is not None:
            self._control.close(0)
        self._ctx.term()
        if self._beats is not None:
            self._beats.close()
