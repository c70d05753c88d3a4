"""Where the sockets live and how they are configured.

The runtime directory is derived from the config directory, so `mcp-supervisor status` finds the running
supervisor of the same config without a pid file, and two supervisors on different configs never collide.
It is created 0700: ipc sockets inherit no other access control.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from mcp_supervisor.errors import ConfigError

RUNTIME_DIR_ENV = "MCP_SUPERVISOR_RUNTIME_DIR"


@dataclass(frozen=True)
class Endpoints:
    runtime_dir: Path

    @property
    def data(self) -> str:
        """Gateway ROUTER; workers connect DEALERs here."""
        return f"ipc://{self.runtime_dir / 'data.sock'}"

    @property
    def control(self) -> str:
        """Supervisor ROUTER; the gateway, workers and the CLI connect DEALERs here."""
        return f"ipc://{self.runtime_dir / 'control.sock'}"

    @property
    def lock_file(self) -> Path:
        return self.runtime_dir / "supervisor.lock"

    @property
    def log_dir(self) -> Path:
        """Per-backend stderr logs (`<key>.log`); MCP_SUPERVISOR_LOG_DIR overrides it."""
        # Not Settings, as runtime_dir_for: the CLI's `logs` and the supervisor find it from the runtime dir.
        return Path(os.environ.get("MCP_SUPERVISOR_LOG_DIR") or self.runtime_dir / "logs")


def runtime_dir_for(config_dir: Path) -> Path:
    # Not Settings: the rendezvous of every process of the tree and of the CLI, found from the config dir
    # alone (cli.py asks before it has settings; the supervisor's Host gets only the config dir).
    override = os.environ.get(RUNTIME_DIR_ENV)
    if override:
        return Path(override)
    digest = hashlib.sha256(str(config_dir.resolve()).encode()).hexdigest()[:12]
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    # Short on purpose: an ipc:// path must fit in sun_path (108 bytes).
    return Path(base) / f"mcp-supervisor-{os.getuid()}" / digest


def supervisor_running(config_dir: Path) -> bool:
    """Whether a supervisor serves `config_dir` now: it holds the lock in its runtime dir for as long as it runs
    (a socket file left by a killed one does not count)."""
    import fcntl

    try:
        fd = os.open(Endpoints(runtime_dir_for(config_dir)).lock_file, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock, if it was granted
    return False


def prepare_runtime_dir(path: Path) -> Endpoints:
    """Create the directory (and its parent) private to this user, refusing one owned by someone else."""
    for directory in (path.parent, path):
        directory.mkdir(mode=0o700, exist_ok=True)
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise ConfigError(f"Runtime directory {directory} is not a directory owned by this user.")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(directory, 0o700)
    return Endpoints(path)


def configure_router(socket: zmq.Socket[Any]) -> None:
    # MANDATORY: sending to a vanished worker raises at once instead of dropping the message silently.
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
    # HANDOVER: a restarted peer reusing an identity takes the route over.
    socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
    _common(socket)


def configure_dealer(socket: zmq.Socket[Any], identity: str) -> None:
    socket.setsockopt(zmq.IDENTITY, identity.encode())
    _common(socket)


def _common(socket: zmq.Socket[Any]) -> None:
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 100_000)
    socket.setsockopt(zmq.RCVHWM, 100_000)
    socket.setsockopt(zmq.HEARTBEAT_IVL, 10000)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 30000)
    socket.setsockopt(zmq.RECONNECT_IVL, 100)
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, 250)
