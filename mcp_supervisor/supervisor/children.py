"""The slot state machine: the gateway's slot and each backend's worker slot, from start through exit, crash,
backoff, FATAL and its cool-down, to a commanded stop or a replacement.

How a child is made is child_start.py's; what the children report (ready, heartbeats) is reports.py's; the
supervisor (main.py) decides which slots exist (start-up, reload, commands) and hands exits here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from mcp_supervisor.config.loader import effective_supervision
from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.protocol.states import WorkerReport
from mcp_supervisor.supervisor import reaper
from mcp_supervisor.supervisor.backend_launch import cleanup_cgroup
from mcp_supervisor.supervisor.child_start import ChildStarter, close_fds
from mcp_supervisor.supervisor.helpers import HelperProcesses
from mcp_supervisor.supervisor.host import Host
from mcp_supervisor.supervisor.package_step import PackageStep
from mcp_supervisor.supervisor.process import ChildProcess, describe_exit
from mcp_supervisor.supervisor.slots import (
    BACKOFF,
    FATAL,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    GatewaySlot,
    Slot,
    WorkerSlot,
    policy_for,
)
from mcp_supervisor.supervisor.stderr import open_captures
from mcp_supervisor.supervisor.zygote import Zygote

log = logging.getLogger("mcp_supervisor.supervisor")

# Workers started per turn of the loop when many start at once (a reload's or the start-up's): between turns
# the first ones' ready reports, fork answers and exits are handled.
SPAWN_CHUNK = 32
# Exit statuses of unknown children kept while fork requests are pending (one may be such a worker).
MAX_UNKNOWN_EXITS = 10_000


class Children:
    def __init__(
        self,
        settings: Settings,
        host: Host,
        zygote: Zygote,
        helpers: HelperProcesses,
        stopping: asyncio.Event,
        finish: Callable[[int], None],
        reap: Callable[[], None],
        publish: Callable[[str, Slot], None],
        background: Callable[[Coroutine[Any, Any, Any]], None],
        servers: Callable[[], Mapping[str, ServerEntry]],
        worker_fds: Callable[[], dict[str, int]],
    ) -> None:
        self._settings = settings
        self._host = host
        self._zygote = zygote
        self._helpers = helpers
        self._stopping = stopping  # set: everything is stopping, nothing (re)starts
        self._finish = finish  # ends the supervisor with an exit code
        self._reap = reap  # reaps every exited child (the supervisor's, which hands slots' exits to `exited`)
        self._publish = publish
        address = f"port {settings.port} on {settings.host}"
        self.gateway = GatewaySlot(
            "gateway", settings.supervision, policy_for(settings.supervision), stdio=host.stdio, address=address
        )
        self.workers: dict[str, WorkerSlot] = {}
        self.by_pid: dict[int, Slot] = {}
        # While fork requests are pending, an unknown child may be a worker whose pid is on its way: its exit
        # status is kept here, and orphan sweeps wait (they would kill it).
        self._unknown_exits: dict[int, int] = {}
        self._sweep_wanted = False
        packages = PackageStep(settings, helpers)
        self.starter = ChildStarter(self, settings, host, zygote, packages, servers, worker_fds, publish, background)

    def all(self) -> list[Slot]:
        """The gateway's first, then every worker's."""
        return [self.gateway, *self.workers.values()]

    def new_slot(self, key: str, entry: ServerEntry, generation: int = 0) -> WorkerSlot:
        options = effective_supervision(self._settings.supervision, entry)
        policy = policy_for(options, remote=entry.type != "stdio")
        slot = WorkerSlot(key, options, policy, generation=generation, entry=entry)
        self.workers[key] = slot
        return slot

    def wanted(self, slot: Slot) -> bool:
        """The slot in force for its child (not stopped for good, replaced or removed), and nothing stopping."""
        current = slot is self.gateway or self.workers.get(slot.key) is slot
        return current and not self._stopping.is_set()

    # ------------------------------------------------------------------ starts

    def spawn(self, slot: Slot) -> None:
        slot.start_with(self.starter)

    def starting_slots(self, entries: Mapping[str, ServerEntry]) -> list[WorkerSlot]:
        """New slots for `entries`, STARTING from now on: the gateway must see them starting, not stopped, until
        spawn_many reaches them (and it waits for STARTING backends: STARTUP_WAIT_SECONDS)."""
        slots = [self.new_slot(key, entry) for key, entry in entries.items()]
        for slot in slots:
            slot.state = STARTING
        return slots

    async def spawn_many(self, slots: list[WorkerSlot]) -> None:
        """Start many workers (starting_slots), SPAWN_CHUNK per turn of the loop: between chunks the first
        workers' ready reports, the zygote's answers and any exits are handled while the next ones start."""
        for start in range(0, len(slots), SPAWN_CHUNK):
            for slot in slots[start : start + SPAWN_CHUNK]:
                if slot.state == STARTING and self.wanted(slot):
                    self.spawn(slot)
            await asyncio.sleep(0)

    def forked(
        self, slot: WorkerSlot, generation: int, read_fd: int, pid: int | None, backend_fd: int | None = None
    ) -> None:
        """The zygote's answer. A worker's ready report may come before it (both wait in line for this loop)."""
        wanted = slot.generation == generation and slot.state in (STARTING, RUNNING) and self.wanted(slot)
        if pid is None:  # not forked: the zygote is gone or broken, so this spawns (a new generation)
            close_fds(read_fd, backend_fd)
            if wanted:
                log.warning("%s was not forked (%s); spawning it.", slot.label, self._zygote.reason)
                self.spawn(slot)
        else:
            child = ChildProcess.adopted(pid)
            if wanted:
                slot.child = child
                self.started(slot, child, read_fd, ready_already=slot.state == RUNNING, backend_fd=backend_fd)
            else:  # stopped, replaced or shutting down meanwhile: not wanted any more
                close_fds(read_fd, backend_fd)
                child.signal_group(signal.SIGKILL)
                child.signal_leader(signal.SIGKILL)  # in case it has not made its own group yet
            code = self._unknown_exits.pop(pid, None)
            if code is not None:
                self.exited(pid, code)  # it exited before its answer was read
        if not self._zygote.pending:
            self._unknown_exits.clear()  # whoever is left there was no worker of ours
            if self._sweep_wanted:
                self.sweep()

    def started(
        self, slot: Slot, child: ChildProcess, read_fd: int, ready_already: bool = False, backend_fd: int | None = None
    ) -> None:
        """`ready_already`: a forked worker whose ready report was handled before the zygote's answer."""
        log_file = self._host.log_dir / f"{slot.key}.log"
        slot.stderr, slot.backend_stderr = open_captures(slot.key, read_fd, backend_fd, log_file, slot.stderr_role)
        self.by_pid[child.pid] = slot
        log.info("Started %s (generation %d, pid %d, %s).", slot.label, slot.generation, child.pid, child.method)
        if not ready_already:
            slot.last_heartbeat = time.monotonic()
            slot.heartbeat_seen = False
            slot.state = slot.started_state
            if slot.state == STARTING:  # a worker is RUNNING only once its backend is initialized
                generation = slot.generation
                loop = asyncio.get_running_loop()
                loop.call_later(slot.options.startTimeout + 2.0, self._check_started, slot, generation)
        self._publish("spawned", slot)

    def _check_started(self, slot: Slot, generation: int) -> None:
        if slot.generation == generation and slot.state == STARTING and slot.child is not None:
            self.kill_unhealthy(slot, f"backend not initialized within {slot.options.startTimeout:g} s")

    def kill_unhealthy(self, slot: Slot, reason: str) -> None:
        """Hung or over its limits: SIGKILL the group; the exit then counts as a crash."""
        slot.last_error = reason
        log.error("%s: %s; killing it.", slot.label, reason)
        if slot.child is not None:
            slot.child.signal_group(signal.SIGKILL)

    # ------------------------------------------------------------------ exits and restarts

    def sweep(self) -> None:
        """What a dead worker left behind (a backend in its own session) was adopted by us: sweep it. Not while
        fork requests are pending: an unknown child may be a worker whose pid is on its way."""
        if self._zygote.pending:
            self._sweep_wanted = True
            return
        self._sweep_wanted = False
        zygote = self._zygote.pid
        reaper.sweep_orphans([*self.by_pid, *self._helpers.pids(), *([zygote] if zygote is not None else [])])

    def exited(self, pid: int, code: int) -> None:
        """A reaped child that is neither the zygote nor a helper: a slot's, or an orphan's."""
        slot = self.by_pid.pop(pid, None)
        if slot is None and self._zygote.pending and len(self._unknown_exits) < MAX_UNKNOWN_EXITS:
            self._unknown_exits[pid] = code  # maybe a forked worker whose pid is still on its way (`forked`)
            return
        if slot is None or slot.child is None or slot.child.pid != pid:
            return  # an adopted orphan, reaped so it does not linger as a zombie
        child = slot.child
        child.mark_exited(code)
        report = slot.beats.read_report() if slot.beats is not None else None
        if report is not None and report.state == WorkerReport.FAILED:
            slot.last_error = report.detail  # written before it exited: here however fast the exit was
        slot.detach_beats()
        slot.last_exit = describe_exit(code)
        # Whatever this generation's backend left (however started) goes, and nothing of anyone else's.
        cleanup_cgroup(slot.cgroup, slot.label)
        slot.cgroup = None
        # What the dead worker left behind (a backend in its own session) was adopted by us: sweep it.
        # While everything stops, one sweep at the end does (per exit it would cost O(tree) times N workers).
        if not self._stopping.is_set():
            self.sweep()
        if slot.commanded_stop or self._stopping.is_set():
            slot.state = STOPPED
            log.info("%s stopped (%s).", slot.label, slot.last_exit)
        elif (exit_code := slot.final_exit(code)) is not None:
            self._finish(exit_code)
        else:
            log.warning("%s exited unexpectedly (%s).", slot.label, slot.last_exit)
            self.crashed(slot, child.started_at)
        slot.settled.set()
        self._publish("exited", slot)

    def crashed(self, slot: Slot, started_at: float) -> None:
        decision = slot.policy.on_crash(started_at)
        if not decision.fatal:
            slot.state = BACKOFF
            slot.restarts += 1
            log.info("Restarting %s in %.2f s.", slot.label, decision.delay_s)
            self._schedule(slot, decision.delay_s, self._restart_due)
            return
        slot.state = FATAL
        slot.last_error = f"{decision.reason}; last: {slot.last_error or slot.last_exit}"
        log.error("%s is FATAL: %s", slot.label, slot.last_error)
        if slot.fatal_exit_code is not None:
            self._finish(slot.fatal_exit_code)
        else:
            self.schedule_fatal_retry(slot)

    def _schedule(self, slot: Slot, delay_s: float, action: Callable[[Slot], None]) -> None:
        slot.next_attempt_at = time.time() + delay_s
        slot.timer = asyncio.get_running_loop().call_later(delay_s, action, slot)

    def schedule_fatal_retry(self, slot: Slot) -> None:
        """FATAL is not final: after a cool-down the backend gets a fresh start (whatever broke it, a full
        disk, a registry outage, may be gone by then); `status` says when."""
        cooldown = slot.options.fatalCooldown
        if cooldown > 0:
            log.info("%s: trying again in %g s.", slot.label, cooldown)
            self._schedule(slot, cooldown, self._fatal_retry_due)

    def _fatal_retry_due(self, slot: Slot) -> None:
        if slot.state != FATAL or not self.wanted(slot):
            return
        log.info("%s: the FATAL cool-down is over; starting it again.", slot.label)
        slot.policy.reset()
        self.spawn(slot)

    def _restart_due(self, slot: Slot) -> None:
        if slot.state == BACKOFF and self.wanted(slot):
            self.spawn(slot)

    # ------------------------------------------------------------------ commanded stops

    async def stop(self, slot: Slot) -> None:
        """A commanded stop: never counted as a crash."""
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        slot.commanded_stop = True
        if slot.child is not None and slot.child.alive:
            slot.state = STOPPING
            self._publish("stopping", slot)
            await slot.child.stop(slot.options.stopGrace)
            self._reap()
        slot.state = STOPPED
        slot.settled.set()

    async def replace(self, key: str, entry: ServerEntry) -> None:
        """Start the new worker first; stop (drain) the old one once the new one is RUNNING or has failed."""
        old = self.workers[key]
        new = self.new_slot(key, entry, generation=old.generation)
        if old.timer is not None:
            old.timer.cancel()
        self.spawn(new)
        if old.child is not None and old.child.alive:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(new.settled.wait(), new.options.startTimeout + 5.0)
        await self.stop(old)

    async def remove(self, key: str) -> None:
        slot = self.workers.pop(key)
        await self.stop(slot)
        self._publish("removed", slot)
