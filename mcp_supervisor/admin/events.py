"""Fan-out of the admin's live events (backend health, install output) to every open `/admin/sse/updates`.

Each subscriber has a bounded queue: a browser tab that stops reading loses its oldest events, never slows the
publisher or grows without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

SUBSCRIBER_QUEUE_LIMIT = 1000

AdminEvent = tuple[str, dict[str, Any]]


class EventHub:
    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[AdminEvent]] = set()

    def publish(self, event: str, data: dict[str, Any]) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()  # drop the oldest for this slow reader only
            queue.put_nowait((event, data))

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Queue[AdminEvent]]:
        """A queue receiving every event published while the block runs."""
        queue: asyncio.Queue[AdminEvent] = asyncio.Queue(SUBSCRIBER_QUEUE_LIMIT)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    async def subscribe(self) -> AsyncIterator[AdminEvent]:
        """Events published from now on, until the caller stops iterating."""
        with self.listen() as queue:
            while True:
                yield await queue.get()
