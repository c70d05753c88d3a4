"""Small helpers of the worker's start-up: how it waits for children, racing work against the backend connection."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from mcp_supervisor.system.process_tree import pidfds_work
from mcp_supervisor.worker.relay import BackendClosed

T = TypeVar("T")


async def race(pump: asyncio.Task[None], work: Coroutine[Any, Any, T]) -> T:
    """Await `work`, but fail at once if the backend connection ends first (a backend dying mid-handshake)."""
    task = asyncio.ensure_future(work)
    await asyncio.wait({task, pump}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    pump.result()  # raises why the backend connection ended
    raise BackendClosed("The backend closed the connection during start-up.")


def watch_children_with_pidfds() -> None:
    """Python 3.11's default child watcher starts a thread per child process (blocked in waitpid): here a pidfd
    in the event loop instead, as 3.12 does by default. A thread costs a worker its stack and malloc arena.
    Only asyncio's own loop has child watchers: uvloop's (libuv) reaps its children itself, on SIGCHLD."""
    loop = asyncio.get_running_loop()
    if sys.version_info < (3, 12) and isinstance(loop, asyncio.SelectorEventLoop) and pidfds_work():
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)
