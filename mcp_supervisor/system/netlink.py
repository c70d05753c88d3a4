"""Routes inside a backend's network namespace, set from a forked child that entered it (system/netns.py).

Raw rtnetlink rather than `ip route`: the child enters the namespace's owning user namespace, which gives it
CAP_NET_ADMIN there, but an exec'd `ip` would lose it again (execve drops capabilities for a uid other than 0 in
that namespace, which is what bwrap maps for an unprivileged gateway). Three message shapes suffice: add a
route of type unreachable, add a unicast route via the gateway, delete the default route.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_RTM_NEWROUTE, _RTM_DELROUTE, _NLMSG_ERROR = 24, 25, 2
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_CREATE = 0x1, 0x4, 0x400
_RT_TABLE_MAIN, _RTPROT_STATIC = 254, 4
_RT_SCOPE_UNIVERSE, _RT_SCOPE_NOWHERE = 0, 255
_RTN_UNICAST, _RTN_UNREACHABLE = 1, 7
_RTA_DST, _RTA_GATEWAY = 1, 5
# Loaded at import, in the worker: a forked child only calls into it (no dlopen, no allocation of our own).
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int, nstype: int) -> None:
    if _libc.setns(fd, nstype) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def host_addresses() -> list[str]:
    """The host's own IPv4 addresses (LOCAL entries of /proc/net/fib_trie) outside 127.0.0.0/8: a server bound to
    0.0.0.0 answers on each, and slirp4netns, connecting from the host's namespace, would reach it there."""
    found: set[str] = set()
    previous = ""
    try:
        with open("/proc/net/fib_trie") as trie:
            for line in trie:
                text = line.strip()
                if text.startswith("|-- "):
                    previous = text[4:]
                elif text == "/32 host LOCAL" and previous and not previous.startswith("127."):
                    found.add(previous)
    except OSError:
        pass
    return sorted(found)


def _attr(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * (-size % 4)


def _route(message: int, network: ipaddress.IPv4Network, kind: int, gateway: str | None, seq: int) -> bytes:
    deleting = message == _RTM_DELROUTE  # then any protocol and scope match (slirp4netns' route is not ours)
    scope, protocol = (_RT_SCOPE_NOWHERE, 0) if deleting else (_RT_SCOPE_UNIVERSE, _RTPROT_STATIC)
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, network.prefixlen, 0, 0, _RT_TABLE_MAIN, protocol, scope, kind, 0)
    if network.prefixlen:
        body += _attr(_RTA_DST, network.network_address.packed)
    if gateway is not None:
        body += _attr(_RTA_GATEWAY, socket.inet_aton(gateway))
    flags = _NLM_F_REQUEST | _NLM_F_ACK | (_NLM_F_CREATE if message == _RTM_NEWROUTE else 0)
    return struct.pack("=LHHLL", 16 + len(body), message, flags, seq, 0) + body


def _send(sock: socket.socket, request: bytes, tolerate: int = 0) -> None:
    sock.send(request)
    reply = sock.recv(65536)
    kind = struct.unpack_from("=H", reply, 4)[0]
    if kind == _NLMSG_ERROR:
        code = -struct.unpack_from("=i", reply, 16)[0]
        if code and code != tolerate:
            raise OSError(code, f"rtnetlink: {os.strerror(code)}")


def apply_routes(unreachable: Iterable[str], allow: Iterable[str] | None, gateway: str) -> None:
    """In the namespace: `unreachable` CIDRs get routes that refuse at once (EHOSTUNREACH); with `allow` (a list,
    even empty) the default route goes and only those CIDRs are routed, via `gateway`."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        seq = 0
        for cidr in unreachable:
            seq += 1
            _send(sock, _route(_RTM_NEWROUTE, ipaddress.IPv4Network(cidr), _RTN_UNREACHABLE, None, seq), errno.EEXIST)
        if allow is None:
            return
        seq += 1
        _send(sock, _route(_RTM_DELROUTE, ipaddress.IPv4Network("0.0.0.0/0"), 0, None, seq))
        for cidr in allow:
            seq += 1
            # EEXIST: the same network is also one of the host's own (unreachable wins: hostPorts is the way in).
            _send(sock, _route(_RTM_NEWROUTE, ipaddress.IPv4Network(cidr), _RTN_UNICAST, gateway, seq), errno.EEXIST)
