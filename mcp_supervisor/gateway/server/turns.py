"""Turns at a backend for its interactive calls, fair across credentials.

An interactive call (one that asks its client things, see server_requests.py) holds its backend's turn for its
whole flight, so that the backend's server→client request can be attributed exactly. A plain FIFO lock let one
credential's queue delay everyone else: five calls whose client never answers cost the next tenant five
SERVER_REQUEST_TIMEOUT_SECONDS. Here waiting calls are queued per credential and served round-robin, the
credential that just had the turn going last: another credential's call waits for at most the turn in
progress.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class _Turns:
    """One backend's turn: who holds it, and who waits, per credential in rotation order."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    async def acquire(self, principal: str) -> None:
        if self.holder is None and not self.waiting:
            self.holder = principal
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(principal, deque()).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # granted, then cancelled before it could start: the next one's turn
            else:
                queue = self.waiting.get(principal)
                if queue is not None and granted in queue:
                    queue.remove(granted)
                    if not queue:
                        del self.waiting[principal]
            raise
        self.holder = principal

    def release(self) -> None:
        """The turn goes to the next credential in rotation; the one that just had it goes last."""
        last = self.holder
        if last is not None and last in self.waiting:
            self.waiting.move_to_end(last)  # its next call waits for everyone already waiting
        while self.waiting:
            principal = next(iter(self.waiting))
            queue = self.waiting[principal]
            granted = queue.popleft()
            if queue:
                self.waiting.move_to_end(principal)
            else:
                del self.waiting[principal]
            if not granted.done():
                self.holder = principal
                granted.set_result(None)
                return
        self.holder = None


class FairTurns:
    def __init__(self) -> None:
        self._backends: dict[str, _Turns] = {}

    @asynccontextmanager
    async def turn(self, key: str, principal: str) -> AsyncIterator[None]:
        """Held by an interactive call for its whole flight: one at a time per backend, fair across credentials."""
        turns = self._backends.setdefault(key, _Turns())
        await turns.acquire(principal)
        try:
            yield
        finally:
            turns.release()
            if turns.holder is None and not turns.waiting:
                self._backends.pop(key, None)

    def waiting(self, key: str) -> int:
        turns = self._backends.get(key)
        return sum(len(queue) for queue in turns.waiting.values()) if turns is not None else 0
