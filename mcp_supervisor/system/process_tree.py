"""Linux process-tree primitives shared by every process of the tree: child subreaper, parent-death signal,
descendants, process titles.

They degrade to no-ops elsewhere, so the package imports on any POSIX system (the guarantees then weaken).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

log = logging.getLogger("mcp_supervisor.system")

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

# Set in every process of the tree (and inherited by backends) so a leftover can be recognized and swept.
INSTANCE_ENV = "MCP_SUPERVISOR_INSTANCE"
PARENT_PID_ENV = "MCP_SUPERVISOR_PARENT_PID"


_libc: ctypes.CDLL | None = None


def _prctl(option: int, value: int) -> bool:
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    # The symbols already loaded into this process (libc among them). Not ctypes.util.find_library("c"): on
    # Linux that runs `ldconfig -p` in a child process, ~2 ms of CPU and a fork per call, twice per worker.
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        log.warning("prctl(%d) failed: %s", option, os.strerror(ctypes.get_errno()))
        return False
    return True


def become_subreaper() -> bool:
    """Orphaned descendants (a backend whose worker died) are reparented to us, so we can reap and sweep them."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Ask the kernel to signal us when our parent dies, then close the race where it already has."""
    _prctl(_PR_SET_PDEATHSIG, int(sig))
    expected = os.environ.get(PARENT_PID_ENV)  # set by our spawner, not a setting: read before anything else
    if expected and os.getppid() != int(expected):
        os.kill(os.getpid(), sig)


def kill_rest_of_group() -> int:
    """SIGKILL every other member of our process group (a group leader's last act before it exits).

    A backend's children stay in the worker's group; when the worker exits on its own (its parent died, its
    backend failed), nobody else would reach them. Linux only: reads /proc.
    """
    me, group = os.getpid(), os.getpgrp()
    if group != me:
        return 0  # not a group leader: the group is not ours to end
    killed = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.getpgid(int(entry)) == group:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
        except (ProcessLookupError, PermissionError):
            continue
    return killed


def children_of(pid: int) -> list[int]:
    """Direct children, from /proc (every thread's list: a child belongs to the thread that forked it)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


def descendants_of(pid: int) -> list[int]:
    """Children, grandchildren, …, breadth first (a snapshot: a process forking meanwhile may be missed)."""
    result: list[int] = []
    frontier = [pid]
    while frontier and len(result) < 100_000:
        frontier = [child for parent in frontier for child in children_of(parent)]
        result.extend(frontier)
    return result


def reap_adopted(keep: set[int]) -> int:
    """Collect the exit status of exited children other than `keep` (orphans a subreaper adopted), without
    touching those in `keep`, whose statuses belong to someone else (asyncio's child watcher)."""
    try:
        # The usual case, nothing exited: one syscall that reaps nothing (WNOWAIT), not a walk through /proc.
        if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return 0
    except ChildProcessError:
        return 0
    reaped = 0
    for child in children_of(os.getpid()):
        if child in keep:
            continue
        try:
            done, _ = os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            continue
        reaped += done != 0
    return reaped


def pidfds_work() -> bool:
    """Whether pidfd_open(2) is usable here (Linux 5.3+, and not refused by a seccomp profile)."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def kill_descendants() -> int:
    """SIGKILL everything below this process (what its backend left, adopted or not): its own tree only."""
    killed = 0
    for pid in descendants_of(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            continue
    return killed


def set_title(title: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except Exception:  # a missing title never stops a process
        log.debug("could not set the process title", exc_info=True)
