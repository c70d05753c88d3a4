"""Short-lived helper processes of the supervisor (package fetches, cache copies), run off its event loop.

They are children like the workers: the supervisor's SIGCHLD reaper collects their exit (`on_exit`), never
asyncio's child watcher, and orphan sweeps leave them alone (`pids`). Each leads its own process group, which a
timeout or a shutdown kills whole. Their output (stdout and stderr together) is kept, its last OUTPUT_BYTES.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence

from mcp_supervisor.supervisor.process import ChildProcess

OUTPUT_BYTES = 16 * 1024


class HelperProcesses:
    def __init__(self) -> None:
        self._running: dict[int, ChildProcess] = {}

    def pids(self) -> list[int]:
        return list(self._running)

    def on_exit(self, pid: int, code: int) -> bool:
        """The reaper's report; True when the pid was one of ours."""
        child = self._running.pop(pid, None)
        if child is None:
            return False
        child.mark_exited(code)
        return True

    async def run(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None, timeout_s: float
    ) -> tuple[int | None, str]:
        """(exit code, or None when it was killed at the timeout; the tail of its output). OSError when it
        cannot be started."""
        read_fd, write_fd = os.pipe()
        try:
            child = ChildProcess(argv, env, write_fd, cwd=cwd)
        except BaseException:
            os.close(read_fd)
            raise
        self._running[child.pid] = child
        output = bytearray()
        loop = asyncio.get_running_loop()
        os.set_blocking(read_fd, False)

        def readable() -> None:
            with contextlib.suppress(BlockingIOError):
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    loop.remove_reader(read_fd)
                output.extend(chunk)
                del output[:-OUTPUT_BYTES]

        loop.add_reader(read_fd, readable)
        try:
            code = await child.wait(timeout_s)
            child.signal_group(signal.SIGKILL)  # a timeout's tree, or what the helper left behind
            if code is None:
                await child.wait(5.0)
            readable()  # what is left in the pipe
        finally:
            loop.remove_reader(read_fd)
            os.close(read_fd)
            if child.alive:
                child.signal_group(signal.SIGKILL)
        return code, output.decode(errors="replace")

    def kill_all(self) -> None:
        for child in self._running.values():
            child.signal_group(signal.SIGKILL)
