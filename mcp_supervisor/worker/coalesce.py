"""Work that only needs doing once more, however often it is asked for: at most one run in flight per key,
plus one pending.

A backend that sends 20 000 `notifications/tools/list_changed` gets its tools listed a few times, not 20 000
times: a request that comes while a run is in flight marks the key pending, and the run starts over once when
it ends (so the last change is always seen).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("mcp_supervisor.worker")


class Coalesced:
    def __init__(self, run: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        self._run = run
        self._running: dict[str, asyncio.Task[None]] = {}
        self._pending: set[str] = set()

    def request(self, key: str) -> None:
        if key in self._running:
            self._pending.add(key)
            return
        self._running[key] = asyncio.create_task(self._loop(key))

    async def _loop(self, key: str) -> None:
        try:
            while True:
                self._pending.discard(key)
                try:
                    await self._run(key)
                except Exception:  # one failed run must not stop the next ones
                    log.exception("Refreshing %s failed.", key)
                if key not in self._pending:
                    return
        finally:
            del self._running[key]

    def cancel(self) -> None:
        for task in self._running.values():
            task.cancel()
