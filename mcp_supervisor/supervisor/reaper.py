"""Reaping every child, ours or adopted, and sweeping orphans of the process tree.

As a child subreaper the supervisor inherits the descendants whose parent died (a stdio backend whose worker
was SIGKILLed). They are reaped on SIGCHLD, and swept by `sweep_orphans`: any child of ours that we did not
spawn is such an orphan and is terminated.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterable

import psutil

from mcp_supervisor.system.process_tree import INSTANCE_ENV

log = logging.getLogger("mcp_supervisor.supervisor")


def reap_all(on_exit: Callable[[int, int], None]) -> None:
    """Collect every exited child; `on_exit(pid, exit_code)` for each."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        on_exit(pid, os.waitstatus_to_exitcode(status))


def orphans(managed_pids: Iterable[int]) -> list[psutil.Process]:
    """Adopted orphans and everything below them.

    Only *direct* children are candidates: a process we spawned, or one the kernel reparented to us because
    its parent died. A live worker's backend is the worker's child, not ours, whatever session it is in, so
    it is never mistaken for an orphan.
    """
    managed = set(managed_pids)
    result: list[psutil.Process] = []
    try:
        children = psutil.Process().children(recursive=False)
    except psutil.Error:
        return []
    for child in children:
        if child.pid in managed:
            continue
        with contextlib.suppress(psutil.Error):
            result.extend(child.children(recursive=True))
        result.append(child)
    return result


def kill_processes(processes: Iterable[psutil.Process], sig: signal.Signals = signal.SIGKILL) -> int:
    count = 0
    for process in processes:
        try:
            process.send_signal(sig)
            count += 1
        except psutil.Error:
            pass
    return count


def sweep_orphans(managed_pids: Iterable[int]) -> int:
    """Terminate adopted orphans now; anything left is killed by the next sweep."""
    found = orphans(managed_pids)
    if found:
        log.info("Sweeping %d orphaned process(es): %s", len(found), ", ".join(str(p.pid) for p in found))
    return kill_processes(found, signal.SIGKILL)


def leftovers_of(runtime_dir: str, own_instance: str) -> list[psutil.Process]:
    """Processes tagged by an earlier supervisor of the same runtime directory (one that was SIGKILLed)."""
    found = []
    prefix = f"{runtime_dir}:"
    me = os.getpid()
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            tag = process.environ().get(INSTANCE_ENV)
        except (psutil.Error, OSError):
            continue
        if tag and tag.startswith(prefix) and tag != own_instance:
            found.append(process)
    return found
