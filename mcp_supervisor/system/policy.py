"""The sandbox's vocabulary: a server's policy (`"sandbox"` in mcp_server.json), the global mode, the error."""

from __future__ import annotations

import grp
import os
import pwd
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
    # "user[:group]", names or numbers: the uid (and gid) the backend runs as. Only a supervisor running as
    # root can switch; the backend's HOME is handed to that user.
    run_as: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?$")] | None = None


class SandboxUnavailable(SupervisorError):
    """SANDBOX=required, and this host cannot enforce something the backend's policy asks for."""


def resolve_run_as(run_as: str, name: str) -> tuple[int, int]:
    """(uid, gid) of a policy's `runAs` ("user[:group]", names or numbers; without a group, the user's own, or
    the uid's number). Raises SandboxUnavailable when a name is unknown or this process may not switch."""
    user, _, group = run_as.partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        if not user.isdigit():
            raise SandboxUnavailable(f'The backend {name} was not started: "runAs" names no user {user!r}.') from None
        uid, gid = int(user), int(user)
    else:
        uid, gid = entry.pw_uid, entry.pw_gid
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise SandboxUnavailable(f'The backend {name} was not started: "runAs" names no group {group!r}.') from None
    if os.geteuid() != 0 and (uid, gid) != (os.geteuid(), os.getegid()):
        raise SandboxUnavailable(
            f'The backend {name} was not started: "runAs": "{run_as}" needs the supervisor to run as root '
            f"(it runs as uid {os.geteuid()})."
        )
    return uid, gid
