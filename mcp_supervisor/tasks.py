"""Fire-and-forget work that must not be garbage-collected mid-flight.

asyncio keeps only a weak reference to a running task: one created and dropped can vanish before it finishes
(the documented `create_task` pitfall). Each owner of such work keeps a `BackgroundTasks`, which holds every
task until it ends and can wait for or cancel what is left at shut-down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any


class BackgroundTasks:
    """A set of running tasks, each held until done."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Awaitable[Any], name: str | None = None) -> asyncio.Future[Any]:
        """Run `work` (a coroutine or a future) in the background, held until it ends."""
        task = asyncio.ensure_future(work)
        if name is not None and isinstance(task, asyncio.Task):
            task.set_name(name)
        return self.hold(task)

    def hold(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """Keep an existing task alive until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Future[Any]]:
        return iter(list(self._tasks))

    async def wait(self, timeout: float | None = None) -> None:
        """Wait (bounded) for what is running now to end."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def cancel_and_wait(self) -> None:
        """Cancel everything and let each task run its clean-up."""
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
