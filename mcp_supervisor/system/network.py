"""The network part of a backend's sandbox plan: which network it gets, and the account of it for `status`.

`sandbox.network` (system/sandbox_policy.py):
- `true` (default): a network namespace of its own, with slirp4netns as a user-mode stack: TCP and UDP to the
  internet and the LAN as the host's own connections, nothing of the host itself. slirp4netns runs with
  --disable-host-loopback (the host's 127.0.0.0/8, also behind its 10.0.2.2 alias, is refused), and routes inside
  the namespace prohibit each of the host's own addresses (a gateway bound to 0.0.0.0 answers on them) and
  link-local 169.254.0.0/16 (cloud metadata). There is no IPv6 (so no fe80::/10 either).
- `false`: a namespace without interfaces (bwrap --unshare-net).
- `{"allow": [...]}`: the default route is replaced by routes to the allowed addresses (host names resolved at
  spawn); ports, when named, are enforced by Landlock (ABI 4+), which filters TCP connect by port only.
- `{"hostPorts": [...]}`: the named TCP ports of the host's loopback, relayed by the worker from 127.0.0.1:PORT
  inside the namespace (system/netns.py); with the default's egress unless `allow` is given too.

The namespace is bubblewrap's; the worker wires it up between bwrap's namespace creation and the backend's exec
(system/netns.py). Where that cannot be done (no bubblewrap with user namespaces, no slirp4netns or no
/dev/net/tun), the backend shares the host's network as before and `status` says so; SANDBOX=required refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from mcp_supervisor.system import exposure as m
from mcp_supervisor.system.enforcement import Account
from mcp_supervisor.system.sandbox_policy import NetworkPolicy, SandboxPolicy, parse_destination

# Placeholders in the planned argv that the worker replaces with the fds it made for this start (netns.py).
INFO_FD = "@netns-info-fd@"
BLOCK_FD = "@netns-block-fd@"
RESOLV_FD = "@netns-resolv-fd@"
# slirp4netns' fixed addresses: the gateway (the host's alias, refused with --disable-host-loopback), its DNS.
SLIRP_GATEWAY = "10.0.2.2"
SLIRP_DNS = "10.0.2.3"
RESOLV_CONF = f"nameserver {SLIRP_DNS}\n"


class NetworkSetup(msgspec.Struct, frozen=True, kw_only=True):
    """What the worker does around a backend's start to give it its own network (carried in `Launch`)."""

    slirp4netns: str
    restrict: bool = False  # True: egress only to `allow` (no default route)
    allow: tuple[str, ...] = ()  # hosts and CIDRs (ports are Landlock's, in the stage)
    host_ports: tuple[int, ...] = ()
    cgroup_procs: tuple[str, ...] = ()  # slirp4netns joins the backend's cgroup: its memory is the backend's


@dataclass(frozen=True)
class NetworkDecision:
    mode: str  # "private" (own namespace, slirp4netns), "none" (namespace without interfaces), "host" (shared)
    setup: NetworkSetup | None = None
    connect_ports: tuple[int, ...] = ()  # Landlock TCP connect allowlist; () means no port filter


def _ports(policy: NetworkPolicy) -> tuple[tuple[int, ...], bool]:
    """(the ports to allow for TCP connect, whether every destination named one)."""
    named = [parse_destination(entry)[1] for entry in policy.allow or ()]
    every = bool(named) and all(port is not None for port in named)
    return tuple(sorted({p for p in named if p is not None} | set(policy.host_ports))), every


def decide_network(
    policy: SandboxPolicy, userns: bool, slirp: tuple[str, str], landlock_abi: int, account: Account
) -> NetworkDecision:
    """Which network a bwrap-sandboxed backend gets (`userns`: bwrap makes a user namespace, which slirp4netns
    and the route set-up enter), with its account."""
    network = policy.network
    if network is False:
        account.ok("network", "bubblewrap: own network namespace without interfaces")
        account.measure(m.NET_NONE)
        return NetworkDecision("none")
    path, problem = slirp
    if not userns:
        problem = "bubblewrap cannot make a user namespace here, which the user-mode network needs"
    if not path or not userns:
        account.gap("network", f"host network shared: {problem}", requested=True)
        if landlock_abi >= 6:
            account.ok("network", "host abstract unix sockets blocked by Landlock")
            account.measure(m.NET_HOST_SCOPED)
        return NetworkDecision("host")
    if network is True:
        account.ok(
            "network",
            "own network namespace (slirp4netns): internet and LAN over IPv4; the host's loopback, its own "
            "addresses and link-local 169.254.0.0/16 unreachable",
        )
        account.measure(m.NET_NAMESPACE)
        return NetworkDecision("private", NetworkSetup(slirp4netns=path))
    allow = network.allow or ()
    restrict = network.allow is not None
    text = "own network namespace (slirp4netns)"
    if restrict:
        text += f": egress only to {', '.join(allow) or 'nothing'}"
    else:
        text += ": internet and LAN over IPv4; the host's own addresses and link-local unreachable"
    if network.host_ports:
        text += f"; host loopback TCP port(s) {', '.join(map(str, network.host_ports))} at 127.0.0.1"
    account.ok("network", text)
    account.measure(m.NET_NAMESPACE)
    ports, every = _ports(network)
    connect: tuple[int, ...] = ()
    if any(parse_destination(entry)[1] is not None for entry in allow):
        if landlock_abi < 4:
            account.gap("network", f"ports not enforced: Landlock ABI {landlock_abi} < 4", requested=True)
        elif not every:
            account.gap("network", "ports not enforced: some allow entries name no port", requested=False)
        else:
            connect = ports
            account.ok("network", f"Landlock: TCP connect only to port(s) {', '.join(map(str, ports))}")
    hosts = tuple(parse_destination(entry)[0] for entry in allow)
    setup = NetworkSetup(slirp4netns=path, restrict=restrict, allow=hosts, host_ports=network.host_ports)
    return NetworkDecision("private", setup, connect)


def account_unshared(policy: SandboxPolicy, why: str, account: Account) -> None:
    """The network account without bubblewrap (Landlock alone or limits only): no namespace of its own."""
    if policy.network is not False:
        account.gap("network", f"host network shared: no network namespace ({why})", requested=True)
