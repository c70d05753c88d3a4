"""One SSE stream's events, numbered and kept (bounded) so a client can resume after a dropped connection.

Streamable HTTP: every event carries `id: <stream>:<seq>`; a client that lost a stream reconnects with
`GET` + `Last-Event-ID` and gets the events after that one, then the live rest of the same stream (for a POST's
stream, up to and including its reply, which may arrive only after the drop). Stream 0 of a session is its
standalone GET stream. Streams of transports without resumption (legacy /sse, stdio) forget what they delivered.

What is bounded is notifications only. A response to a client request, and a request to the client, is never
evicted: it is kept until delivered (the front ends apply back-pressure to a client that lets them pile up). A
notification past the stream's bound, or past the gateway-wide budget (`Budget`), drops the stream's oldest
notification: it is counted there, and the stream's `on_drop` is told (to log it once per session). A dropped
event leaves a tombstone (its data released) so sequence numbers stay what they were; tombstones are compacted
away once they outnumber the bound.

Followers are woken through one plain future each (no Event, no task, no `asyncio.wait` per event): this is
on every reply's path over /sse and stdio. Whoever ends a follow (sets its `closed` event) calls `wake()`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

KEEPALIVE_S = 15.0
KEEPALIVE_FRAME = b": keep-alive\n\n"
DEFAULT_LIMIT = 1000
# Events per write at most: a backlog goes out in slices, so the transport's own flow control (uvicorn pauses
# a writer past its buffer's high-water mark) holds what is undelivered here, where it is bounded.
MAX_BATCH = 256
# Bytes of notifications one stream may hold (a few huge progress messages must not take the whole budget).
STREAM_NOTIFICATION_BYTES = 4 * 1024 * 1024

# [seq, data (None once dropped), droppable]: a list, so a dropped notification can release its data in place.
Event = list[Any]


class Budget:
    """Bytes of notifications held by every stream of the gateway together, and how many were dropped."""

    def __init__(self, limit_bytes: int = 1 << 62) -> None:
        self.limit = limit_bytes
        self.used = 0
        self.dropped = 0


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventLog:
    def __init__(
        self,
        stream_id: int,
        limit: int = DEFAULT_LIMIT,
        budget: Budget | None = None,
        resumable: bool = True,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.seq = 0
        self.limit = limit
        self.budget = budget if budget is not None else Budget()
        self.resumable = resumable
        self.on_drop = on_drop
        self.events: collections.deque[Event] = collections.deque()
        self._notes: collections.deque[Event] = collections.deque()  # held notifications, oldest first
        self.note_bytes = 0
        self.kept_bytes = 0  # responses and requests held (undelivered ones, on a non-resumable stream)
        self.dropped = 0
        self._tombstones = 0
        self.delivered = 0  # the newest seq handed to a follower
        self._accounted = True
        self.finished_at: float | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._drain_waiters: list[asyncio.Future[None]] = []

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def append(self, data: bytes, droppable: bool = False) -> None:
        """Log one message; `droppable` for a notification, which may be dropped under pressure."""
        self.seq += 1
        entry: Event = [self.seq, data, droppable]
        self.events.append(entry)
        if droppable:
            self._notes.append(entry)
            self.note_bytes += len(data)
            if self._accounted:
                self.budget.used += len(data)
            if (
                len(self._notes) > self.limit
                or self.note_bytes > STREAM_NOTIFICATION_BYTES
                or self.budget.used > self.budget.limit
            ):
                self._shed()
        else:
            self.kept_bytes += len(data)
        self.wake()

    def _shed(self) -> None:
        """Drop the oldest notifications until this stream is within its bounds (or has none left to drop)."""
        notes = self._notes
        budget = self.budget
        while notes and (
            len(notes) > self.limit
            or self.note_bytes > STREAM_NOTIFICATION_BYTES
            or (self._accounted and budget.used > budget.limit)
        ):
            entry = notes.popleft()
            self._release_note(entry)
            entry[1] = None
            self._tombstones += 1
            if entry[0] > self.delivered:  # one kept for a resumption after delivery was not lost
                self.dropped += 1
                budget.dropped += 1
                if self.on_drop is not None:
                    self.on_drop()
        if self._tombstones > self.limit:
            self.events = collections.deque(e for e in self.events if e[1] is not None)
            self._tombstones = 0

    def _release_note(self, entry: Event) -> None:
        size = len(entry[1])
        self.note_bytes -= size
        if self._accounted:
            self.budget.used -= size

    def trim(self, upto: int) -> None:
        """Forget the events up to `upto`, delivered on a stream nobody can resume."""
        events = self.events
        drained = False
        while events and events[0][0] <= upto:
            entry = events.popleft()
            if entry[1] is None:
                self._tombstones -= 1
            elif entry[2]:
                self._notes.popleft()  # the same entry: both deques are in sequence order
                self._release_note(entry)
            else:
                self.kept_bytes -= len(entry[1])
                drained = True
        if drained and self._drain_waiters:
            waiters, self._drain_waiters = self._drain_waiters, []
            for waiter in waiters:
                _resolve(waiter)

    async def wait_drained(self, max_kept_bytes: int, timeout: float) -> bool:
        """Wait until the undelivered responses are below `max_kept_bytes`; False after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.kept_bytes > max_kept_bytes:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._drain_waiters.append(waiter)
            timer = loop.call_later(remaining, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                with contextlib.suppress(ValueError):
                    self._drain_waiters.remove(waiter)
        return True

    def release(self) -> None:
        """The stream is gone (its session closed, or it expired): its notifications leave the budget. What
        it holds stays readable for a follower that is still flushing."""
        if self._accounted:
            self.budget.used -= self.note_bytes
            self._accounted = False

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
        """The kept events after `seq`, oldest first (MAX_BATCH at most): a walk back from the newest, so a
        delivery costs what is undelivered, not the size of the log."""
        batch: list[Event] = []
        for entry in reversed(self.events):
            if entry[0] <= seq:
                break
            if entry[1] is not None:
                batch.append(entry)
        batch.reverse()
        return batch if len(batch) <= MAX_BATCH else batch[:MAX_BATCH]

    def event_id(self, seq: int) -> str:
        return f"{self.stream_id}:{seq}"

    def frame(self, seq: int, data: bytes) -> bytes:
        """One SSE event carrying its resumption id (a keep-alive comment for seq 0)."""
        if not seq:
            return KEEPALIVE_FRAME
        return b"id: " + self.event_id(seq).encode() + b"\nevent: message\ndata: " + data + b"\n\n"

    async def follow(self, after: int, closed: asyncio.Event) -> AsyncIterator[list[Event]]:
        """Batches of events ([seq, data, droppable]) after `after`, then live ones, until finished or `closed`
        is set (and `wake()` called); every event logged before that is still delivered. A quiet KEEPALIVE_S
        yields an empty batch, so a stream can send a keep-alive. A batch holds what accumulated while the
        consumer was writing the previous one: one write for several events."""
        sent = after
        loop = asyncio.get_running_loop()
        while True:
            batch = self.after(sent)
            if batch:
                sent = batch[-1][0]
                if sent > self.delivered:
                    self.delivered = sent
                if not self.resumable:
                    self.trim(sent)  # the consumer has it now: nobody will ask for it again
                yield batch
                continue
            sent = max(sent, self.seq)  # whatever is newer was dropped meanwhile
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
