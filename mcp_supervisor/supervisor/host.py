"""The supervisor's hold on the host: stdio, the runtime dir and its lock, the instance cgroup, the CLI secret.

Building a Host does no I/O (tests build a Supervisor through its front door); each step below is taken by the
supervisor's start-up, and `release` undoes what shut-down must.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from mcp_supervisor.errors import ConfigError
from mcp_supervisor.protocol import socket_auth
from mcp_supervisor.protocol.endpoints import Endpoints, prepare_runtime_dir, runtime_dir_for
from mcp_supervisor.supervisor import reaper
from mcp_supervisor.system.cgroups import BackendCgroup, CgroupLimits, InstanceCgroup
from mcp_supervisor.system.process_tree import become_subreaper, set_title

log = logging.getLogger("mcp_supervisor.supervisor")


class Host:
    def __init__(self, config_dir: Path, stdio: bool = False) -> None:
        self.config_dir = config_dir
        self._stdio = stdio
        # In stdio mode the gateway speaks MCP on our stdin/stdout, handed down as these descriptors.
        self.stdio_fds: tuple[int, int] | None = None
        self.endpoints = Endpoints(runtime_dir_for(config_dir))
        self.instance = f"{self.endpoints.runtime_dir}:{os.getpid()}"
        # The secret every socket credential of this tree derives from (protocol/socket_auth.py).
        self.instance_key = socket_auth.new_instance_key()
        self.cgroups: InstanceCgroup | None = None
        self._lock_fd: int | None = None

    @property
    def stdio(self) -> bool:
        """The gateway serves our stdin/stdout (`mcp-supervisor stdio`)."""
        return self._stdio

    @property
    def runtime_dir(self) -> Path:
        return self.endpoints.runtime_dir

    @property
    def log_dir(self) -> Path:
        return self.endpoints.log_dir

    def prepare(self) -> None:
        """Before the event loop: stdin/stdout kept for the gateway, the runtime dir created (ours alone)."""
        if self._stdio:
            self.stdio_fds = _claim_stdio()
        self.endpoints = prepare_runtime_dir(self.endpoints.runtime_dir)

    def take_over(self) -> None:
        """The lock (one supervisor per config dir), the process title and the instance cgroup."""
        self._acquire_lock()
        set_title(f"mcp-supervisor: supervisor [{self.config_dir}]")
        # Before becoming a subreaper: the host probe runs bwrap once, whose namespace child must not be ours.
        self.cgroups = self._enter_instance_cgroup()

    def become_root(self) -> None:
        """The subreaper of this tree, after an earlier supervisor's leftovers are gone."""
        become_subreaper()
        stale = reaper.leftovers_of(str(self.runtime_dir), self.instance)
        if stale:
            log.warning("Killing %d process(es) left over by an earlier supervisor.", len(stale))
            reaper.kill_processes(stale)

    def write_cli_secret(self) -> None:
        """The CLI's control-socket password, readable by this user only (the runtime dir is 0700 besides)."""
        path = self.runtime_dir / socket_auth.CLI_SECRET_FILE
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(socket_auth.derive(self.instance_key, socket_auth.CLI_USER).password)

    def leave_cgroup(self) -> None:
        """Move back to where we started, then remove the instance's cgroups (and anything still in them)."""
        instance = self.cgroups
        if instance is None:
            return
        try:
            for base, _ in instance.host.bases:
                leaf = os.path.join(base, "supervisor")  # v2 moved the base's own members into this leaf
                target = leaf if instance.host.version == 2 and os.path.isdir(leaf) else base
                with open(os.path.join(target, "cgroup.procs"), "w") as procs:
                    procs.write(str(os.getpid()))
            instance.sweep(timeout=2.0)
        except OSError as exc:
            log.warning("Could not remove this instance's cgroups: %s", exc)

    def remove_sockets(self) -> None:
        for sock in ("data.sock", "control.sock", socket_auth.CLI_SECRET_FILE):
            (self.runtime_dir / sock).unlink(missing_ok=True)

    def _acquire_lock(self) -> None:
        fd = os.open(self.endpoints.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"Another mcp-supervisor (pid {other}) is already running for {self.config_dir}."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _enter_instance_cgroup(self) -> InstanceCgroup | None:
        """Sweep what earlier instances of this config left in their cgroups (a kill -9 leaves backends'
        helpers behind, however they were started), then move into this instance's own cgroup, before any
        child exists: the gateway, the workers and everything they start are in it from birth."""
        from mcp_supervisor.system.probe import probe_host

        host = probe_host().cgroup
        if host is None:
            log.info(
                "No usable cgroups (%s): backends are tracked by their sandbox's pid namespace.",
                probe_host().cgroup_problem,
            )
            return None
        label = self.runtime_dir.name  # names the config dir, for whoever reads the cgroup tree
        try:
            # Any instance whose supervisor is dead, of whichever config: its survivors have no owner left.
            for stale in InstanceCgroup.stale(host):
                killed = stale.sweep()
                log.warning(
                    "Killed %d process(es) left over by an earlier supervisor (cgroup %s).", killed, stale.instance_id
                )
            instance = InstanceCgroup.current(host, label)
            instance.create()
            own = BackendCgroup(host, instance.dirs, "supervisor")
            own.create(CgroupLimits())
            own.add_pid(os.getpid())
        except OSError as exc:
            log.warning("Cgroups are not usable (%s): backends are tracked by their sandbox's pid namespace.", exc)
            return None
        return instance


def _claim_stdio() -> tuple[int, int]:
    """Keep stdin/stdout for the gateway alone; anything else writing to our fd 1 now lands on stderr."""
    in_fd, out_fd = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return in_fd, out_fd
