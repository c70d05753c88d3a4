"""The supervisor process: the root of the tree.

It spawns the gateway and one worker per active backend, reaps every exit (SIGCHLD), restarts crashed
children under the restart policy, reloads mcp_server.json on command or SIGHUP, and on SIGTERM/SIGINT stops
everything and sweeps the tree so no backend, worker or grandchild is left behind.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.config.diff import diff_servers
from mcp_supervisor.config.loader import load_servers
from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.protocol.endpoints import Endpoints, prepare_runtime_dir, runtime_dir_for
from mcp_supervisor.protocol.messages import (
    BackendStatus,
    CommandResult,
    ControlCommand,
    Snapshot,
    WorkerStateReport,
)
from mcp_supervisor.supervisor import reaper
from mcp_supervisor.supervisor.control import ControlServer
from mcp_supervisor.supervisor.linux import INSTANCE_ENV, PARENT_PID_ENV, become_subreaper, set_title
from mcp_supervisor.supervisor.policy import RestartPolicy
from mcp_supervisor.supervisor.process import ChildProcess, describe_exit
from mcp_supervisor.worker.spec import SPEC_ENV, WorkerSpec, encode_spec

log = logging.getLogger("mcp_supervisor.supervisor")

STOP_GRACE_S = 6.0
INIT_TIMEOUT_S = 30.0
# Beyond the worker's own handshake timeout: a worker that neither reports nor exits is hung.
START_TIMEOUT_S = INIT_TIMEOUT_S + 10.0

STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, FATAL = "STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "FATAL"


@dataclass(eq=False)
class Managed:
    """One supervised child slot: the gateway, or the worker of one backend key."""

    key: str
    entry: ServerEntry | None  # None for the gateway
    policy: RestartPolicy
    state: str = STOPPED
    generation: int = 0
    child: ChildProcess | None = None
    restarts: int = 0
    last_exit: str | None = None
    last_error: str | None = None
    commanded_stop: bool = False
    timer: asyncio.TimerHandle | None = None
    ready_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_gateway(self) -> bool:
        return self.entry is None

    def status(self) -> BackendStatus:
        child = self.child if self.child is not None and self.child.alive else None
        return BackendStatus(
            key=self.key,
            type=self.entry.type if self.entry else "gateway",
            state=self.state,
            generation=self.generation,
            pid=child.pid if child else None,
            restarts=self.restarts,
            started_at=child.started_wall if child else None,
            last_exit=self.last_exit,
            last_error=self.last_error,
        )


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoints: Endpoints = prepare_runtime_dir(runtime_dir_for(settings.config_dir))
        self.instance = f"{self.endpoints.runtime_dir}:{os.getpid()}"
        self.servers: dict[str, ServerEntry] = {}
        self.workers: dict[str, Managed] = {}
        self.gateway = Managed(key="gateway", entry=None, policy=self._policy())
        self.config_error = ""
        self._by_pid: dict[int, Managed] = {}
        self._stopping = asyncio.Event()
        self._exit_code = 0
        self._lock_fd: int | None = None
        self.control: ControlServer | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    # ------------------------------------------------------------------ lifecycle

    def _policy(self) -> RestartPolicy:
        return RestartPolicy(clock=time.monotonic)

    def _acquire_lock(self) -> None:
        fd = os.open(self.endpoints.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"Another mcp-supervisor (pid {other}) is already running for {self.settings.config_dir}."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    async def run(self) -> int:
        self.servers = load_servers(self.settings.config_dir).active()  # a broken file at start is fatal
        self._acquire_lock()
        set_title(f"mcp-supervisor: supervisor [{self.settings.config_dir}]")
        become_subreaper()
        stale = reaper.leftovers_of(str(self.endpoints.runtime_dir), self.instance)
        if stale:
            log.warning("Killing %d process(es) left over by an earlier supervisor.", len(stale))
            reaper.kill_processes(stale)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._background(self.reload()))
        self.control = ControlServer(self.endpoints, self.snapshot, self._on_report, self._on_command)
        self.control.start()
        self._spawn(self.gateway)
        for key, entry in self.servers.items():
            self._add_worker(key, entry)
        log.info(
            "Supervising %d backend(s); gateway on http://%s:%d/mcp",
            len(self.servers),
            self.settings.host,
            self.settings.port,
        )
        await self._stopping.wait()
        await self._shutdown()
        return self._exit_code

    async def _shutdown(self) -> None:
        log.info("Stopping everything.")
        slots = [self.gateway, *self.workers.values()]
        await asyncio.gather(*(self._stop(slot) for slot in slots))
        reaper.kill_processes(reaper.orphans(()))  # whatever is still below us
        self._reap()
        if self.control is not None:
            self.control.close()
        for sock in ("data.sock", "control.sock"):
            (self.endpoints.runtime_dir / sock).unlink(missing_ok=True)
        log.info("Stopped.")

    # ------------------------------------------------------------------ spawning

    def _add_worker(self, key: str, entry: ServerEntry) -> None:
        slot = Managed(key=key, entry=entry, policy=self._policy())
        self.workers[key] = slot
        self._spawn(slot)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[INSTANCE_ENV] = self.instance
        env[PARENT_PID_ENV] = str(os.getpid())
        env["MCP_SUPERVISOR_CONFIG_DIR"] = str(self.settings.config_dir)
        env["MCP_SUPERVISOR_LOG_LEVEL"] = self.settings.log_level
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(self, slot: Managed) -> None:
        slot.timer = None
        slot.generation += 1
        slot.commanded_stop = False
        slot.ready_at = None
        slot.done.clear()
        env = self._child_env()
        if slot.entry is None:
            argv = [sys.executable, "-m", "mcp_supervisor", "gateway", "--runtime-dir", str(self.endpoints.runtime_dir)]
        else:
            spec = WorkerSpec(
                server=slot.entry,
                generation=slot.generation,
                runtime_dir=str(self.endpoints.runtime_dir),
                init_timeout_s=INIT_TIMEOUT_S,
            )
            env[SPEC_ENV] = encode_spec(spec)
            argv = [sys.executable, "-m", "mcp_supervisor", "worker"]
        try:
            slot.child = ChildProcess(argv, env)
        except OSError as exc:
            slot.last_error = f"cannot spawn: {exc}"
            self._crashed(slot, 0.0)
            return
        self._by_pid[slot.child.pid] = slot
        # The gateway has no handshake to wait for; a worker is RUNNING only once its backend is initialized.
        slot.state = RUNNING if slot.is_gateway else STARTING
        log.info("Started %s (generation %d, pid %d).", self._label(slot), slot.generation, slot.child.pid)
        if not slot.is_gateway:
            generation = slot.generation
            asyncio.get_running_loop().call_later(START_TIMEOUT_S, self._check_started, slot, generation)
        self._publish("spawned", slot)

    def _label(self, slot: Managed) -> str:
        return "gateway" if slot.is_gateway else f"worker[{slot.key}]"

    def _check_started(self, slot: Managed, generation: int) -> None:
        if slot.generation == generation and slot.state == STARTING and slot.child is not None:
            slot.last_error = f"backend not initialized within {START_TIMEOUT_S:g} s"
            log.error("%s: %s; killing it.", self._label(slot), slot.last_error)
            slot.child.signal_group(signal.SIGKILL)

    # ------------------------------------------------------------------ exits and restarts

    def _reap(self) -> None:
        reaper.reap_all(self._on_exit)

    def _on_exit(self, pid: int, code: int) -> None:
        slot = self._by_pid.pop(pid, None)
        if slot is None or slot.child is None or slot.child.pid != pid:
            return  # an adopted orphan, reaped so it does not linger as a zombie
        child = slot.child
        child.mark_exited(code)
        slot.last_exit = describe_exit(code)
        # A worker's backend may outlive it (own session): sweep what was adopted from its tree.
        reaper.sweep_orphans(self._by_pid)
        if slot.commanded_stop or self._stopping.is_set():
            slot.state = STOPPED
            log.info("%s stopped (%s).", self._label(slot), slot.last_exit)
        else:
            log.warning("%s exited unexpectedly (%s).", self._label(slot), slot.last_exit)
            self._crashed(slot, child.started_at)
        slot.done.set()
        self._publish("exited", slot)

    def _crashed(self, slot: Managed, started_at: float) -> None:
        decision = slot.policy.on_crash(started_at)
        if decision.fatal:
            slot.state = FATAL
            slot.last_error = f"{decision.reason}; last error: {slot.last_error or slot.last_exit}"
            log.error("%s is FATAL: %s", self._label(slot), slot.last_error)
            if slot.is_gateway:
                self._exit_code = 1
                self._stopping.set()
            return
        slot.state = BACKOFF
        slot.restarts += 1
        log.info("Restarting %s in %.2f s.", self._label(slot), decision.delay_s)
        slot.timer = asyncio.get_running_loop().call_later(decision.delay_s, self._restart_due, slot)

    def _restart_due(self, slot: Managed) -> None:
        if self._stopping.is_set() or slot.state != BACKOFF:
            return
        if slot.is_gateway or self.workers.get(slot.key) is slot:
            self._spawn(slot)

    async def _stop(self, slot: Managed) -> None:
        """A commanded stop: never counted as a crash."""
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        slot.commanded_stop = True
        if slot.child is not None and slot.child.alive:
            slot.state = STOPPING
            self._publish("stopping", slot)
            await slot.child.stop(STOP_GRACE_S)
            self._reap()
        slot.state = STOPPED

    # ------------------------------------------------------------------ reports, commands, reload

    def _on_report(self, report: WorkerStateReport) -> None:
        slot = self.workers.get(report.key)
        if slot is None or slot.generation != report.generation:
            return
        if report.state == "ready" and slot.state == STARTING:
            slot.state = RUNNING
            slot.ready_at = time.monotonic()
            log.info("worker[%s] is RUNNING (%s).", slot.key, report.detail)
            self._publish("ready", slot)
        elif report.state == "failed":
            slot.last_error = report.detail

    async def _on_command(self, command: ControlCommand) -> CommandResult:
        match command.name:
            case "stop":
                self._stopping.set()
                return CommandResult(ok=True, message="Stopping.")
            case "restart":
                slot = self.workers.get(command.key)
                if slot is None:
                    return CommandResult(ok=False, message=f'No active backend "{command.key}".')
                await self._stop(slot)
                slot.policy.reset()
                self._spawn(slot)
                return CommandResult(ok=True, message=f'Restarted "{command.key}".')
            case "reload":
                return await self.reload()
            case other:
                return CommandResult(ok=False, message=f"Unknown command {other!r}.")

    async def reload(self) -> CommandResult:
        try:
            new = load_servers(self.settings.config_dir).active()
        except ConfigError as exc:
            self.config_error = str(exc)
            log.error("Reload refused, the running config stays: %s", exc)
            return CommandResult(ok=False, message=str(exc))
        self.config_error = ""
        diff = diff_servers(self.servers, new)
        self.servers = new
        for key in (*diff.removed, *diff.changed):
            slot = self.workers.pop(key)
            await self._stop(slot)
            if key in diff.removed:
                self._publish("removed", slot)
        for key in (*diff.added, *diff.changed):
            self._add_worker(key, new[key])
        message = f"Reloaded: {len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed."
        log.info("%s", message)
        return CommandResult(ok=True, message=message)

    def snapshot(self) -> Snapshot:
        return Snapshot(backends=[slot.status() for slot in self.workers.values()], config_error=self.config_error)

    def _publish(self, event: str, slot: Managed) -> None:
        if self.control is None or slot.is_gateway:
            return
        self._background(self.control.publish(event, slot.status()))

    def _background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` without awaiting it, keeping a reference so the task is not garbage-collected."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def run_supervisor(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr, format="%(asctime)s supervisor %(levelname)s %(message)s"
    )
    return asyncio.run(Supervisor(settings).run())
