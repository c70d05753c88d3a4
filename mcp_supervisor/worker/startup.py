"""Small helpers of the worker's start-up: racing work against the backend connection."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

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
