"""The sandbox's vocabulary: a server's policy (`"sandbox"` in mcp_server.json), the global mode, the error."""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
from typing import Annotated, Literal

import msgspec

from mcp_supervisor.errors import SupervisorError

SandboxMode = Literal["auto", "required", "off"]
# What `status` reports on, per backend: each feature is enforced, not enforced, or partly both.
FEATURES = ("filesystem", "processes", "network", "memory", "pids", "cpu", "privileges")


_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


def parse_destination(entry: str) -> tuple[str, int | None]:
    """("host or CIDR", port or None) of one `allow` entry: `example.com`, `10.0.0.0/8`, `host:443`,
    `10.0.0.0/8:5432`, `[2001:db8::/32]:443`, `2001:db8::1`; ValueError with what is wrong."""
    text = entry.strip()
    target, port = text, None
    if text.startswith("["):
        target, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"allow entry {entry!r}: expected ]:PORT after the bracketed address")
            port = rest[1:]
    elif text.count(":") == 1:
        target, port = text.split(":")
    if port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535):
        raise ValueError(f"allow entry {entry!r}: the port must be a number from 1 to 65535")
    try:
        ipaddress.ip_network(target, strict=False)
    except ValueError:
        if "/" in target or ":" in target or not _HOSTNAME.fullmatch(target):
            raise ValueError(
                f"allow entry {entry!r} is neither an IP address, a CIDR nor a host name (host, host:PORT, CIDR, "
                "CIDR:PORT, [IPv6]:PORT)"
            ) from None
    return target, int(port) if port is not None else None


class NetworkPolicy(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """`"network": {"allow": [...], "hostPorts": [...]}`: egress only to `allow` (hosts, CIDRs, optional ports;
    empty: no egress; absent: the default's internet and LAN), plus the named TCP ports of the host's loopback,
    reachable as 127.0.0.1:PORT inside."""

    allow: tuple[str, ...] | None = None
    host_ports: tuple[Port, ...] = ()

    def __post_init__(self) -> None:
        for entry in self.allow or ():
            parse_destination(entry)  # msgspec turns the ValueError into a ValidationError naming the field


class SandboxPolicy(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A server entry's optional `"sandbox"` object (camelCase in mcp_server.json: readPaths, memoryMb...)."""

    enabled: bool = True
    # True: internet and LAN through a user-mode stack in a namespace of its own, nothing of the host itself;
    # False: no network at all; NetworkPolicy: only what it names (system/network.py).
    network: bool | NetworkPolicy = True
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
