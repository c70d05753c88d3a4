"""The per-feature account of a plan: what is enforced, what is not and why, in sentences for `status`, the
health endpoint and the admin. `requested` gaps are the ones SANDBOX=required refuses."""

from __future__ import annotations

from dataclasses import dataclass, field

from mcp_supervisor.system import exposure as m
from mcp_supervisor.system.cgroups import BackendCgroup, CgroupLimits
from mcp_supervisor.system.probe import HostCapabilities
from mcp_supervisor.system.sandbox_policy import SandboxPolicy


@dataclass
class Account:
    """Per-feature findings; `requested` gaps are what `required` refuses. `measures` name what is in place, in
    the vocabulary of `exposure.py`, which scores them."""

    enforced: dict[str, str] = field(default_factory=dict)
    gaps: dict[str, str] = field(default_factory=dict)
    requested_gaps: list[str] = field(default_factory=list)
    measures: list[str] = field(default_factory=list)

    def measure(self, *names: str) -> None:
        self.measures += [name for name in names if name not in self.measures]

    def ok(self, feature: str, text: str) -> None:
        self.enforced[feature] = "; ".join(filter(None, [self.enforced.get(feature), text]))

    def gap(self, feature: str, text: str, *, requested: bool) -> None:
        self.gaps[feature] = "; ".join(filter(None, [self.gaps.get(feature), text]))
        if requested and feature not in self.requested_gaps:
            self.requested_gaps.append(feature)


def account_limits(
    policy: SandboxPolicy, host: HostCapabilities, cgroup: BackendCgroup | None, account: Account
) -> CgroupLimits:
    controllers = cgroup.host.controllers if cgroup is not None else frozenset()
    version = f"cgroup v{cgroup.host.version}" if cgroup is not None else ""
    why_none = host.cgroup_problem if host.cgroup is None else "no backend cgroup was given to the planner"
    memory = pids = None
    cpus = None
    if policy.memory_mb is None:
        account.gap("memory", "no limit set (sandbox.memoryMb)", requested=False)
    elif "memory" in controllers:
        memory = policy.memory_mb * 1024 * 1024
        account.measure(m.MEMORY)
        account.ok("memory", f"{version}: {policy.memory_mb} MiB, swap included")
    else:
        reason = why_none if not controllers else "the memory controller is not available"
        account.gap("memory", f"{reason}; RLIMIT_AS is not used since it breaks node/V8", requested=True)
    if policy.pids is None:
        account.gap("pids", "no limit set (sandbox.pids)", requested=False)
    elif "pids" in controllers:
        pids = policy.pids
        account.measure(m.PIDS)
        account.ok("pids", f"{version}: at most {policy.pids} processes and threads")
    else:
        reason = why_none if not controllers else "the pids controller is not available"
        account.gap(
            "pids", f"{reason}; RLIMIT_NPROC is per uid (shared with the supervisor), so not used", requested=True
        )
    if policy.cpus is None:
        account.gap("cpu", "no limit set (sandbox.cpus)", requested=False)
    elif "cpu" in controllers:
        cpus = policy.cpus
        account.measure(m.CPU)
        account.ok("cpu", f"{version}: {policy.cpus:g} CPU")
    else:
        account.gap("cpu", why_none if not controllers else "the cpu controller is not available", requested=True)
    return CgroupLimits(memory_bytes=memory, pids=pids, cpus=cpus)


def _root_note() -> str:
    return (
        "runs as uid 0: root-owned files of the read-only system stay readable (known secrets are masked); "
        'set "runAs" in its "sandbox" to use an unprivileged uid'
    )


def account_bwrap(
    policy: SandboxPolicy, host: HostCapabilities, uid: int, readable: int, hidden: int, account: Account
) -> None:
    account.ok(
        "filesystem",
        f"bubblewrap: system read-only, {readable} granted path(s) read-only, HOME and a private /tmp writable, "
        f"{hidden} path(s) hidden",
    )
    account.ok("processes", "bubblewrap: own pid namespace (other processes invisible; the tree dies with it)")
    account.measure(m.FS_MOUNT_NS, m.PID_NS, m.CAPS_DROPPED)  # the network's own account: system/network.py
    if host.bwrap is not None and host.bwrap.userns:
        account.ok("privileges", "no capabilities, no_new_privs, own user namespace with nested ones disabled")
        account.measure(m.USER_NS)
    else:
        account.ok("privileges", "no capabilities, no_new_privs")
        account.gap("privileges", "no user namespace: nested user namespaces stay possible", requested=False)
    if uid == 0:
        account.gap("privileges", _root_note(), requested=False)


def account_landlock(policy: SandboxPolicy, host: HostCapabilities, uid: int, account: Account) -> None:
    why = host.bwrap_problem or "bubblewrap cannot run as this uid without user namespaces"
    account.ok("filesystem", f"Landlock ABI {host.landlock_abi}: reads and writes limited to the allowed trees")
    account.gap(
        "filesystem", f"no mount namespace ({why}): /tmp is the host's; unix sockets stay reachable", requested=True
    )
    scopes = host.landlock_abi >= 6
    account.measure(m.FS_LANDLOCK, m.PID_LANDLOCK, m.NO_NEW_PRIVS if uid == 0 else m.CAPS_DROPPED)
    account.ok(
        "processes",
        "Landlock: /proc shows only the backend's own pid, ptrace refused"
        + ("; signals to other processes refused" if scopes else ""),
    )
    account.gap(
        "processes",
        f"no pid namespace ({why}): other pids can still be probed, and the tree is tracked only by its cgroup",
        requested=True,
    )
    if policy.network is not False:  # the gap itself is the network's own account (system/network.py)
        if scopes:
            account.measure(m.NET_HOST_SCOPED)
    elif host.landlock_abi >= 4:
        account.ok("network", "Landlock: TCP bind and connect refused")
        account.measure(m.NET_TCP_DENIED)
        account.gap("network", f"no network namespace ({why}): UDP and unix sockets still work", requested=True)
    else:
        account.gap("network", f"no network namespace ({why}) and Landlock ABI < 4 cannot refuse TCP", requested=True)
    account.ok("privileges", "no_new_privs")
    if uid == 0:
        account.gap("privileges", _root_note(), requested=False)


def account_nothing(policy: SandboxPolicy, host: HostCapabilities, account: Account) -> None:
    why = f"{host.bwrap_problem}; Landlock is not available"
    account.gap("filesystem", why, requested=True)
    account.gap("processes", why, requested=True)
    if policy.network is False:
        account.gap("network", why, requested=True)
    account.gap("privileges", why, requested=False)
