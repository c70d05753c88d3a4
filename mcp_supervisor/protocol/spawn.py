"""What the supervisor hands a child at spawn, and how: through an inherited fd, never argv or the environment.

A process's environment and argv are readable in /proc by every process of the same user, and a stdio
backend inherits its worker's environment besides. So the spec (the server entry with its credentials) and
the child's socket credentials are written to an anonymous memory file (memfd: no path anywhere), whose fd
alone is inherited; its number is the only thing the environment says. The child reads it once and closes
it, before it starts anything of its own.
"""

from __future__ import annotations

import os
import tempfile

import msgspec

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.protocol.socket_auth import Credentials

HANDOFF_FD_ENV = "MCP_SUPERVISOR_HANDOFF_FD"
# The zygote's end of its socketpair with the supervisor (supervisor/zygote.py, worker/zygote.py).
ZYGOTE_FD_ENV = "MCP_SUPERVISOR_ZYGOTE_FD"
# A fork request carries exactly these fds (SCM_RIGHTS) and nothing else: the worker's output pipe, its handoff.
ZYGOTE_FORK = b"fork"


class Launch(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly how a worker starts its stdio backend, decided by the supervisor: the argv (the sandbox's
    wrapper and launcher included), the whole environment, and the working directory."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None = None


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
    # How often the worker heartbeats (to the supervisor's watchdog, and to the gateway to get linked).
    heartbeat_interval_s: float = 1.0
    # The value of the variable `server.oauth.clientSecretEnv` names, read by the supervisor: the worker gets
    # it here (the memfd) rather than from its environment, which is nobody's but the tree's.
    oauth_client_secret: str = ""

    @property
    def identity(self) -> str:
        """The worker's routing identity on the data socket: its authenticated user name."""
        return self.credentials.user


class GatewaySpec(msgspec.Struct, frozen=True, kw_only=True):
    generation: int
    # Hex of the instance key: the gateway checks the workers' passwords with it, and derives its own.
    instance_key: str


def write_handoff(spec: WorkerSpec | GatewaySpec) -> int:
    """An fd holding the encoded spec, positioned at its start; the caller passes it and then closes it."""
    payload = msgspec.json.encode(spec)
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("mcp-supervisor-handoff", os.MFD_CLOEXEC)
    else:  # no memfd: an unlinked temporary file is as private
        with tempfile.TemporaryFile() as file:
            fd = os.dup(file.fileno())
    os.write(fd, payload)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_handoff() -> bytes:
    raw = os.environ.pop(HANDOFF_FD_ENV, None)
    if raw is None or not raw.isdigit():
        raise SystemExit(f"{HANDOFF_FD_ENV} is not set: this process is started by `mcp-supervisor start`.")
    fd = int(raw)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def take_worker_spec() -> WorkerSpec:
    return msgspec.json.decode(_read_handoff(), type=WorkerSpec)


def take_gateway_spec() -> GatewaySpec:
    return msgspec.json.decode(_read_handoff(), type=GatewaySpec)
