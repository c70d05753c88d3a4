"""What the supervisor hands a worker at spawn: passed in an environment variable, never on argv (secrets)."""

from __future__ import annotations

import os

import msgspec

from mcp_supervisor.config.models import ServerEntry

SPEC_ENV = "MCP_SUPERVISOR_WORKER_SPEC"


class WorkerSpec(msgspec.Struct, frozen=True, kw_only=True):
    server: ServerEntry
    generation: int
    runtime_dir: str
    init_timeout_s: float = 30.0
    # On SIGTERM the worker lets in-flight requests finish for up to this long before closing its backend.
    drain_timeout_s: float = 5.0

    @property
    def identity(self) -> str:
        return f"{self.server.key}/{self.generation}"


def encode_spec(spec: WorkerSpec) -> str:
    return msgspec.json.encode(spec).decode()


def take_spec_from_env() -> WorkerSpec:
    """Read and remove the spec, so a stdio backend (which inherits our environment) never sees it."""
    raw = os.environ.pop(SPEC_ENV, None)
    if raw is None:
        raise SystemExit(f"{SPEC_ENV} is not set: workers are started by `mcp-supervisor start`.")
    return msgspec.json.decode(raw, type=WorkerSpec)
