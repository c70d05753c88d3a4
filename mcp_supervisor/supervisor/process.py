"""Spawning and stopping one child process (gateway or worker) in its own session.

Each child leads its own process group, so a stop reaches the whole group: SIGTERM, a grace period, SIGKILL.
Exit statuses are collected by the supervisor's SIGCHLD reaper (`reaper.py`), never by Popen, because as a
child subreaper the supervisor must also reap orphans it never spawned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

log = logging.getLogger("mcp_supervisor.supervisor")


def describe_exit(code: int) -> str:
    """`waitstatus_to_exitcode` semantics: negative means killed by a signal."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class ChildProcess:
    popen: subprocess.Popen[bytes] | None
    method: str

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        output_fd: int | None = None,
        pass_fds: Sequence[int] = (),
        cwd: str | None = None,
    ) -> None:
        """`output_fd`: the write end of a capture pipe for the child's stdout and stderr (closed here)."""
        try:
            self.popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=output_fd,
                stderr=output_fd,
                start_new_session=True,  # own session and process group: a SIGKILL reaches the whole group
                close_fds=True,
                pass_fds=tuple(pass_fds),
            )
        finally:
            if output_fd is not None:
                os.close(output_fd)
        self._started(self.popen.pid)
        self.method = "spawn"

    @classmethod
    def adopted(cls, pid: int) -> ChildProcess:
        """A child that is ours without Popen: a worker the zygote forked (double fork), which the kernel
        reparented to us as the subreaper. It leads its own session; the reaper collects its exit like any."""
        child = cls.__new__(cls)
        child.popen = None
        child._started(pid)
        child.method = "fork"
        return child

    def _started(self, pid: int) -> None:
        self.pid = pid
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        self.exit_code: int | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def alive(self) -> bool:
        return self.exit_code is None

    def mark_exited(self, code: int) -> None:
        """Called by the reaper with the status it collected."""
        self.exit_code = code
        if self.popen is not None:
            self.popen.returncode = code
        if not self._exited.done():
            self._exited.set_result(code)

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def wait(self, timeout: float | None = None) -> int | None:
        try:
            return await asyncio.wait_for(asyncio.shield(self._exited), timeout)
        except TimeoutError:
            return None

    def signal_leader(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, sig)

    async def stop(self, grace_s: float) -> int | None:
        """SIGTERM to the leader, wait `grace_s`, then SIGKILL the whole group. Returns the exit code.

        SIGTERM goes to the worker alone, not its group: the worker drains its in-flight requests and then
        stops its own backend (close stdin, SIGTERM, SIGKILL). Signalling the group would kill the backend
        under requests that were about to finish. The SIGKILL after the grace period takes the whole group.
        """
        if not self.alive:
            return self.exit_code
        self.signal_leader(signal.SIGTERM)
        code = await self.wait(grace_s)
        if code is None:
            log.warning("pid %d ignored SIGTERM for %.1f s; killing its process group.", self.pid, grace_s)
            self.signal_group(signal.SIGKILL)
            code = await self.wait(5.0)
        # Members of the group that outlived its leader (a backend ignoring SIGTERM) go too.
        self.signal_group(signal.SIGKILL)
        return code
