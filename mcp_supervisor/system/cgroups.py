"""Per-backend cgroups: resource limits and a process tracker no backend can leave (not by `setsid`, not by
`env -i`, not by double-forking), on cgroup v2 (delegated) or v1 (memory, pids, cpu controllers).

Layout, under the cgroup the supervisor started in (so a unit's or a container's own limits still apply above):

    <base>/mcp-supervisor/<instance-id>/<backend-key>-<generation>

The instance id names its owner (`<label>.<pid>.<start time>`), so the next start can tell a dead instance's
survivors (`InstanceCgroup.stale`) from a live sibling instance, and sweep only the former.

A backend's processes enter its cgroup through the launcher (`launch.py`), which writes itself into cgroup.procs
before it execs anything; see there why not after spawn.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import signal
import time
from dataclasses import dataclass

CONTROLLERS = ("memory", "pids", "cpu")
ROOT_NAME = "mcp-supervisor"
# cgroup v2 allows controllers to be handed to children only by a cgroup without processes of its own: the
# supervisor therefore moves itself (and its cgroup's other members) into this leaf first.
LEAF_NAME = "supervisor"
CPU_PERIOD_US = 100_000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class CgroupHost:
    """Where this process may create cgroups. v2: one base; v1: one base per mounted hierarchy we use."""

    version: int
    bases: tuple[tuple[str, frozenset[str]], ...]  # (directory, controllers available there)

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset().union(*(c for _, c in self.bases))


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int | None = None
    pids: int | None = None
    cpus: float | None = None


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _mounts() -> list[tuple[str, str, str, str]]:
    """(fstype, mount point, mount root, super options) of every cgroup mount, from /proc/self/mountinfo."""
    found = []
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
            found.append((rest[0], fields[4], fields[3], rest[2]))
    return found


def _own_paths() -> dict[str, str]:
    """Our cgroup path per hierarchy: key "" for v2, else the v1 controller list ("memory", "cpu,cpuacct")."""
    paths = {}
    for line in _read("/proc/self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path
    return paths


def _join(mount_point: str, mount_root: str, path: str) -> str:
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root + "/")):
        path = path[len(mount_root) :]
    # A process already inside our tree (a worker, or a supervisor that moved into its instance) has the same
    # base as the supervisor had before: where the tree starts.
    path, _, _ = (path.rstrip("/") + "/").partition(f"/{ROOT_NAME}/")
    return os.path.normpath(mount_point + "/" + path.lstrip("/"))


def _v2_problem(base: str) -> str:
    if not os.access(base, os.W_OK) or not os.access(os.path.join(base, "cgroup.procs"), os.W_OK):
        return f"the cgroup v2 directory {base} is not writable by this user (not delegated)"
    path = base.removeprefix("/sys/fs/cgroup")
    if path.startswith(("/system.slice/", "/user.slice/", "/init.scope")):
        # systemd owns these; writing below a unit is allowed only when the unit asked for it (Delegate=yes).
        # systemd >= 251 marks a delegated cgroup with an xattr; older ones only chown it to a non-root User=.
        delegated = os.geteuid() != 0 and os.stat(base).st_uid == os.geteuid()
        for attr in ("trusted.delegate", "user.delegate"):
            with contextlib.suppress(OSError):
                delegated = delegated or os.getxattr(base, attr) == b"1"
        if not delegated:
            return f"the cgroup v2 directory {base} belongs to systemd and is not delegated (set Delegate=yes)"
    return ""


def probe_cgroups() -> tuple[CgroupHost | None, str]:
    """What this process may use: a delegated v2 subtree with memory or pids, else writable v1 hierarchies.

    Cheap (two small /proc reads and a few access checks); returns (None, reason) when neither is usable.
    """
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError as exc:
        return None, f"cgroups could not be inspected: {exc.strerror}"
    problems = []
    for fstype, point, root, _ in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        base = _join(point, root, own[""])
        if os.path.basename(base) == LEAF_NAME and os.path.isdir(os.path.join(os.path.dirname(base), ROOT_NAME)):
            base = os.path.dirname(base)  # the supervisor already moved into its leaf: the base is one up
        try:
            available = frozenset(_read(os.path.join(base, "cgroup.controllers")).split()) & set(CONTROLLERS)
        except OSError:
            continue
        problem = _v2_problem(base) or ("" if available & {"memory", "pids"} else f"{base} offers no memory/pids")
        if not problem:
            return CgroupHost(2, ((base, available),)), ""
        problems.append(problem)
    bases = []
    for fstype, point, root, options in mounts:
        names = frozenset(options.split(",")) & set(CONTROLLERS)
        if fstype != "cgroup" or not names:
            continue
        key = next((k for k in own if k and names <= set(k.split(","))), None)
        base = _join(point, root, own[key]) if key is not None else point
        if os.access(base, os.W_OK) and os.access(os.path.join(base, "cgroup.procs"), os.W_OK):
            bases.append((base, names))
    if any(c & {"memory", "pids"} for _, c in bases):
        return CgroupHost(1, tuple(bases)), ""
    problems.append("no writable cgroup v1 memory or pids hierarchy")
    return None, "; ".join(problems)


def _procs(directory: str) -> set[int]:
    try:
        return {int(p) for p in _read(os.path.join(directory, "cgroup.procs")).split()}
    except OSError:
        return set()


def _walk_bottom_up(directory: str) -> list[str]:
    out: list[str] = []
    for root, dirs, _ in os.walk(directory, topdown=False):
        out.extend(os.path.join(root, d) for d in dirs)
    out.append(directory)
    return out


def _kill_tree(directories: list[str], timeout: float) -> int:
    """SIGKILL every process in these cgroups and their descendants until all are empty (or the time is up).

    Returns how many distinct processes were seen. v2 (Linux 5.14+) has cgroup.kill, which the kernel applies
    atomically to the whole subtree, forks in flight included; v1 gets a loop of kills, where a fork racing one
    pass is caught by the next (a pids limit bounds how long that can go on).
    """
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        tree = [d for top in directories if os.path.isdir(top) for d in _walk_bottom_up(top)]
        alive = set().union(*(_procs(d) for d in tree))
        if not alive or time.monotonic() >= deadline:
            return len(seen | alive)
        seen |= alive
        kill_files = [os.path.join(top, "cgroup.kill") for top in directories]
        if all(os.path.exists(f) for f in kill_files):
            for kill_file in kill_files:
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
        else:
            for pid in alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def _rmdir_tree(directories: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for top in directories:
        for directory in _walk_bottom_up(top) if os.path.isdir(top) else []:
            while True:
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # EBUSY lingers for a moment after the last process died (its exit is still being accounted).
                    if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.01)


def _start_time(pid: int) -> str | None:
    try:
        stat = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22, counted after the command name


class BackendCgroup:
    """One backend generation's cgroup: one directory (v2) or one per hierarchy (v1)."""

    def __init__(self, host: CgroupHost, parent_dirs: tuple[str, ...], name: str) -> None:
        self.host = host
        self.name = name
        self.dirs = tuple(os.path.join(parent, name) for parent in parent_dirs)

    def procs_files(self, limits: CgroupLimits | None = None) -> tuple[str, ...]:
        """The files the launcher writes itself into: every hierarchy, or (given `limits`, on v1) the one that
        tracks (pids, else the first) plus those that enforce a limit. Joining a fresh v1 memory cgroup costs a
        start ~10 ms here, worth paying only for a memory limit."""
        files = [os.path.join(d, "cgroup.procs") for d in self.dirs]
        if limits is None or self.host.version == 2:
            return tuple(files)
        wanted = {"memory"} if limits.memory_bytes is not None else set()
        wanted |= {"pids"} if limits.pids is not None else set()
        wanted |= {"cpu"} if limits.cpus is not None else set()
        names = [controllers for _, controllers in self.host.bases]
        tracker = next((i for i, c in enumerate(names) if "pids" in c), 0)
        return tuple(f for i, f in enumerate(files) if i == tracker or names[i] & wanted)

    def create(self, limits: CgroupLimits) -> None:
        """Make the directories and write the limits the host supports; OSError when the host refuses."""
        for directory, (_, controllers) in zip(self.dirs, self.host.bases, strict=True):
            os.makedirs(directory, exist_ok=True)
            if self.host.version == 2:
                self._limit_v2(directory, controllers, limits)
            else:
                self._limit_v1(directory, controllers, limits)

    @staticmethod
    def _limit_v2(directory: str, controllers: frozenset[str], limits: CgroupLimits) -> None:
        if limits.memory_bytes is not None and "memory" in controllers:
            _write(os.path.join(directory, "memory.max"), str(limits.memory_bytes))
            # Swap would let the backend exceed its memory quietly; oom.group kills the whole tree at once.
            for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                if os.path.exists(os.path.join(directory, name)):
                    _write(os.path.join(directory, name), value)
        if limits.pids is not None and "pids" in controllers:
            _write(os.path.join(directory, "pids.max"), str(limits.pids))
        if limits.cpus is not None and "cpu" in controllers:
            _write(
                os.path.join(directory, "cpu.max"), f"{max(1000, round(limits.cpus * CPU_PERIOD_US))} {CPU_PERIOD_US}"
            )

    @staticmethod
    def _limit_v1(directory: str, controllers: frozenset[str], limits: CgroupLimits) -> None:
        if limits.memory_bytes is not None and "memory" in controllers:
            _write(os.path.join(directory, "memory.limit_in_bytes"), str(limits.memory_bytes))
            memsw = os.path.join(directory, "memory.memsw.limit_in_bytes")
            if os.path.exists(memsw):  # swap accounting on: cap memory+swap too (must follow limit_in_bytes)
                _write(memsw, str(limits.memory_bytes))
        if limits.pids is not None and "pids" in controllers:
            _write(os.path.join(directory, "pids.max"), str(limits.pids))
        if limits.cpus is not None and "cpu" in controllers:
            _write(os.path.join(directory, "cpu.cfs_period_us"), str(CPU_PERIOD_US))
            _write(os.path.join(directory, "cpu.cfs_quota_us"), str(max(1000, round(limits.cpus * CPU_PERIOD_US))))

    def add_pid(self, pid: int) -> None:
        """Move a running process in (racy for a process that is already forking: prefer the launcher)."""
        for path in self.procs_files():
            _write(path, str(pid))

    def pids(self) -> set[int]:
        return set().union(*(_procs(d) for d in self.dirs))

    def kill_all(self, timeout: float = 5.0) -> int:
        """SIGKILL every process in the cgroup, however it was started; returns how many were seen."""
        return _kill_tree(list(self.dirs), timeout)

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left, then remove the directories."""
        self.kill_all(timeout)
        _rmdir_tree(list(self.dirs), timeout)


class InstanceCgroup:
    """The parent of every backend cgroup of one supervisor instance."""

    def __init__(self, host: CgroupHost, instance_id: str) -> None:
        self.host = host
        self.instance_id = instance_id
        self.dirs = tuple(os.path.join(base, ROOT_NAME, instance_id) for base, _ in host.bases)

    @classmethod
    def current(cls, host: CgroupHost, label: str = "mcp") -> InstanceCgroup:
        """This process's instance: the id names our pid and start time, which a later start can check."""
        return cls(host, f"{safe_name(label)}.{os.getpid()}.{_start_time(os.getpid())}")

    @classmethod
    def stale(cls, host: CgroupHost, label: str | None = None) -> list[InstanceCgroup]:
        """Instances whose owner is gone (kill -9, crash): their survivors are fair game for `sweep`."""
        found: dict[str, InstanceCgroup] = {}
        for base, _ in host.bases:
            try:
                names = os.listdir(os.path.join(base, ROOT_NAME))
            except OSError:
                continue
            for name in names:
                parts = name.rsplit(".", 2)
                if len(parts) != 3 or not parts[1].isdigit() or (label is not None and parts[0] != safe_name(label)):
                    continue
                if _start_time(int(parts[1])) != parts[2] and os.path.isdir(os.path.join(base, ROOT_NAME, name)):
                    found[name] = cls(host, name)
        return list(found.values())

    def create(self) -> None:
        """Make the instance directory. Call once, in the supervisor, before any worker spawns a backend: on v2
        this moves the supervisor's cgroup members into a leaf so that the base can hand controllers down."""
        for directory, (base, controllers) in zip(self.dirs, self.host.bases, strict=True):
            if self.host.version == 2:
                _prepare_v2(base, controllers)
                for level in (os.path.join(base, ROOT_NAME), directory):
                    os.makedirs(level, exist_ok=True)
                    _enable_controllers(level, controllers)
            else:
                os.makedirs(directory, exist_ok=True)

    def backend(self, key: str, generation: int) -> BackendCgroup:
        return BackendCgroup(self.host, self.dirs, f"{safe_name(key)}-{generation}")

    def sweep(self, timeout: float = 5.0) -> int:
        """Kill every process of this instance, whichever backend it came from, and remove its directories."""
        killed = _kill_tree(list(self.dirs), timeout)
        _rmdir_tree(list(self.dirs), timeout)
        return killed


def sweep_instance(instance: InstanceCgroup, timeout: float = 5.0) -> int:
    """Kill the survivors of an instance (typically one from `InstanceCgroup.stale` after a kill -9)."""
    return instance.sweep(timeout)


def safe_name(text: str) -> str:
    """A cgroup directory name for a server key: unsafe characters replaced, and a hash added when any was."""
    cleaned = _SAFE_NAME.sub("_", text)[:64] or "_"
    if cleaned != text:  # keep two keys that differ only in unsafe characters apart
        cleaned += "~" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return cleaned


def _enable_controllers(directory: str, controllers: frozenset[str]) -> None:
    enabled = set(_read(os.path.join(directory, "cgroup.subtree_control")).split())
    missing = [c for c in CONTROLLERS if c in controllers and c not in enabled]
    if missing:
        _write(os.path.join(directory, "cgroup.subtree_control"), " ".join(f"+{c}" for c in missing))


def _prepare_v2(base: str, controllers: frozenset[str]) -> None:
    enabled = set(_read(os.path.join(base, "cgroup.subtree_control")).split())
    if all(c in enabled for c in controllers):
        return
    leaf = os.path.join(base, LEAF_NAME)
    os.makedirs(leaf, exist_ok=True)
    for pid in _procs(base):
        with contextlib.suppress(ProcessLookupError):
            _write(os.path.join(leaf, "cgroup.procs"), str(pid))
    _enable_controllers(base, controllers)
