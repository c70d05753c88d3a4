"""The sandbox's vocabulary: a server's policy (`"sandbox"` in mcp_server.json), the global mode, the error."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from mcp_supervisor.errors import SupervisorError

SandboxMode = Literal["auto", "required", "off"]
# What `status` reports on, per backend: each feature is enforced, not enforced, or partly both.
FEATURES = ("filesystem", "processes", "network", "memory", "pids", "cpu", "privileges")


class SandboxPolicy(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A server entry's optional `"sandbox"` object (camelCase in mcp_server.json: readPaths, memoryMb...)."""

    enabled: bool = True
    network: bool = True  # False: no network at all
    read_paths: tuple[str, ...] = ()
    write_paths: tuple[str, ...] = ()
    memory_mb: Annotated[int, msgspec.Meta(ge=8)] | None = None
    pids: Annotated[int, msgspec.Meta(ge=1)] | None = None
    cpus: Annotated[float, msgspec.Meta(gt=0)] | None = None


class SandboxUnavailable(SupervisorError):
    """SANDBOX=required, and this host cannot enforce something the backend's policy asks for."""
