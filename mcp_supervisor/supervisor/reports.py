"""What the children say of themselves: heartbeats, and a worker's ready or failed report.

A report comes by message (control socket) or, from a worker with a heartbeat page, written in the page and
signalled on one eventfd every worker inherits (protocol/beat_page.py). Either way a STARTING worker that says
ready becomes RUNNING here; everything else about the slot's life is in supervisor/children.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping

from mcp_supervisor.protocol.messages import GatewayHeartbeat, WorkerHeartbeat, WorkerStateReport
from mcp_supervisor.protocol.spawn import REPORT_FD_ENV
from mcp_supervisor.protocol.states import WorkerReport
from mcp_supervisor.supervisor.slots import RUNNING, STARTING, Slot

log = logging.getLogger("mcp_supervisor.supervisor")


class Reports:
    def __init__(
        self, gateway: Slot, workers: Callable[[], Mapping[str, Slot]], publish: Callable[[str, Slot], None]
    ) -> None:
        self._gateway = gateway
        self._workers = workers  # key -> the worker's current slot
        self._publish = publish
        # Written by a worker once it reported ready or failed in its heartbeat page (protocol/beat_page.py).
        self._fd: int | None = None
        # The gateway's catalog problems, as its last heartbeat told (shown by `status`).
        self.catalog_problems: list[str] = []

    def open(self) -> None:
        """The report eventfd: workers (forked or spawned) inherit it; the loop reads their pages when it fires."""
        if not hasattr(os, "eventfd"):
            return
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        asyncio.get_running_loop().add_reader(self._fd, self._on_page_reports)

    def worker_fds(self) -> dict[str, int]:
        """Environment name -> fd of what every worker (and the zygote, for them) inherits besides its handoff."""
        return {REPORT_FD_ENV: self._fd} if self._fd is not None else {}

    def _on_page_reports(self) -> None:
        assert self._fd is not None
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._fd)
        for slot in list(self._workers().values()):
            if slot.state == STARTING and slot.beats is not None:
                report = slot.beats.read_report()
                if report is not None:
                    self.reported(slot, report.state, report.detail, report.era, report.protocol_version)

    def on_gateway_heartbeat(self, beat: GatewayHeartbeat) -> None:
        child = self._gateway.child
        if child is not None and child.pid == beat.pid:
            self._gateway.last_heartbeat = time.monotonic()
            self._gateway.heartbeat_seen = True
            if beat.catalog_problems is not None:
                self.catalog_problems = beat.catalog_problems

    def on_heartbeat(self, beat: WorkerHeartbeat) -> None:
        slot = self._workers().get(beat.key)
        if slot is not None and slot.generation == beat.generation:
            slot.last_heartbeat = time.monotonic()
            slot.in_flight = beat.in_flight
            slot.refused_replies = beat.refused_replies

    def on_report(self, report: WorkerStateReport) -> None:
        """A report by message (a worker without a heartbeat page or report fd)."""
        slot = self._workers().get(report.key)
        if slot is None or slot.generation != report.generation:
            return
        self.reported(slot, report.state, report.detail, report.era, report.protocol_version)

    def reported(self, slot: Slot, state: str, detail: str, era: str = "", protocol_version: str = "") -> None:
        slot.last_heartbeat = time.monotonic()
        if state == WorkerReport.READY and slot.state == STARTING:
            slot.state = RUNNING
            slot.last_error = None
            slot.era, slot.protocol_version = era, protocol_version
            slot.settled.set()
            log.info("worker[%s] is RUNNING (%s).", slot.key, detail)
            self._publish("ready", slot)
        elif state == WorkerReport.FAILED:
            slot.last_error = detail
