"""The supervisor process: the root of the tree.

It spawns the gateway and one worker per active backend, reaps every exit (SIGCHLD), restarts crashed
children under the restart policy, replaces hung (no heartbeat) and oversized (RSS limit) workers, reloads
the config on file change, command or SIGHUP, and on SIGTERM/SIGINT stops everything and sweeps the tree so
no backend, worker or grandchild is left behind. It is never on the data path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from mcp_supervisor.config.clients import CLIENTS_FILE
from mcp_supervisor.config.diff import diff_servers
from mcp_supervisor.config.loader import SERVERS_FILE, TOOLS_FILE, effective_supervision
from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.protocol import socket_auth
from mcp_supervisor.protocol.exit_codes import EXIT_CONFIG, EXIT_FAILURE, GATEWAY_PORT_IN_USE
from mcp_supervisor.protocol.messages import (
    ClientsUpdate,
    CommandResult,
    ConfigStatus,
    ControlCommand,
    Snapshot,
    ToolConfigUpdate,
)
from mcp_supervisor.protocol.spawn import (
    BACKEND_STDERR_FD_ENV,
    HANDOFF_FD_ENV,
    WORKER_SPEC_OFFSET,
    GatewaySpec,
    Launch,
    WorkerSpec,
    write_handoff,
)
from mcp_supervisor.protocol.states import WorkerReport
from mcp_supervisor.supervisor import reaper
from mcp_supervisor.supervisor.backend_launch import BackendLauncher, cleanup_cgroup
from mcp_supervisor.supervisor.config_files import ConfigFiles
from mcp_supervisor.supervisor.control import ControlServer
from mcp_supervisor.supervisor.helpers import HelperProcesses
from mcp_supervisor.supervisor.host import Host
from mcp_supervisor.supervisor.package_cache import PackageFetchError
from mcp_supervisor.supervisor.package_specs import PackageRequest
from mcp_supervisor.supervisor.package_step import PackageStep
from mcp_supervisor.supervisor.process import ChildProcess, describe_exit
from mcp_supervisor.supervisor.reports import Reports
from mcp_supervisor.supervisor.slots import BACKOFF, FATAL, RUNNING, STARTING, STOPPED, STOPPING, Slot, policy_for
from mcp_supervisor.supervisor.stderr import StderrCapture, open_captures
from mcp_supervisor.supervisor.stdio_refusal import refuse_stdio_client
from mcp_supervisor.supervisor.watchdog import Watchdog
from mcp_supervisor.supervisor.watcher import watch_config
from mcp_supervisor.supervisor.zygote import Zygote, fork_unsupported
from mcp_supervisor.system.logs import configure_logging
from mcp_supervisor.system.process_tree import INSTANCE_ENV, PARENT_PID_ENV
from mcp_supervisor.system.sandbox import SandboxUnavailable
from mcp_supervisor.tasks import BackgroundTasks

log = logging.getLogger("mcp_supervisor.supervisor")

# A worker beats 2.5 times per heartbeatTimeout (every 2 s at the default 5 s), at most every 2 s: one late
# beat is never a kill, and a hundred idle workers do not add up to a load (each beat wakes three processes).
HEARTBEAT_MAX_INTERVAL_S = 2.0


def heartbeat_interval(timeout_s: float) -> float:
    return max(0.1, min(HEARTBEAT_MAX_INTERVAL_S, timeout_s / 2.5))


# Workers started per turn of the loop when many start at once (a reload's or the start-up's): between turns
# the first ones' ready reports, fork answers and exits are handled.
SPAWN_CHUNK = 32
# Exit statuses of unknown children kept while fork requests are pending (one may be such a worker).
MAX_UNKNOWN_EXITS = 10_000


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


class Supervisor:
    def __init__(self, settings: Settings, stdio: bool = False) -> None:
        self.settings = settings
        # Stdio, the runtime dir, its lock, the instance cgroup: taken in start-up, not here (no I/O here).
        self.host = Host(settings.config_dir, stdio)
        self.servers: dict[str, ServerEntry] = {}
        self.files = ConfigFiles(settings.config_dir, self._broadcast)
        self.workers: dict[str, Slot] = {}
        self.gateway = Slot("gateway", None, settings.supervision, policy_for(settings.supervision))
        self.control: ControlServer | None = None
        self._by_pid: dict[int, Slot] = {}
        self.watchdog = Watchdog(
            self._all_slots, lambda now: self.zygote.check(now), self._publish, self._kill_unhealthy, self._background
        )
        self._stopping = asyncio.Event()
        self._exit_code = 0
        self._tasks = BackgroundTasks()
        self._launcher: BackendLauncher | None = None
        # Package fetches and cache copies before npx/uvx backends start (supervisor/package_cache.py).
        self._helpers = HelperProcesses()
        self._packages = PackageStep(settings, self._helpers)
        # While fork requests are pending, an unknown child may be a worker whose pid is on its way: its exit
        # status is kept here, and orphan sweeps wait (they would kill it).
        self._unknown_exits: dict[int, int] = {}
        self._sweep_wanted = False
        self.reports = Reports(self.gateway, lambda: self.workers, self._publish)
        self._zygote_stderr: StderrCapture | None = None
        self.zygote = Zygote(policy_for(settings.supervision), self._zygote_output)
        unsupported = fork_unsupported()
        if settings.worker_spawn == "spawn":
            self.zygote.disable("WORKER_SPAWN=spawn")
        elif unsupported:
            self.zygote.disable(unsupported)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        await self._start_up()
        loops = [
            self.watchdog.watch(),
            self.watchdog.sample(),
            watch_config(self.settings.config_dir, self._file_changed),
        ]
        running = [asyncio.ensure_future(work) for work in loops]
        await self._stopping.wait()  # a signal, `mcp-supervisor stop`, or a gateway that cannot go on
        for task in running:
            task.cancel()
        await self._shutdown()
        return self._exit_code

    async def _start_up(self) -> None:
        # Broken files at start are fatal (exit 2 with the reason); on reload they keep the running config.
        self.servers = self.files.load()
        self.host.take_over()
        self._launcher = BackendLauncher(self.settings, self.host.runtime_dir, self.host.log_dir, self.host.cgroups)
        self.host.become_root()
        self._handle_signals()
        self.host.write_cli_secret()
        self._open_control()
        self._spawn(self.gateway)
        self.reports.open()
        self.zygote.start(self._child_env(), self.reports.worker_fds())
        await self.zygote.wait_ready()
        await self._spawn_many([self._new_slot(key, entry) for key, entry in self.servers.items()])
        where = "stdio" if self.host.stdio_fds else f"http://{self.settings.host}:{self.settings.port}/mcp"
        log.info("Supervising %d backend(s); gateway on %s", len(self.servers), where)

    def _handle_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        self._reap()  # whatever exited before the handler was there
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _open_control(self) -> None:
        self.control = ControlServer(
            self.host.endpoints, self.host.instance_key, self.snapshot, self.reports.on_report, self._on_command
        )
        self.control.on_heartbeat = self.reports.on_heartbeat
        self.control.on_gateway_heartbeat = self.reports.on_gateway_heartbeat
        self.control.start()

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading the config files.")
        self._background(self.reload())

    async def _shutdown(self) -> None:
        log.info("Stopping everything.")
        self._helpers.kill_all()
        await self.zygote.stop(1.0)
        self._reap()
        await asyncio.gather(*(self._stop(slot) for slot in [self.gateway, *self.workers.values()]))
        reaper.kill_processes(reaper.orphans(()))  # whatever is still below us
        if self.host.cgroups is not None:
            for slot in self.workers.values():
                cleanup_cgroup(slot.cgroup, slot.label)
            self.host.leave_cgroup()
        self._reap()
        if self.control is not None:
            self.control.close()
        self.host.remove_sockets()
        log.info("Stopped.")

    def _background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` without awaiting it, keeping a reference so the task is not garbage-collected."""
        self._tasks.spawn(work)

    # ------------------------------------------------------------------ spawning

    def _all_slots(self) -> list[Slot]:
        return [self.gateway, *self.workers.values()]

    def _new_slot(self, key: str, entry: ServerEntry, generation: int = 0) -> Slot:
        options = effective_supervision(self.settings.supervision, entry)
        slot = Slot(key, entry, options, policy_for(options, remote=entry.type != "stdio"), generation=generation)
        self.workers[key] = slot
        return slot

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[INSTANCE_ENV] = self.host.instance
        env[PARENT_PID_ENV] = str(os.getpid())
        env["MCP_SUPERVISOR_CONFIG_DIR"] = str(self.settings.config_dir)
        env["MCP_SUPERVISOR_LOG_LEVEL"] = self.settings.log_level
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _zygote_output(self, read_fd: int) -> None:
        if self._zygote_stderr is not None:
            self._zygote_stderr.close()
        self._zygote_stderr = StderrCapture("zygote", read_fd, self.host.log_dir / "zygote.log")

    def _restart_zygote(self) -> None:
        if not self._stopping.is_set():
            self.zygote.start(self._child_env(), self.reports.worker_fds())

    def _fork(self, slot: Slot, fds: tuple[int, ...], read_fd: int, backend_fd: int | None) -> None:
        """Ask the zygote for the worker (copy-on-write, no imports); `_forked` takes the answer."""
        generation = slot.generation
        self.zygote.request(fds, lambda pid: self._forked(slot, generation, read_fd, pid, backend_fd))

    def _forked(
        self, slot: Slot, generation: int, read_fd: int, pid: int | None, backend_fd: int | None = None
    ) -> None:
        # Its ready report may come before the answer that names its pid (both wait in line for this loop).
        wanted = (
            slot.generation == generation
            and self.workers.get(slot.key) is slot
            and slot.state in (STARTING, RUNNING)
            and not self._stopping.is_set()
        )
        if pid is None:  # not forked: the zygote is gone or broken, so this spawns (a new generation)
            _close(read_fd, backend_fd)
            if wanted:
                log.warning("%s was not forked (%s); spawning it.", slot.label, self.zygote.reason)
                self._spawn(slot)
        else:
            child = ChildProcess.adopted(pid)
            if wanted:
                slot.child = child
                self._started(slot, child, read_fd, ready_already=slot.state == RUNNING, backend_fd=backend_fd)
            else:  # stopped, replaced or shutting down meanwhile: not wanted any more
                _close(read_fd, backend_fd)
                child.signal_group(signal.SIGKILL)
                child.signal_leader(signal.SIGKILL)  # in case it has not made its own group yet
            code = self._unknown_exits.pop(pid, None)
            if code is not None:
                self._on_exit(pid, code)  # it exited before its answer was read
        if not self.zygote.pending:
            self._unknown_exits.clear()  # whoever is left there was no worker of ours
            if self._sweep_wanted:
                self._sweep()

    def _sweep(self) -> None:
        """What a dead worker left behind (a backend in its own session) was adopted by us: sweep it. Not while
        fork requests are pending: an unknown child may be a worker whose pid is on its way."""
        if self.zygote.pending:
            self._sweep_wanted = True
            return
        self._sweep_wanted = False
        reaper.sweep_orphans(self._managed_pids())

    def _spawn(self, slot: Slot) -> None:
        if slot.entry is not None and self._defer_for_packages(slot):
            return
        slot.timer = None
        slot.next_attempt_at = None
        slot.generation += 1
        slot.commanded_stop = False
        slot.era = slot.protocol_version = ""  # the new generation's worker probes its backend afresh
        slot.settled.clear()
        env = self._child_env()
        planned = self._plan_child(slot)
        if planned is None:
            return
        spec, argv, pass_fds = planned
        handoff_fd = write_handoff(spec, 0 if slot.is_gateway else WORKER_SPEC_OFFSET)
        env[HANDOFF_FD_ENV] = str(handoff_fd)
        if not slot.is_gateway:
            slot.attach_beats(handoff_fd)
            for name, fd in self.reports.worker_fds().items():
                env[name] = str(fd)
                pass_fds = (*pass_fds, fd)
        read_fd, write_fd = os.pipe()
        # A stdio backend's stderr is a pipe of its own, never its worker's (supervisor/stderr.py).
        backend_read, backend_write = os.pipe() if isinstance(spec, WorkerSpec) and spec.launch else (None, None)
        if not slot.is_gateway and self.zygote.ready:
            slot.state = STARTING
            fds = (write_fd, handoff_fd) if backend_write is None else (write_fd, handoff_fd, backend_write)
            self._fork(slot, fds, read_fd, backend_read)  # the zygote closes the fds it is given
            return
        if backend_write is not None:
            env[BACKEND_STDERR_FD_ENV] = str(backend_write)
            pass_fds = (*pass_fds, backend_write)
        try:
            slot.child = ChildProcess(argv, env, write_fd, (*pass_fds, handoff_fd))
        except OSError as exc:
            _close(read_fd, backend_read)
            slot.detach_beats()
            slot.last_error = f"cannot spawn: {exc}"
            self._crashed(slot, time.monotonic())
            return
        finally:
            _close(handoff_fd, backend_write)  # the child has its copies
        self._started(slot, slot.child, read_fd, backend_fd=backend_read)

    def _plan_child(self, slot: Slot) -> tuple[WorkerSpec | GatewaySpec, list[str], tuple[int, ...]] | None:
        """The child's handoff spec, argv and inherited fds; None when the backend must not start (FATAL)."""
        runtime_dir = str(self.host.runtime_dir)
        if slot.entry is None:
            spec = GatewaySpec(generation=slot.generation, instance_key=self.host.instance_key.hex())
            argv = [sys.executable, "-m", "mcp_supervisor", "gateway", "--runtime-dir", runtime_dir]
            if self.host.stdio_fds is None:
                return spec, argv, ()
            return spec, [*argv, "--stdio-fds", ",".join(map(str, self.host.stdio_fds))], self.host.stdio_fds
        launch = self._plan_launch(slot)
        if launch is False:
            return None
        user = socket_auth.worker_user(slot.key, slot.generation)
        worker = WorkerSpec(
            server=slot.entry,
            launch=launch or None,
            generation=slot.generation,
            runtime_dir=runtime_dir,
            credentials=socket_auth.derive(self.host.instance_key, user),
            init_timeout_s=slot.options.startTimeout,
            drain_timeout_s=max(0.5, slot.options.stopGrace - 1.0),
            heartbeat_interval_s=heartbeat_interval(slot.options.heartbeatTimeout),
            oauth_client_secret=os.environ.get(slot.entry.oauth.clientSecretEnv, "") if slot.entry.oauth else "",
        )
        return worker, [sys.executable, "-m", "mcp_supervisor", "worker"], ()

    async def _spawn_many(self, slots: list[Slot]) -> None:
        """Start many workers, SPAWN_CHUNK per turn of the loop: between chunks the first workers' ready reports,
        the zygote's answers and any exits are handled while the next ones start."""
        for slot in slots:
            slot.state = STARTING  # as the gateway must see them: starting, not stopped, until their turn
        for start in range(0, len(slots), SPAWN_CHUNK):
            for slot in slots[start : start + SPAWN_CHUNK]:
                if self.workers.get(slot.key) is slot and slot.state == STARTING and not self._stopping.is_set():
                    self._spawn(slot)
            await asyncio.sleep(0)

    def _started(
        self, slot: Slot, child: ChildProcess, read_fd: int, ready_already: bool = False, backend_fd: int | None = None
    ) -> None:
        """`ready_already`: a forked worker whose ready report was handled before the zygote's answer."""
        slot.stderr, slot.backend_stderr = open_captures(
            slot.key, read_fd, backend_fd, self.host.log_dir / f"{slot.key}.log", "own" if slot.is_gateway else "worker"
        )
        self._by_pid[child.pid] = slot
        log.info("Started %s (generation %d, pid %d, %s).", slot.label, slot.generation, child.pid, child.method)
        if not ready_already:
            slot.last_heartbeat = time.monotonic()
            slot.heartbeat_seen = False
            # The gateway has no handshake to wait for; a worker is RUNNING only once its backend is initialized.
            slot.state = RUNNING if slot.is_gateway else STARTING
            if not slot.is_gateway:
                generation = slot.generation
                loop = asyncio.get_running_loop()
                loop.call_later(slot.options.startTimeout + 2.0, self._check_started, slot, generation)
        self._publish("spawned", slot)

    def _plan_launch(self, slot: Slot) -> Launch | Literal[False] | None:
        """The stdio backend's launch (None for remote backends), or False when it must not start at all."""
        assert slot.entry is not None and self._launcher is not None
        if slot.entry.type != "stdio":
            return None
        try:
            package_env, slot.package_env = slot.package_env, None
            launch, slot.sandbox, plan = self._launcher.plan(slot.entry, slot.generation, self.servers, package_env)
            plan.prepare()
        except (SandboxUnavailable, OSError) as exc:
            slot.state = FATAL
            slot.last_error = str(exc)
            log.error("%s is FATAL: %s", slot.label, exc)
            self._schedule_fatal_retry(slot)
            slot.settled.set()
            self._publish("exited", slot)
            return False
        slot.cgroup = plan.cgroup
        return launch

    # ------------------------------------------------------------------ the package cache

    def _defer_for_packages(self, slot: Slot) -> bool:
        """An npx/uvx backend first gets its package (fetched once into the shared cache) and its own copy of the
        cache, in a task off the loop, STARTING with a detail meanwhile; True when the spawn waits for that."""
        assert slot.entry is not None
        if slot.packages_ready:
            slot.packages_ready = False
            return False
        request = self._packages.request(slot.entry)
        if request is None:
            return False
        slot.timer = None
        slot.next_attempt_at = None
        slot.state, slot.detail = STARTING, "fetching packages"
        slot.settled.clear()
        token = slot.preparing = object()
        self._publish("starting", slot)
        self._background(self._prepare_packages(slot, request, token))
        return True

    async def _prepare_packages(self, slot: Slot, request: PackageRequest, token: object) -> None:
        assert slot.entry is not None and self._launcher is not None
        entry, error = slot.entry, None
        started = time.monotonic()
        try:
            env = await self._packages.prepare(self._launcher, entry, self.servers, request)
        except (PackageFetchError, SandboxUnavailable, OSError) as exc:
            error = str(exc)
        except Exception as exc:  # a bug of ours must not leave the backend STARTING for ever
            log.exception("%s: preparing its packages failed", slot.label)
            error = f"Preparing its packages failed: {exc!r}"
        wanted = self.workers.get(slot.key) is slot and slot.state == STARTING and not self._stopping.is_set()
        if slot.preparing is not token or not wanted:
            return  # stopped, replaced or started again meanwhile
        slot.preparing, slot.detail = None, ""
        if error is not None:
            slot.last_error = error
            log.error("%s: %s", slot.label, error)
            self._crashed(slot, started)
            slot.settled.set()
            self._publish("exited", slot)
            return
        slot.package_env, slot.packages_ready = env, True
        self._spawn(slot)

    def _check_started(self, slot: Slot, generation: int) -> None:
        if slot.generation == generation and slot.state == STARTING and slot.child is not None:
            self._kill_unhealthy(slot, f"backend not initialized within {slot.options.startTimeout:g} s")

    def _kill_unhealthy(self, slot: Slot, reason: str) -> None:
        """Hung or over its limits: SIGKILL the group; the exit then counts as a crash."""
        slot.last_error = reason
        log.error("%s: %s; killing it.", slot.label, reason)
        if slot.child is not None:
            slot.child.signal_group(signal.SIGKILL)

    # ------------------------------------------------------------------ exits and restarts

    def _reap(self) -> None:
        reaper.reap_all(self._on_exit)

    def _managed_pids(self) -> list[int]:
        zygote = self.zygote.pid
        return [*self._by_pid, *self._helpers.pids(), *([zygote] if zygote is not None else [])]

    def _on_exit(self, pid: int, code: int) -> None:
        if pid == self.zygote.pid:
            delay = self.zygote.on_exit(code)  # its unanswered requests are spawned instead (`_forked`)
            if not self._stopping.is_set():
                if delay is not None:
                    self.zygote.timer = asyncio.get_running_loop().call_later(delay, self._restart_zygote)
                self._sweep()  # workers it forked but never announced: nobody's, and so are their backends
            return
        if self._helpers.on_exit(pid, code):
            return
        slot = self._by_pid.pop(pid, None)
        self.watchdog.forget(pid)
        if slot is None and self.zygote.pending and len(self._unknown_exits) < MAX_UNKNOWN_EXITS:
            self._unknown_exits[pid] = code  # maybe a forked worker whose pid is still on its way (`_forked`)
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
            self._sweep()
        if slot.commanded_stop or self._stopping.is_set():
            slot.state = STOPPED
            log.info("%s stopped (%s).", slot.label, slot.last_exit)
        elif slot.is_gateway and code == GATEWAY_PORT_IN_USE:
            # Another program has the port: every restart would fail the same way. Stop, and say why.
            slot.state = FATAL
            slot.last_error = f"port {self.settings.port} on {self.settings.host} is in use"
            log.error(
                "The gateway cannot listen: %s. Stop the program that has it, or choose another port (--port or PORT).",
                slot.last_error,
            )
            self._exit_code = EXIT_CONFIG
            self._stopping.set()
        elif slot.is_gateway and self.host.stdio_fds is not None and code == 0:
            slot.state = STOPPED  # the stdio client closed its end: the whole tree's work is done
            self._stopping.set()
        else:
            log.warning("%s exited unexpectedly (%s).", slot.label, slot.last_exit)
            self._crashed(slot, child.started_at)
        slot.settled.set()
        self._publish("exited", slot)

    def _crashed(self, slot: Slot, started_at: float) -> None:
        decision = slot.policy.on_crash(started_at)
        if decision.fatal:
            slot.state = FATAL
            slot.last_error = f"{decision.reason}; last: {slot.last_error or slot.last_exit}"
            log.error("%s is FATAL: %s", slot.label, slot.last_error)
            if slot.is_gateway:
                self._exit_code = EXIT_FAILURE
                self._stopping.set()
                return
            self._schedule_fatal_retry(slot)
            return
        slot.state = BACKOFF
        slot.restarts += 1
        log.info("Restarting %s in %.2f s.", slot.label, decision.delay_s)
        self._schedule(slot, decision.delay_s, self._restart_due)

    def _schedule(self, slot: Slot, delay_s: float, action: Callable[[Slot], None]) -> None:
        slot.next_attempt_at = time.time() + delay_s
        slot.timer = asyncio.get_running_loop().call_later(delay_s, action, slot)

    def _schedule_fatal_retry(self, slot: Slot) -> None:
        """FATAL is not final: after a cool-down the backend gets a fresh start (whatever broke it, a full
        disk, a registry outage, may be gone by then); `status` says when."""
        cooldown = slot.options.fatalCooldown
        if cooldown > 0:
            log.info("%s: trying again in %g s.", slot.label, cooldown)
            self._schedule(slot, cooldown, self._fatal_retry_due)

    def _fatal_retry_due(self, slot: Slot) -> None:
        if self._stopping.is_set() or slot.state != FATAL or self.workers.get(slot.key) is not slot:
            return
        log.info("%s: the FATAL cool-down is over; starting it again.", slot.label)
        slot.policy.reset()
        self._spawn(slot)

    def _restart_due(self, slot: Slot) -> None:
        if self._stopping.is_set() or slot.state != BACKOFF:
            return
        if slot.is_gateway or self.workers.get(slot.key) is slot:
            self._spawn(slot)

    async def _stop(self, slot: Slot) -> None:
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

    async def _replace(self, key: str, entry: ServerEntry) -> None:
        """Start the new worker first; stop (drain) the old one once the new one is RUNNING or has failed."""
        old = self.workers[key]
        new = self._new_slot(key, entry, generation=old.generation)
        if old.timer is not None:
            old.timer.cancel()
        self._spawn(new)
        if old.child is not None and old.child.alive:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(new.settled.wait(), new.options.startTimeout + 5.0)
        await self._stop(old)

    # ------------------------------------------------------------------ reports, commands, reload

    async def _on_command(self, command: ControlCommand) -> CommandResult:
        match command.name:
            case "stop" if not command.key:
                self._stopping.set()
                return CommandResult(ok=True, message="Stopping.")
            case "stop" | "start" | "restart":
                slot = self.workers.get(command.key)
                if slot is None or slot.entry is None:
                    return CommandResult(ok=False, message=f'No active backend "{command.key}".')
                if command.name == "stop":
                    # Stays STOPPED until started, restarted, or its entry changes in a reload.
                    await self._stop(slot)
                    self._publish("stopped", slot)
                    return CommandResult(ok=True, message=f'Stopped "{command.key}".')
                if command.name == "start" and slot.state not in (STOPPED, FATAL):
                    return CommandResult(ok=True, message=f'"{command.key}" is {slot.state} already.')
                await self._replace(command.key, slot.entry)  # a new slot: fresh policy, FATAL cleared
                return CommandResult(ok=True, message=f'{command.name.capitalize()}ed "{command.key}".')
            case "reload":
                return await self.reload()
            case other:
                return CommandResult(ok=False, message=f"Unknown command {other!r}.")

    async def _file_changed(self, name: str) -> None:
        if name == SERVERS_FILE:
            await self.reload()
        elif name in (TOOLS_FILE, CLIENTS_FILE):
            self.files.reload(name)

    async def reload(self) -> CommandResult:
        try:
            new = self.files.reload_servers()
        except ConfigError as exc:
            log.error("Reload refused, the running config stays: %s", exc)
            return CommandResult(ok=False, message=str(exc))
        tools = self.files.reload(TOOLS_FILE)
        # `reload` re-reads every file (the admin's clients.json save relies on it).
        clients = self.files.reload(CLIENTS_FILE)
        diff = diff_servers(self.servers, new)
        self.servers = new
        work: list[Coroutine[Any, Any, None]] = []
        for key in diff.removed:
            work.append(self._remove(key))
        for key in diff.changed:
            work.append(self._replace(key, new[key]))
        await self._spawn_many([self._new_slot(key, new[key]) for key in diff.added])
        await asyncio.gather(*work)
        message = f"Reloaded: {len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed."
        for part in (tools, clients):
            if not part.ok:
                message += f" {part.message}"
        log.info("%s", message)
        return CommandResult(ok=tools.ok and clients.ok, message=message)

    async def _remove(self, key: str) -> None:
        slot = self.workers.pop(key)
        await self._stop(slot)
        self._publish("removed", slot)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            backends=[slot.status() for slot in self.workers.values()],
            config_error=self.files.error_text,
            gateway=self.gateway.status(),
            tool_config=self.files.tool_config,
            running_servers=self.files.running_servers,
            clients=self.files.clients,
            worker_spawn=self.zygote.describe(),
            catalog_problems=self.reports.catalog_problems,
        )

    def _broadcast(self, message: ClientsUpdate | ToolConfigUpdate | ConfigStatus) -> None:
        if self.control is not None:
            self._background(self.control.broadcast(message))

    def _publish(self, event: str, slot: Slot) -> None:
        # The gateway hears of itself only through resource samples (its own `/health/backends`, the admin).
        if self.control is None or (slot.is_gateway and event != "sample"):
            return
        self._background(self.control.publish(event, slot.status()))


def run_supervisor(settings: Settings, stdio: bool = False) -> int:
    configure_logging(settings.log_level, "%(asctime)s supervisor %(levelname)s %(message)s")
    supervisor = Supervisor(settings, stdio=stdio)
    supervisor.host.prepare()  # outside the try: a refused runtime dir is told on stderr only, as it always was
    try:
        return asyncio.run(supervisor.run())
    except ConfigError as exc:
        if supervisor.host.stdio_fds is not None:
            refuse_stdio_client(*supervisor.host.stdio_fds, str(exc))
        raise
