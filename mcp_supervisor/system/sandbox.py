"""A sandbox per stdio backend: the plan that turns (command, args, policy, host) into the argv to exec, plus a
per-feature account of what is enforced and what is not (for `status`, `/health/backends`, the admin).

Design: docs/architecture.md, "The sandbox plan".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from mcp_supervisor.system.bwrap import bwrap_argv, command_pids
from mcp_supervisor.system.cgroups import BackendCgroup, CgroupLimits
from mcp_supervisor.system.enforcement import Account, account_bwrap, account_landlock, account_limits, account_nothing
from mcp_supervisor.system.exposure import UNPRIVILEGED
from mcp_supervisor.system.grants import backend_grants, hidden_neighbours, named_grants
from mcp_supervisor.system.launch import EXIT_LAUNCH_FAILED, Spec
from mcp_supervisor.system.network import NetworkSetup, account_unshared, decide_network
from mcp_supervisor.system.paths import minimal_cover, resolve_command
from mcp_supervisor.system.probe import BwrapSupport, HostCapabilities, probe_host
from mcp_supervisor.system.sandbox_policy import FEATURES, SandboxMode, SandboxPolicy, SandboxUnavailable

__all__ = [
    "FEATURES",
    "HostCapabilities",
    "SandboxMode",
    "SandboxPlan",
    "SandboxPolicy",
    "SandboxUnavailable",
    "backend_grants",
    "hidden_neighbours",
    "plan_sandbox",
    "probe_host",
]

Method = Literal["bwrap", "landlock", "limits-only", "none"]
# Device files a backend may use under Landlock (/dev itself would include raw disks, writable by root).
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


@dataclass(frozen=True)
class SandboxPlan:
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    method: Method
    enforced: dict[str, str]
    not_enforced: dict[str, str]
    cgroup: BackendCgroup | None = None  # create(limits) before spawning, remove() after the backend exits
    limits: CgroupLimits = field(default_factory=CgroupLimits)
    warnings: tuple[str, ...] = ()
    measures: tuple[str, ...] = ()  # what is in place, for the exposure score (exposure.py)
    # `argv` is `stage` (exec'd as the shell or Python launcher) followed by `program`. A process that can do the
    # stage's steps itself in the forked child (`launch.apply`) execs `program` directly; None: no stage.
    stage: Spec | None = None
    program: list[str] = field(default_factory=list)
    network: NetworkSetup | None = None  # a namespace of its own that the worker wires up (system/netns.py)

    def prepare(self) -> None:
        """Create the backend's cgroup (if the plan uses one); call right before spawning `argv`."""
        if self.cgroup is not None:
            self.cgroup.create(self.limits)

    def stop_targets(self, pid: int) -> list[int]:
        """Whom to send SIGTERM for a graceful stop of the process spawned from `argv` (pid). Under bubblewrap that
        is the backend inside (bwrap forwards no signal; SIGTERM to bwrap itself kills the tree at once)."""
        return command_pids(pid) if self.method == "bwrap" else [pid]

    def cleanup(self) -> None:
        """Kill whatever is left in the backend's cgroup and remove it; call after the backend exited."""
        if self.cgroup is not None:
            self.cgroup.remove()


def _passthrough(command: str, args: list[str], cwd: str | None, env: dict[str, str], reason: str) -> SandboxPlan:
    return SandboxPlan(
        argv=[command, *args],
        program=[command, *args],
        env=dict(env),
        cwd=cwd,
        method="none",
        enforced={},
        not_enforced={feature: reason for feature in FEATURES},
    )


def plan_sandbox(
    command: str,
    args: list[str],
    cwd: str | None,
    env: dict[str, str],
    policy: SandboxPolicy,
    mode: SandboxMode,
    host: HostCapabilities,
    *,
    state_dir: str,
    hidden_paths: list[str],
    neighbours: Sequence[str] = (),
    mounts: Sequence[tuple[str, str]] = (),
    cgroup: BackendCgroup | None = None,
    run_as: tuple[int, int] | None = None,
    name: str = "backend",
) -> SandboxPlan:
    """How to start one backend. No side effects (it only looks paths up); raises SandboxUnavailable in
    `required` mode when a requested feature cannot be enforced, naming each one and why. The arguments:
    docs/architecture.md, "The sandbox plan"."""
    if mode == "off":
        return _passthrough(command, args, cwd, env, "not sandboxed: SANDBOX is off")
    if not policy.enabled:
        return _passthrough(command, args, cwd, env, f'not sandboxed: "sandbox": {{"enabled": false}} for {name}')
    if not os.path.isdir(state_dir):
        raise ValueError(f"The state directory {state_dir} of {name} does not exist; create it before planning.")
    layout = _layout(command, args, cwd, env, policy, host, state_dir, hidden_paths, neighbours)
    uid = run_as[0] if run_as is not None else host.euid
    bwrap = host.bwrap if host.bwrap is not None and (uid == 0 or host.bwrap.userns) else None
    method: Method = "bwrap" if bwrap else "landlock" if host.landlock_abi >= 1 else "limits-only"
    if mounts and bwrap is None:
        raise ValueError(f"The sandbox of {name} cannot show a directory elsewhere without bubblewrap.")
    account = Account()
    use_cgroup = cgroup if cgroup is not None and host.cgroup is not None else None
    limits = account_limits(policy, host, use_cgroup, account)
    outer = _outer_spec(use_cgroup, limits, run_as)
    network: NetworkSetup | None = None
    program = [layout.program, *args]
    if bwrap is not None:
        program, network = _bwrap_stage(bwrap, policy, host, uid, layout, mounts, outer, account, program)
    else:
        _without_bwrap(method, policy, host, uid, layout, outer, account)
    _account_privileges(uid, run_as is not None, account)
    if mode == "required" and account.requested_gaps:
        raise SandboxUnavailable(f"The backend {name} was not started because {_gaps(account)}.")
    return SandboxPlan(
        argv=_outer_stage(host, outer, program),
        stage=outer,
        program=program,
        env=_plan_env(env, layout.state_dir, layout.workdir),
        cwd=layout.workdir,
        method=method,
        enforced=account.enforced,
        not_enforced=account.gaps,
        measures=tuple(account.measures),
        cgroup=use_cgroup,
        limits=limits,
        warnings=tuple(layout.warnings),
        network=network,
    )


@dataclass(frozen=True)
class _Layout:
    """The paths of one plan, looked up once: what the backend is granted, and what is masked from it."""

    state_dir: str
    workdir: str
    program: str
    read: list[str]  # as named (not reduced to a cover: see named_grants)
    write: list[str]
    readable_count: int  # for the account
    hidden: list[str]
    others: list[str]  # the neighbours' grants to hide (hidden_neighbours)
    warnings: list[str]  # paths named but missing


def _layout(
    command: str,
    args: list[str],
    cwd: str | None,
    env: dict[str, str],
    policy: SandboxPolicy,
    host: HostCapabilities,
    state_dir: str,
    hidden_paths: list[str],
    neighbours: Sequence[str],
) -> _Layout:
    warnings: list[str] = []
    state_dir = os.path.abspath(state_dir)
    workdir = os.path.abspath(cwd) if cwd else state_dir
    program = resolve_command(command, env.get("PATH"), workdir)
    named_read, named_write = named_grants(program, args, workdir, state_dir, env.get("PATH"), policy, warnings)
    # The backend's own state dir may sit inside a hidden tree (the directory of every backend's state): it is
    # mounted (bwrap) or granted (Landlock) after and apart from the hidden ones, so it stays usable.
    hidden = minimal_cover(
        [os.path.realpath(p) for p in hidden_paths if os.path.lexists(p)]
        + [os.path.realpath(p) for p in host.secret_files]
    )
    others = hidden_neighbours(neighbours, host, [*named_read, *named_write, workdir, state_dir])
    return _Layout(
        state_dir, workdir, program, named_read, named_write, len(minimal_cover(named_read)), hidden, others, warnings
    )


def _gaps(account: Account) -> str:
    missing = "; ".join(f"{f} ({account.gaps[f]})" for f in account.requested_gaps)
    return f"SANDBOX=required and this host cannot enforce: {missing}"


def _outer_spec(cgroup: BackendCgroup | None, limits: CgroupLimits, run_as: tuple[int, int] | None) -> Spec:
    """The outer stage's steps every method shares: no core dumps, the cgroup, the uid."""
    outer = Spec()
    outer.rlimits.append(("RLIMIT_CORE", 0, 0))
    outer.run_as = run_as
    if cgroup is not None:
        outer.cgroup_procs = list(cgroup.procs_files(limits))
    return outer


def _account_privileges(uid: int, dropped: bool, account: Account) -> None:
    if dropped:
        account.ok("privileges", f"runs as uid {uid}")
    if uid != 0:
        account.measure(UNPRIVILEGED)


def _without_bwrap(
    method: Method,
    policy: SandboxPolicy,
    host: HostCapabilities,
    uid: int,
    layout: _Layout,
    outer: Spec,
    account: Account,
) -> None:
    """Landlock in the outer stage where the kernel has it, else only the limits; no namespace in either case."""
    if method == "landlock":
        _landlock_spec(outer, policy, host, layout.read, layout.write, layout.hidden, layout.state_dir)
        outer.neighbours = layout.others
        account_landlock(policy, host, uid, account)
    else:
        account_nothing(policy, host, account)
    account_unshared(policy, host.bwrap_problem, account)


def _plan_env(env: dict[str, str], state_dir: str, workdir: str) -> dict[str, str]:
    plan_env = {**env, "HOME": state_dir}
    if "PWD" in plan_env:
        plan_env["PWD"] = workdir
    if "TMPDIR" in plan_env:
        plan_env["TMPDIR"] = "/tmp"  # the inherited one may name a directory the sandbox does not show
    return plan_env


def _bwrap_stage(
    bwrap: BwrapSupport,
    policy: SandboxPolicy,
    host: HostCapabilities,
    uid: int,
    layout: _Layout,
    mounts: Sequence[tuple[str, str]],
    outer: Spec,
    account: Account,
    program: list[str],
) -> tuple[list[str], NetworkSetup | None]:
    """bwrap's argv around `program`, and the network namespace the worker wires, if any; fills `outer`'s
    Landlock part (what mounts cannot do) and the account."""
    decision = decide_network(policy, bwrap.userns, (host.slirp4netns, host.slirp_problem), host.landlock_abi, account)
    scoped = decision.mode == "host" and host.landlock_abi >= 6
    if scoped or decision.connect_ports:
        # Applied by the outer stage, before bwrap: a domain that does not handle the filesystem leaves mounts
        # alone (Landlock restricts them only for domains that handle it), and bwrap and the backend inherit it.
        outer.landlock_abi, outer.filesystem, outer.scope = host.landlock_abi, False, scoped
        outer.connect_ports = list(decision.connect_ports)
    network = None
    if decision.setup is not None:
        network = msgspec.structs.replace(decision.setup, cgroup_procs=tuple(outer.cgroup_procs))
    sandboxed = bwrap_argv(
        bwrap,
        root=uid == 0,
        network=decision.mode == "host",
        private_network=decision.mode == "private",
        system_trees=host.system_trees,
        system_links=host.system_links,
        extra_read=host.extra_read,
        readable=layout.read,
        writable=layout.write,
        hidden=layout.hidden,
        neighbours=layout.others,
        mounts=mounts,
        state_dir=layout.state_dir,
        cwd=layout.workdir,
        program=program,
    )
    account_bwrap(policy, host, uid, layout.readable_count, len(layout.hidden) + len(layout.others), account)
    return sandboxed, network


def _launcher(host: HostCapabilities, spec: Spec, program: list[str]) -> list[str]:
    return [host.python, "-I", "-S", host.launcher, *spec.to_args(), "--", *program]


# The outer stage's usual job (join the cgroup, no core dumps) in sh: ~1 ms where the Python launcher takes ~7
# (a bare interpreter start). `echo` is a builtin, so the shell writes itself into cgroup.procs, then execs.
SHELL_STAGE = (
    'while [ "$1" != -- ]; do { echo 0 > "$1"; } 2>/dev/null || '
    f'{{ echo "mcp-supervisor sandbox launcher: could not join the cgroup of $1." >&2; exit {EXIT_LAUNCH_FAILED}; }}; '
    f'shift; done; shift; ulimit -c 0 || exit {EXIT_LAUNCH_FAILED}; exec "$@"'
)
SHELL_STAGE_NAME = "mcp-sandbox-join"


def _outer_stage(host: HostCapabilities, spec: Spec, program: list[str]) -> list[str]:
    simple = spec.run_as is None and not spec.landlock_abi and spec.rlimits == [("RLIMIT_CORE", 0, 0)]
    if simple and host.shell:
        return [host.shell, "-c", SHELL_STAGE, SHELL_STAGE_NAME, *spec.cgroup_procs, "--", *program]
    return _launcher(host, spec, program)


def _landlock_spec(
    spec: Spec,
    policy: SandboxPolicy,
    host: HostCapabilities,
    readable: list[str],
    writable: list[str],
    hidden: list[str],
    state_dir: str,
) -> None:
    read = [*host.system_trees, *host.extra_read, *readable, *_DEVICES]
    write = ["/tmp", *writable, "/dev/null", "/dev/zero", "/dev/full", "/dev/tty"]
    spec.landlock_abi = host.landlock_abi
    spec.read = [p for p in read if os.path.exists(p)]
    spec.write = [p for p in write if os.path.exists(p)]
    spec.own = [state_dir]  # granted apart from the hidden paths, which may contain it
    spec.hidden = hidden
    spec.own_proc = True  # the launcher grants its own /proc/<pid> and the non-pid entries of /proc
    spec.deny_tcp = policy.network is False
    spec.scope = True
