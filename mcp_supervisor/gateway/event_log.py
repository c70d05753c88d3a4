"""One SSE stream's events, numbered and kept (bounded) so a client can resume after a dropped connection.

Streamable HTTP: every event carries `id: <stream>:<seq>`; a client that lost a stream reconnects with
`GET` + `Last-Event-ID` and gets the events after that one, then the live rest of the same stream (for a POST's
stream, up to and including its reply, which may arrive only after the drop). Stream 0 of a session is its
standalone GET stream.

Followers are woken through one plain future each (no Event, no task, no `asyncio.wait` per event): this is
on every reply's path over /sse and stdio. Whoever ends a follow (sets its `closed` event) calls `wake()`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator

KEEPALIVE_S = 15.0
KEEPALIVE_FRAME = b": keep-alive\n\n"
DEFAULT_LIMIT = 1000

Event = tuple[int, bytes]


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventLog:
    def __init__(self, stream_id: int, limit: int = DEFAULT_LIMIT) -> None:
        self.stream_id = stream_id
        self.seq = 0
        self.events: collections.deque[Event] = collections.deque(maxlen=limit)
        self.finished_at: float | None = None
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def append(self, data: bytes) -> None:
        self.seq += 1
        self.events.append((self.seq, data))
        self.wake()

    def finish(self) -> None:
        """No more events will come (a POST stream's reply was appended)."""
        self.finished_at = time.monotonic()
        self.wake()

    def wake(self) -> None:
        """Make every follower look again: a new event, the end of the stream, or its `closed` event set."""
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                _resolve(waiter)

    def after(self, seq: int) -> list[Event]:
        """The kept events after `seq`, oldest first. Sequence numbers are contiguous, so the newest
        `self.seq - seq` events are the ones: no scan of the whole (up to `limit`) log per delivery."""
        missing = self.seq - seq
        if missing <= 0:
            return []
        kept = len(self.events)
        if missing >= kept:
            return list(self.events)
        return [self.events[index] for index in range(kept - missing, kept)]

    def event_id(self, seq: int) -> str:
        return f"{self.stream_id}:{seq}"

    def frame(self, seq: int, data: bytes) -> bytes:
        """One SSE event carrying its resumption id (a keep-alive comment for seq 0)."""
        if not seq:
            return KEEPALIVE_FRAME
        return b"id: " + self.event_id(seq).encode() + b"\nevent: message\ndata: " + data + b"\n\n"

    async def follow(self, after: int, closed: asyncio.Event) -> AsyncIterator[list[Event]]:
        """Batches of (seq, message) after `after`, then live ones, until finished or `closed` is set (and
        `wake()` called); every event logged before that is still delivered. A quiet KEEPALIVE_S yields an
        empty batch, so a stream can send a keep-alive. A batch holds what accumulated while the consumer
        was writing the previous one: one write for several events."""
        sent = after
        loop = asyncio.get_running_loop()
        while True:
            batch = self.after(sent)
            if batch:
                sent = batch[-1][0]
                yield batch
                continue
            if self.finished or closed.is_set():
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(KEEPALIVE_S, _resolve, waiter)
            try:
                await waiter
            finally:  # also when the consumer is closed mid-wait (the client went away)
                timer.cancel()
                if not waiter.done() or waiter.cancelled():
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
            if self.seq == sent and not self.finished and not closed.is_set():
                yield []  # woken by the keep-alive timer (or spuriously): a keep-alive costs nothing


def parse_event_id(value: str) -> tuple[int, int] | None:
    stream, _, seq = value.partition(":")
    if not (stream.isdigit() and seq.isdigit()):
        return None
    return int(stream), int(seq)
