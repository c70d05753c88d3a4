"""The bounds on what a child's stderr may cost the supervisor: a token bucket, and a line splitter that keeps at
most so many bytes of a line however long it grows (supervisor/stderr.py uses both).

Neither allocates more than one line's worth: a line that never ends is cut at the limit, its first part kept,
the rest only counted; lines over the caller's budget are counted in bulk (one `bytes.count` per read, in C),
never split, decoded or copied.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up. `charge` may run into debt (a read already done)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, amount: float = 1.0) -> bool:
        self._refill()
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True

    def charge(self, amount: float) -> None:
        self._refill()
        self._tokens -= amount

    def wait_s(self) -> float:
        """How long until the bucket is out of debt (0 when it is not in debt)."""
        self._refill()
        return max(0.0, -self._tokens / self.rate)


# (the line without its newline, whether it was cut at the limit)
Line = tuple[bytes, bool]


class LineCutter:
    """Splits a byte stream into lines of at most `limit` bytes. The first `limit` bytes of a longer line make a
    line of their own (marked cut) as soon as they are there; the rest, up to the next newline, is dropped and
    counted in `cut_bytes`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.cut_bytes = 0
        self._parts: list[bytes] = []  # the unfinished line, never joined before it ends (no re-copying)
        self._size = 0
        self._cutting = False  # dropping the rest of a line that was cut

    def feed(self, chunk: bytes, keep: Callable[[], bool]) -> tuple[list[Line], int]:
        """The lines `chunk` completes, each one first granted by `keep()`; once it says no, the rest of the
        chunk's complete lines are dropped at once. Returns (kept lines, how many lines were dropped)."""
        lines: list[Line] = []
        dropped, start, end = 0, 0, len(chunk)
        if self._cutting:
            newline = chunk.find(b"\n")
            if newline < 0:
                self.cut_bytes += end
                return lines, 0
            self.cut_bytes += newline
            self._cutting = False
            start = newline + 1
        while start < end:
            newline = chunk.find(b"\n", start)
            if newline < 0:
                dropped += self._hold(chunk[start:], keep, lines)
                break
            if not keep():
                last = chunk.rfind(b"\n")
                dropped += chunk.count(b"\n", start, last + 1)
                self._parts.clear()
                self._size = 0
                start = last + 1
                continue
            lines.append(self._complete(chunk[start:newline]))
            start = newline + 1
        return lines, dropped

    def finish(self) -> Line | None:
        """The unfinished line at the end of the stream, if any."""
        if not self._parts:
            return None
        line = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return line, False

    def _complete(self, piece: bytes) -> Line:
        cut = False
        room = self.limit - self._size
        if len(piece) > room:
            self.cut_bytes += len(piece) - room
            piece, cut = piece[:room], True
        if not self._parts:
            return piece, cut
        self._parts.append(piece)
        line = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return line, cut

    def _hold(self, piece: bytes, keep: Callable[[], bool], lines: list[Line]) -> int:
        """Keep `piece`, the start of a line, unless the line grows past the limit: then it is cut there."""
        room = self.limit - self._size
        if len(piece) <= room:
            self._parts.append(piece)
            self._size += len(piece)
            return 0
        line = self._complete(piece)  # counts what is over the limit
        self._cutting = True
        if keep():
            lines.append(line)
            return 0
        return 1
