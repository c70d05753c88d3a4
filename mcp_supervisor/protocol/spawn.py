"""What the supervisor hands a child at spawn, and how: through an inherited fd, never argv or the environment.

A process's environment and argv are readable in /proc by every process of the same user, and a stdio
backend inherits its worker's environment besides. So the spec (the server entry with its credentials) and
the child's socket credentials are written to an anonymous memory file (memfd: no path anywhere), whose fd
alone is inherited; its number is the only thing the environment says. The child reads it once and closes
it, before it starts anything of its own. A worker's memfd starts with its heartbeat page (beat_page.py),
which it maps before closing the fd: mappings, unlike fds, never reach the backend it execs.
"""

from __future__ import annotations

import os
import tempfile

import msgspec

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.protocol.beat_page import PAGE_SIZE, BeatPage
from mcp_supervisor.protocol.socket_auth import Credentials
from mcp_supervisor.system.network import NetworkSetup

HANDOFF_FD_ENV = "MCP_SUPERVISOR_HANDOFF_FD"
# The zygote's end of its socketpair with the supervisor (supervisor/zygote.py, worker/zygote.py).
ZYGOTE_FD_ENV = "MCP_SUPERVISOR_ZYGOTE_FD"
# A fork request carries these fds (SCM_RIGHTS) and nothing else: the worker's output pipe, its handoff, and for a
# stdio backend the pipe for the backend's stderr.
ZYGOTE_FORK = b"fork"
# The eventfd a worker writes after reporting in its heartbeat page (every worker has it, the backends never).
REPORT_FD_ENV = "MCP_SUPERVISOR_REPORT_FD"
# The write end of the pipe a worker gives its stdio backend as stderr: the backend's words are read apart from the
# worker's own (supervisor/stderr.py), so no backend can write a line that passes for another process's.
BACKEND_STDERR_FD_ENV = "MCP_SUPERVISOR_BACKEND_STDERR_FD"
# A worker's handoff starts with its heartbeat page (protocol/beat_page.py); the spec follows it.
WORKER_SPEC_OFFSET = PAGE_SIZE


class Launch(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly how a worker starts its stdio backend, decided by the supervisor: the argv (the sandbox's
    wrapper and launcher included), the whole environment, and the working directory."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None = None
    # The same start in two parts: the sandbox's outer stage as launcher options (system/launch.py), and what
    # that stage execs. A worker with a single thread does the stage itself in the forked child and execs
    # `program`, saving an interpreter start; otherwise it execs `argv`. Empty `stage`: `argv` is all there is.
    stage: tuple[str, ...] = ()
    program: tuple[str, ...] = ()
    # A network namespace of its own, wired up by the worker while bwrap waits (system/netns.py).
    network: NetworkSetup | None = None


class WorkerSpec(msgspec.Struct, frozen=True, kw_only=True):
    server: ServerEntry
    generation: int
    runtime_dir: str
    credentials: Credentials
    # Stdio backends only.
    launch: Launch | None = None
    # cgroup.procs files the worker joins first thing, so that it and everything it starts are tracked there.
    cgroup_procs: tuple[str, ...] = ()
    init_timeout_s: float = 30.0
    # On SIGTERM the worker lets in-flight requests finish for up to this long before closing its backend.
    drain_timeout_s: float = 5.0
    # How often the worker's loop beats into its heartbeat page (read by the supervisor's watchdog).
    heartbeat_interval_s: float = 1.0
    # The value of the variable `server.oauth.clientSecretEnv` names, read by the supervisor: the worker gets
    # it here (the memfd) rather than from its environment, which is nobody's but the tree's.
    oauth_client_secret: str = ""
    # Settings.event_loop, which the worker does not read itself (it reads no settings: only this spec).
    event_loop: str = "uvloop"

    @property
    def identity(self) -> str:
        """The worker's routing identity on the data socket: its authenticated user name."""
        return self.credentials.user


class GatewaySpec(msgspec.Struct, frozen=True, kw_only=True):
    generation: int
    # Hex of the instance key: the gateway checks the workers' passwords with it, and derives its own.
    instance_key: str


def write_handoff(spec: WorkerSpec | GatewaySpec, offset: int = 0) -> int:
    """An fd holding the encoded spec at `offset` (zeros before it), positioned there; the caller passes it
    and then closes it. A worker's spec goes at WORKER_SPEC_OFFSET, after its heartbeat page."""
    payload = msgspec.json.encode(spec)
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("mcp-supervisor-handoff", os.MFD_CLOEXEC)
    else:  # no memfd: an unlinked temporary file is as private
        with tempfile.TemporaryFile() as file:
            fd = os.dup(file.fileno())
    os.ftruncate(fd, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    os.write(fd, payload)
    os.lseek(fd, offset, os.SEEK_SET)
    return fd


def _handoff_fd() -> int:
    # The spawn environment (an fd number our spawner placed), read before any Settings exist.
    raw = os.environ.pop(HANDOFF_FD_ENV, None)
    if raw is None or not raw.isdigit():
        raise SystemExit(f"{HANDOFF_FD_ENV} is not set: this process is started by `mcp-supervisor start`.")
    return int(raw)


def _read_rest(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def take_worker_handoff() -> tuple[WorkerSpec, BeatPage | None]:
    """The worker's spec and its heartbeat page (None when the handoff has none: then it beats by message)."""
    fd = _handoff_fd()
    try:
        start = os.lseek(fd, 0, os.SEEK_CUR)
        payload = _read_rest(fd)
        page = None
        if start >= PAGE_SIZE:
            try:
                page = BeatPage(fd, writable=True)
            except (OSError, ValueError):
                page = None
    finally:
        os.close(fd)
    return msgspec.json.decode(payload, type=WorkerSpec), page


def take_report_fd(name: str = REPORT_FD_ENV) -> int | None:
    """The report eventfd (REPORT_FD_ENV), made non-inheritable so no backend gets it; None without one."""
    raw = os.environ.pop(name, "")
    if not raw.isdigit():
        return None
    try:
        os.set_inheritable(int(raw), False)
    except OSError:
        return None
    return int(raw)


def take_backend_stderr_fd() -> int | None:
    """The backend's stderr pipe (BACKEND_STDERR_FD_ENV), non-inheritable: the backend gets it as its fd 2 only."""
    return take_report_fd(BACKEND_STDERR_FD_ENV)


def take_gateway_spec() -> GatewaySpec:
    fd = _handoff_fd()
    try:
        payload = _read_rest(fd)
    finally:
        os.close(fd)
    return msgspec.json.decode(payload, type=GatewaySpec)


# How the supervisor starts a child of its own (gateway, zygote, worker). `-P`: `python -m` would otherwise put the
# working directory first on sys.path, and a `zmq.py` lying there would run inside every child.
OWN_CHILD = ("-P", "-m", "mcp_supervisor")
