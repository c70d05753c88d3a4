"""The sandbox launcher: the few steps that must happen in the backend's own process, just before its exec.

Design: docs/architecture.md, "The sandbox launcher".
"""

from __future__ import annotations

import os
import resource
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

EXIT_LAUNCH_FAILED = 126
_PREFIX = "mcp-supervisor sandbox launcher"
_LIST_OPTIONS = {
    "--cgroup": "cgroup_procs",
    "--read": "read",
    "--write": "write",
    "--own": "own",
    "--hide": "hidden",
    "--neighbour": "neighbours",
}
_FLAGS = {"--no-fs": ("filesystem", False), "--scope": ("scope", True), "--deny-tcp": ("deny_tcp", True)}


class Spec:
    """What the launcher does before exec. Built by the planner, carried as options (`to_args`, `parse`)."""

    def __init__(self) -> None:
        self.cgroup_procs: list[str] = []  # cgroup.procs files to join (one per hierarchy)
        self.rlimits: list[tuple[str, int, int]] = []  # (RLIMIT_NAME, soft, hard)
        self.run_as: tuple[int, int] | None = None
        self.landlock_abi = 0  # 0: no Landlock
        self.filesystem = True  # Landlock handles the filesystem (False under bubblewrap: the mounts decide)
        self.scope = False  # ABI 6+: no abstract unix sockets or signals out of the domain
        self.deny_tcp = False  # ABI 4+: no TCP bind or connect
        self.connect_ports: list[int] = []  # ABI 4+: TCP connect only to these ports (sandbox.network's allow)
        self.read: list[str] = []
        self.write: list[str] = []
        self.own: list[str] = []  # writable, and never subtracted by `hidden` (the backend's state dir)
        self.hidden: list[str] = []  # subtracted from read and write
        self.neighbours: list[str] = []  # other backends' paths: subtracted too, but read/write paths inside stay
        self.own_proc = False  # grant our own /proc/<pid> and /proc's non-pid entries

    def to_args(self) -> list[str]:
        args: list[str] = []
        for path in self.cgroup_procs:
            args += ["--cgroup", path]
        for name, soft, hard in self.rlimits:
            args += ["--rlimit", f"{name}={soft}:{hard}"]
        if self.run_as is not None:
            args += ["--run-as", f"{self.run_as[0]}:{self.run_as[1]}"]
        if self.landlock_abi:
            args += ["--landlock", str(self.landlock_abi)]
            for option, (attribute, value) in _FLAGS.items():
                if getattr(self, attribute) == value:
                    args.append(option)
            for option, attribute in _LIST_OPTIONS.items():
                if option != "--cgroup":
                    for path in getattr(self, attribute):
                        args += [option, path]
            if self.own_proc:
                args.append("--own-proc")
            for port in self.connect_ports:
                args += ["--connect-port", str(port)]
        return args


def parse(argv: list[str]) -> tuple[Spec, list[str]]:
    """(spec, program argv) from the launcher's arguments (without argv[0]); ValueError when malformed."""
    spec = Spec()
    i = 0
    while i < len(argv) and argv[i] != "--":
        option = argv[i]
        if option in _FLAGS:
            setattr(spec, _FLAGS[option][0], _FLAGS[option][1])
        elif option == "--own-proc":
            spec.own_proc = True
        elif i + 1 >= len(argv):
            raise ValueError(f"{option} needs a value")
        elif option in _LIST_OPTIONS:
            getattr(spec, _LIST_OPTIONS[option]).append(argv[i + 1])
            i += 1
        elif option == "--rlimit":
            name, _, limits = argv[i + 1].partition("=")
            soft, _, hard = limits.partition(":")
            spec.rlimits.append((name, int(soft), int(hard or soft)))
            i += 1
        elif option == "--run-as":
            uid, _, gid = argv[i + 1].partition(":")
            spec.run_as = (int(uid), int(gid or uid))
            i += 1
        elif option == "--connect-port":
            spec.connect_ports.append(int(argv[i + 1]))
            i += 1
        elif option == "--landlock":
            spec.landlock_abi = int(argv[i + 1])
            i += 1
        else:
            raise ValueError(f"unknown option {option}")
        i += 1
    if i >= len(argv) - 1:
        raise ValueError("no program after --")
    return spec, argv[i + 1 :]


class LaunchFailed(Exception):
    """A step of the launch could not be done: the program must not be executed."""


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"{_PREFIX}: {message}\n")
    sys.stderr.flush()
    os._exit(EXIT_LAUNCH_FAILED)


def _own_proc() -> list[str]:
    """/proc as the backend may see it under Landlock alone: its own /proc/<pid> (exec keeps our pid) and the
    system-wide files, not /proc itself (no listing) nor any other pid's directory (Landlock's ptrace rule does
    not cover environ or maps on every kernel: 6.18 lets a domain read them)."""
    try:
        names = os.listdir("/proc")
    except OSError:  # contextlib would cost an import here
        names = []
    return [f"/proc/{os.getpid()}", *(f"/proc/{name}" for name in names if not name.isdigit())]


_landlock: Any = None  # the module, once imported


def _landlock_module() -> Any:
    global _landlock
    if _landlock is None:
        try:
            from mcp_supervisor.system import landlock
        except ImportError:  # run as a file with -I -S: the package is not on sys.path, its sibling file is
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import landlock  # type: ignore[no-redef,import-not-found]
        _landlock = landlock
    return _landlock


def preload(spec: Spec) -> None:
    """Import what `apply` will need, while we can: after a uid drop our own package may be unreadable (a
    checkout or venv in a 0700 directory), and an import in a forked child is best avoided anyway."""
    if spec.landlock_abi:
        _landlock_module()


def _apply_landlock(spec: Spec) -> None:
    landlock = _landlock_module()  # imported already (`preload`): this only looks it up
    read = [*spec.read, *(_own_proc() if spec.own_proc else [])]
    readable, writable = landlock.rules(read, spec.write, spec.own, spec.hidden, spec.neighbours)
    try:
        landlock.restrict_self(
            spec.landlock_abi,
            readable,
            writable,
            filesystem=spec.filesystem,
            deny_tcp=spec.deny_tcp,
            connect_ports=spec.connect_ports,
            scope=spec.scope,
        )
    except OSError as exc:
        raise LaunchFailed(f"could not apply Landlock: {exc}.") from None


def apply(spec: Spec) -> None:
    """Every step before the exec, in this process; LaunchFailed names the step that failed."""
    # Order matters: imports first, join the cgroup while we still may (before a uid drop), limits before
    # anything can fork, Landlock last because it would also forbid the earlier steps (writing cgroup.procs).
    preload(spec)
    for path in spec.cgroup_procs:
        try:
            with open(path, "w") as handle:
                handle.write("0")
        except OSError as exc:
            raise LaunchFailed(f"could not join the cgroup {os.path.dirname(path)}: {exc.strerror}.") from None
    for name, soft, hard in spec.rlimits:
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (AttributeError, OSError, ValueError) as exc:
            raise LaunchFailed(f"could not set {name} to {soft}:{hard}: {exc}.") from None
    if spec.run_as is not None:
        try:
            os.setgroups([])
            os.setgid(spec.run_as[1])
            os.setuid(spec.run_as[0])
        except OSError as exc:
            uid, gid = spec.run_as
            raise LaunchFailed(f"could not switch to uid {uid} gid {gid}: {exc.strerror}.") from None
    if spec.landlock_abi:
        _apply_landlock(spec)


def main(argv: list[str]) -> NoReturn:
    try:
        spec, target = parse(argv[1:])
    except ValueError as exc:
        _fail(f"{exc} (usage: launch.py [OPTION]... -- PROGRAM [ARG]...).")
    try:
        apply(spec)
    except LaunchFailed as exc:
        _fail(str(exc))
    try:
        if os.path.isabs(target[0]):
            os.execv(target[0], target)
        os.execvp(target[0], target)
    except OSError as exc:
        _fail(f"could not execute {target[0]}: {exc.strerror}.")


if __name__ == "__main__":
    main(sys.argv)
