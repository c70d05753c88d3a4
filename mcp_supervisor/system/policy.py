"""The sandbox's vocabulary: a server's policy (`"sandbox"` in mcp_server.json), the global mode, the error."""

from __future__ import annotations

import ipaddress
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


class SandboxUnavailable(SupervisorError):
    """SANDBOX=required, and this host cannot enforce something the backend's policy asks for."""
