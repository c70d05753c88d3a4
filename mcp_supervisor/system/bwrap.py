"""The bubblewrap command line for one backend (pure: lists in, argv out; only `isdir` lookups for hidden paths).

Design: docs/architecture.md, "The bubblewrap command line".
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from mcp_supervisor.system.network import BLOCK_FD, INFO_FD, RESOLV_FD
from mcp_supervisor.system.paths import is_within
from mcp_supervisor.system.probe import BwrapSupport
from mcp_supervisor.system.process_tree import children_of


def bwrap_argv(
    bwrap: BwrapSupport,
    *,
    root: bool,
    network: bool,
    system_trees: Sequence[str],
    system_links: Sequence[tuple[str, str]],
    extra_read: Sequence[str],
    readable: Sequence[str],
    writable: Sequence[str],
    hidden: Sequence[str],
    state_dir: str,
    neighbours: Sequence[str] = (),
    mounts: Sequence[tuple[str, str]] = (),
    cwd: str,
    program: Sequence[str],
    private_network: bool = False,
) -> list[str]:
    """`network`: share the host's; `private_network`: a namespace the worker wires up (system/netns.py)."""
    argv = [bwrap.path, *_namespaces(bwrap, root, network, private_network)]
    argv += _system(system_links, system_trees, extra_read, private_network)
    # (where it appears in the sandbox, where it really is): a granted path may be a symlink, and a hidden path
    # must be masked wherever its content shows up, under its own name or through such an alias.
    bound: list[tuple[str, str]] = [(p, os.path.realpath(p)) for p in (*system_trees, *extra_read)]
    # Where a directory is shown in place of the host's (`mounts`), nothing of the host's is bound.
    elsewhere = [dest for _, dest in mounts]
    readable = [p for p in readable if not any(is_within(p, dest) for dest in elsewhere)]
    writable = [p for p in writable if not any(is_within(p, dest) for dest in elsewhere)]
    argv += _grant_binds(readable, writable, mounts, bound)
    masks_of_others = _masks(neighbours, bound)
    argv += _neighbour_mounts(masks_of_others, readable, writable)
    for mask, path in _masks(hidden, bound).items():
        if os.path.isdir(path):
            # The state dir's mount point is made before the tmpfs turns read-only.
            own = ["--dir", state_dir] if is_within(state_dir, mask) else []
            argv += ["--tmpfs", mask, *own, "--remount-ro", mask]
        else:
            argv += ["--ro-bind", "/dev/null", mask]
    argv += ["--bind", state_dir, state_dir]
    for mask, path in masks_of_others.items():
        if os.path.isdir(path):
            argv += ["--remount-ro", mask]  # not recursive: the grants shown again inside keep their flags
    # bwrap's root is a tmpfs of its own: read-only once every mount point exists, so nothing but HOME, /tmp,
    # /dev/shm and writePaths takes writes (they are mounts of their own and keep their flags).
    argv += ["--remount-ro", "/", "--chdir", cwd, "--", *program]
    return argv


def _namespaces(bwrap: BwrapSupport, root: bool, network: bool, private_network: bool) -> list[str]:
    """Step 1: namespaces and process flags."""
    argv = ["--die-with-parent", "--new-session"]  # new session: no TIOCSTI into our terminal
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if bwrap.userns:
        # Nested user namespaces are the kernel's largest attack surface for an unprivileged process.
        argv += ["--unshare-user", "--disable-userns"]
    if not network:
        argv += ["--unshare-net"]  # a namespace with only a loopback: no route anywhere, until the worker adds one
    if private_network:
        # bwrap reports the namespace's pid on the info fd, then waits on the block fd until it is wired up.
        argv += ["--info-fd", INFO_FD, "--block-fd", BLOCK_FD]
    if root:
        argv += ["--cap-drop", "ALL"]
    return argv


def _system(
    system_links: Sequence[tuple[str, str]],
    system_trees: Sequence[str],
    extra_read: Sequence[str],
    private_network: bool,
) -> list[str]:
    """Step 2: the read-only system, /proc, /dev and a private /tmp."""
    argv: list[str] = []
    for link, target in system_links:
        argv += ["--symlink", target, link]
    for tree in system_trees:
        argv += ["--ro-bind", tree, tree]
    for path in extra_read:
        argv += ["--ro-bind-try", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    if private_network:
        argv += ["--ro-bind-data", RESOLV_FD, "/etc/resolv.conf"]  # slirp4netns' DNS, not the host's 127.0.0.53
    return argv


def _grant_binds(
    readable: Sequence[str],
    writable: Sequence[str],
    mounts: Sequence[tuple[str, str]],
    bound: list[tuple[str, str]],
) -> list[str]:
    """Step 3: granted paths read-only, then writable ones, then `mounts`; each recorded in `bound`."""
    argv: list[str] = []
    for path in readable:
        if not _inside_own_mounts(path) and not any(is_within(path, dest) for dest, _ in bound):
            argv += ["--ro-bind", path, path]
            bound.append((path, os.path.realpath(path)))
    for path in writable:
        if not _inside_own_mounts(path):
            argv += ["--bind", path, path]
            bound.append((path, os.path.realpath(path)))
    for source, dest in mounts:
        argv += ["--bind", source, dest]
        bound.append((dest, os.path.realpath(source)))
    return argv


def _masks(paths: Sequence[str], bound: Sequence[tuple[str, str]]) -> dict[str, str]:
    """sandbox path -> host path, for each place where a host path's content shows through a bound tree."""
    masks: dict[str, str] = {}
    for path in paths:
        for dest, real in bound:
            if is_within(path, real):
                masks.setdefault(os.path.normpath(os.path.join(dest, os.path.relpath(path, real))), path)
    return masks


def _neighbour_mounts(masks: dict[str, str], readable: Sequence[str], writable: Sequence[str]) -> list[str]:
    """Other backends' paths masked (a tmpfs, writable until the end so that mount points can be made in it), and
    this backend's own grants that lie inside one bound again on top, shallow paths first so that a neighbour's
    path inside an own grant inside a neighbour's path is masked again after its parent is shown."""
    steps: list[tuple[str, list[str]]] = []
    for mask, path in masks.items():
        steps.append((mask, ["--tmpfs", mask] if os.path.isdir(path) else ["--ro-bind", "/dev/null", mask]))
    for paths, flag in ((readable, "--ro-bind"), (writable, "--bind")):
        for path in paths:
            if any(is_within(path, mask) and path != mask for mask in masks) and not _inside_own_mounts(path):
                steps.append((path, [flag, path, path]))
    steps.sort(key=lambda step: step[0].rstrip("/").count("/"))
    return [word for _, words in steps for word in words]


def _inside_own_mounts(path: str) -> bool:
    """/proc and /dev are bwrap's own (device nodes would need --dev-bind); /tmp itself is the private tmpfs,
    though paths below it can be bound onto it."""
    return path == "/tmp" or is_within(path, "/proc") or is_within(path, "/dev")


def command_pids(bwrap_pid: int) -> list[int]:
    """Host pids of what the namespace's pid 1 (bwrap) runs: the backend command, for a graceful stop.

    bwrap forwards no signal: SIGTERM to the outer bwrap ends it, and with it the namespace, at once (every process
    in it gets SIGKILL). To let a backend clean up, signal these pids first, then the outer bwrap.
    """
    return [pid for init in children_of(bwrap_pid) for pid in children_of(init)]
