"""Starting one slot's child: its handoff spec, descriptors and environment, then a fork by the zygote or a spawn.

A worker's start may first wait for its npx/uvx package (package_step.py), and fails FATAL when its sandbox
cannot be planned. What happens once the child exists (or could not be made) is the slot state machine's
(children.py), told through `Lifecycle`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.protocol import socket_auth
from mcp_supervisor.protocol.spawn import (
    BACKEND_STDERR_FD_ENV,
    HANDOFF_FD_ENV,
    OWN_CHILD,
    WORKER_SPEC_OFFSET,
    GatewaySpec,
    Launch,
    WorkerSpec,
    write_handoff,
)
from mcp_supervisor.supervisor.backend_launch import BackendLauncher
from mcp_supervisor.supervisor.host import Host
from mcp_supervisor.supervisor.package_cache import PackageFetchError
from mcp_supervisor.supervisor.package_specs import PackageRequest
from mcp_supervisor.supervisor.package_step import PackageStep
from mcp_supervisor.supervisor.process import ChildProcess
from mcp_supervisor.supervisor.slots import FATAL, STARTING, GatewaySlot, Slot, WorkerSlot
from mcp_supervisor.supervisor.zygote import Zygote
from mcp_supervisor.system.process_tree import INSTANCE_ENV, PARENT_PID_ENV
from mcp_supervisor.system.sandbox import SandboxUnavailable

log = logging.getLogger("mcp_supervisor.supervisor")

# A worker beats 2.5 times per heartbeatTimeout (every 2 s at the default 5 s), at most every 2 s: one late
# beat is never a kill, and a hundred idle workers do not add up to a load (each beat wakes three processes).
HEARTBEAT_MAX_INTERVAL_S = 2.0


def heartbeat_interval(timeout_s: float) -> float:
    return max(0.1, min(HEARTBEAT_MAX_INTERVAL_S, timeout_s / 2.5))


def close_fds(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


class Lifecycle(Protocol):
    """The slot state machine (children.py), as a start sees it."""

    def started(
        self, slot: Slot, child: ChildProcess, read_fd: int, ready_already: bool = False, backend_fd: int | None = None
    ) -> None: ...

    def forked(
        self, slot: WorkerSlot, generation: int, read_fd: int, pid: int | None, backend_fd: int | None = None
    ) -> None: ...

    def crashed(self, slot: Slot, started_at: float) -> None: ...

    def schedule_fatal_retry(self, slot: WorkerSlot) -> None: ...

    def wanted(self, slot: Slot) -> bool: ...


@dataclass
class _Pipes:
    """The child's stderr pipe, and its stdio backend's own (supervisor/stderr.py), if it has one."""

    read_fd: int
    write_fd: int
    backend_read: int | None = None
    backend_write: int | None = None

    @classmethod
    def open(cls, backend: bool) -> _Pipes:
        read_fd, write_fd = os.pipe()
        backend_read, backend_write = os.pipe() if backend else (None, None)
        return cls(read_fd, write_fd, backend_read, backend_write)


class ChildStarter:
    def __init__(
        self,
        lifecycle: Lifecycle,
        settings: Settings,
        host: Host,
        zygote: Zygote,
        packages: PackageStep,
        servers: Callable[[], Mapping[str, ServerEntry]],
        worker_fds: Callable[[], dict[str, int]],
        publish: Callable[[str, Slot], None],
        background: Callable[[Coroutine[Any, Any, Any]], None],
    ) -> None:
        self._lifecycle = lifecycle
        self._settings = settings
        self._host = host
        self._zygote = zygote
        self._packages = packages
        self._servers = servers  # the active servers (a sandbox plan may name the others')
        self._worker_fds = worker_fds  # what every worker inherits besides its handoff (reports.py)
        self._publish = publish
        self._background = background
        self.launcher: BackendLauncher | None = None  # the start-up's, once the host's cgroups are known

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[INSTANCE_ENV] = self._host.instance
        env[PARENT_PID_ENV] = str(os.getpid())
        env["MCP_SUPERVISOR_CONFIG_DIR"] = str(self._settings.config_dir)
        env["MCP_SUPERVISOR_LOG_LEVEL"] = self._settings.log_level
        env["MCP_SUPERVISOR_EVENT_LOOP"] = self._settings.event_loop  # validated, for the zygote's preload
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    # ------------------------------------------------------------------ one way per kind of slot

    def start_gateway(self, slot: GatewaySlot) -> None:
        self._next_generation(slot)
        env = self.child_env()
        spec = GatewaySpec(generation=slot.generation, instance_key=self._host.instance_key.hex())
        argv = [sys.executable, *OWN_CHILD, "gateway", "--runtime-dir", str(self._host.runtime_dir)]
        pass_fds: tuple[int, ...] = ()
        if self._host.stdio_fds is not None:
            argv += ["--stdio-fds", ",".join(map(str, self._host.stdio_fds))]
            pass_fds = self._host.stdio_fds
        handoff_fd = write_handoff(spec, 0)
        env[HANDOFF_FD_ENV] = str(handoff_fd)
        self._spawn(slot, argv, env, pass_fds, handoff_fd, _Pipes.open(backend=False))

    def start_worker(self, slot: WorkerSlot) -> None:
        if self._defer_for_packages(slot):
            return
        self._next_generation(slot)
        env = self.child_env()
        launch = self._plan_launch(slot)
        if launch is False:
            return
        spec = self._worker_spec(slot, launch)
        handoff_fd = write_handoff(spec, WORKER_SPEC_OFFSET)
        env[HANDOFF_FD_ENV] = str(handoff_fd)
        slot.attach_beats(handoff_fd)
        pass_fds: tuple[int, ...] = ()
        for name, fd in self._worker_fds().items():
            env[name] = str(fd)
            pass_fds = (*pass_fds, fd)
        pipes = _Pipes.open(backend=bool(spec.launch))
        if self._zygote.ready:
            slot.state = STARTING
            fds: tuple[int, ...] = (pipes.write_fd, handoff_fd)
            if pipes.backend_write is not None:
                fds = (*fds, pipes.backend_write)
            self._fork(slot, fds, pipes)  # the zygote closes the fds it is given
            return
        if pipes.backend_write is not None:
            env[BACKEND_STDERR_FD_ENV] = str(pipes.backend_write)
            pass_fds = (*pass_fds, pipes.backend_write)
        argv = [sys.executable, *OWN_CHILD, "worker"]
        self._spawn(slot, argv, env, pass_fds, handoff_fd, pipes)

    # ------------------------------------------------------------------ the common steps

    @staticmethod
    def _next_generation(slot: Slot) -> None:
        slot.timer = None
        slot.next_attempt_at = None
        slot.generation += 1
        slot.commanded_stop = False
        slot.era = slot.protocol_version = ""  # the new generation's worker probes its backend afresh
        slot.settled.clear()

    def _worker_spec(self, slot: WorkerSlot, launch: Launch | None) -> WorkerSpec:
        user = socket_auth.worker_user(slot.key, slot.generation)
        return WorkerSpec(
            server=slot.entry,
            launch=launch or None,
            generation=slot.generation,
            runtime_dir=str(self._host.runtime_dir),
            credentials=socket_auth.derive(self._host.instance_key, user),
            init_timeout_s=slot.options.startTimeout,
            drain_timeout_s=max(0.5, slot.options.stopGrace - 1.0),
            heartbeat_interval_s=heartbeat_interval(slot.options.heartbeatTimeout),
            oauth_client_secret=os.environ.get(slot.entry.oauth.clientSecretEnv, "") if slot.entry.oauth else "",
            event_loop=self._settings.event_loop,
        )

    def _spawn(
        self,
        slot: Slot,
        argv: list[str],
        env: dict[str, str],
        pass_fds: tuple[int, ...],
        handoff_fd: int,
        pipes: _Pipes,
    ) -> None:
        try:
            slot.child = ChildProcess(argv, env, pipes.write_fd, (*pass_fds, handoff_fd))
        except OSError as exc:
            close_fds(pipes.read_fd, pipes.backend_read)
            slot.detach_beats()
            slot.last_error = f"cannot spawn: {exc}"
            self._lifecycle.crashed(slot, time.monotonic())
            return
        finally:
            close_fds(handoff_fd, pipes.backend_write)  # the child has its copies
        self._lifecycle.started(slot, slot.child, pipes.read_fd, backend_fd=pipes.backend_read)

    def _fork(self, slot: WorkerSlot, fds: tuple[int, ...], pipes: _Pipes) -> None:
        """Ask the zygote for the worker (copy-on-write, no imports); `Lifecycle.forked` takes the answer."""
        generation, read_fd, backend_fd = slot.generation, pipes.read_fd, pipes.backend_read
        self._zygote.request(fds, lambda pid: self._lifecycle.forked(slot, generation, read_fd, pid, backend_fd))

    def _plan_launch(self, slot: WorkerSlot) -> Launch | Literal[False] | None:
        """The stdio backend's launch (None for remote backends), or False when it must not start at all."""
        assert self.launcher is not None
        if slot.entry.type != "stdio":
            return None
        try:
            package_env, slot.package_env = slot.package_env, None
            launch, slot.sandbox, plan = self.launcher.plan(slot.entry, slot.generation, self._servers(), package_env)
            plan.prepare()
        except (SandboxUnavailable, OSError) as exc:
            slot.state = FATAL
            slot.last_error = str(exc)
            log.error("%s is FATAL: %s", slot.label, exc)
            self._lifecycle.schedule_fatal_retry(slot)
            slot.settled.set()
            self._publish("exited", slot)
            return False
        slot.cgroup = plan.cgroup
        return launch

    # ------------------------------------------------------------------ the package cache

    def _defer_for_packages(self, slot: WorkerSlot) -> bool:
        """An npx/uvx backend first gets its package (fetched once into the shared cache) and its own copy of the
        cache, in a task off the loop, STARTING with a detail meanwhile; True when the spawn waits for that."""
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

    async def _prepare_packages(self, slot: WorkerSlot, request: PackageRequest, token: object) -> None:
        assert self.launcher is not None
        entry, error = slot.entry, None
        started = time.monotonic()
        try:
            env = await self._packages.prepare(self.launcher, entry, self._servers(), request)
        except (PackageFetchError, SandboxUnavailable, OSError) as exc:
            error = str(exc)
        except Exception as exc:  # a bug of ours must not leave the backend STARTING for ever
            log.exception("%s: preparing its packages failed", slot.label)
            error = f"Preparing its packages failed: {exc!r}"
        if slot.preparing is not token or slot.state != STARTING or not self._lifecycle.wanted(slot):
            return  # stopped, replaced or started again meanwhile
        slot.preparing, slot.detail = None, ""
        if error is not None:
            slot.last_error = error
            log.error("%s: %s", slot.label, error)
            self._lifecycle.crashed(slot, started)
            slot.settled.set()
            self._publish("exited", slot)
            return
        slot.package_env, slot.packages_ready = env, True
        self.start_worker(slot)
