"""One SSE stream's events, numbered and kept (bounded) so a client can resume after a dropped connection.

Streamable HTTP: every event carries `id: <stream>:<seq>`; a client that lost a stream reconnects with
`GET` + `Last-Event-ID` and gets the events after that one, then the live rest of the same stream (for a POST's
stream, up to and including its reply, which may arrive only after the drop). Stream 0 of a session is its
standalone GET stream.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator

KEEPALIVE_S = 15.0
KEEPALIVE_FRAME = b": keep-alive\n\n"
DEFAULT_LIMIT = 1000


class EventLog:
    def __init__(self, stream_id: int, limit: int = DEFAULT_LIMIT) -> None:
        self.stream_id = stream_id
        self.seq = 0
        self.events: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=limit)
        self.finished_at: float | None = None
        self._changed = asyncio.Event()

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def append(self, data: bytes) -> None:
        self.seq += 1
        self.events.append((self.seq, data))
        self._wake()

    def finish(self) -> None:
        """No more events will come (a POST stream's reply was appended)."""
        self.finished_at = time.monotonic()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def event_id(self, seq: int) -> str:
        return f"{self.stream_id}:{seq}"

    def frame(self, seq: int, data: bytes) -> bytes:
        """One SSE event carrying its resumption id (a keep-alive comment for seq 0)."""
        if not seq:
            return KEEPALIVE_FRAME
        return b"id: " + self.event_id(seq).encode() + b"\nevent: message\ndata: " + data + b"\n\n"

    async def follow(self, after: int, closed: asyncio.Event) -> AsyncIterator[tuple[int, bytes]]:
        """(seq, message) of the events after `after`, then live ones, until finished or `closed` is set;
        a quiet KEEPALIVE_S yields (0, b"") so a stream can send a keep-alive."""
        sent = after
        while True:
            for seq, data in list(self.events):
                if seq > sent:
                    sent = seq
                    yield seq, data
            if self.finished or closed.is_set():
                return
            changed = asyncio.ensure_future(self._changed.wait())
            ended = asyncio.ensure_future(closed.wait())
            try:
                done, _ = await asyncio.wait({changed, ended}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the consumer is closed mid-wait (the client went away)
                changed.cancel()
                ended.cancel()
            if not done:
                yield 0, b""


def parse_event_id(value: str) -> tuple[int, int] | None:
    stream, _, seq = value.partition(":")
    if not (stream.isdigit() and seq.isdigit()):
        return None
    return int(stream), int(seq)
