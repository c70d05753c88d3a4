"""A budget for one backend's notifications toward the gateway, so that a flood costs only its own backend.

Every notification the gateway routes (progress, log messages, resource updates, anything else) spends one
token of a bucket that refills at RATE per second up to BURST. Within the budget a notification passes at once,
as it came. Past it:
- a `notifications/progress` is coalesced per progressToken (the latest replaces the one waiting), and the
  waiting ones go out as the bucket refills; the one of a request that is answered goes out just before its
  reply, so the last progress of a call is never lost and never comes after its result;
- a `notifications/resources/updated` is coalesced per URI the same way;
- anything else (log messages above all) is dropped, but for `notifications/cancelled` (the backend giving
  up one of its own requests), which is never held back.
Responses are never counted, delayed or dropped. What was coalesced or dropped is counted and said once per
WINDOW_S in the worker's log.

Without it, 300 000 notifications of one call cost the gateway 330 MB and delayed another backend's call by
5 s: the gateway's one event loop decoded and routed every one of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec

from mcp_supervisor.log_sparingly import Sparingly
from mcp_supervisor.protocol import codec
from mcp_supervisor.protocol.messages import Heartbeat

log = logging.getLogger("mcp_supervisor.worker")

# Notifications per second, per backend, once the burst is spent: far more than a client can show, and small
# enough that the gateway's loop never spends more than a few milliseconds at a time on one backend's burst.
RATE = 250.0
BURST = 500
WINDOW_S = 10.0
# Distinct progress tokens and URIs waiting at once; past it, the newest are dropped instead of kept.
MAX_WAITING = 10_000

_PROGRESS = "notifications/progress"
_UPDATED = "notifications/resources/updated"
_CANCELLED = "notifications/cancelled"


class _KeyParams(msgspec.Struct):
    progressToken: int | str | None = None
    uri: str | None = None


class _Keyed(msgspec.Struct):
    params: _KeyParams = msgspec.field(default_factory=_KeyParams)


_decode_keyed = msgspec.json.Decoder(_Keyed).decode


class NotificationBudget:
    def __init__(self, send: Callable[[bytes], None], name: str, rate: float = RATE, burst: int = BURST) -> None:
        self._send = send
        self.name = name
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        # (method, progress token or URI) → the latest notification waiting for a token; insertion-ordered.
        self._waiting: dict[tuple[str, int | str], bytes] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.coalesced = 0
        self.dropped = 0
        self._telling = Sparingly(WINDOW_S)
        self._told = (0, 0)  # (coalesced, dropped) when last said

    @property
    def counts(self) -> tuple[int, int]:
        """(dropped, coalesced) so far."""
        return self.dropped, self.coalesced

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def offer(self, method: str, raw: bytes) -> None:
        """One notification from the backend: sent now, kept for later (coalesced), or dropped."""
        if method == _CANCELLED:
            self._send(raw)  # the backend gives up a request of its own: one per request, never dropped
            return
        if self._tokens < 1.0:
            self._refill()
        if self._tokens >= 1.0 and not self._waiting:
            self._tokens -= 1.0
            self._send(raw)
            return
        key = self._key(method, raw) if method in (_PROGRESS, _UPDATED) else None
        if key is None or (key not in self._waiting and len(self._waiting) >= MAX_WAITING):
            self.dropped += 1
        else:
            if self._waiting.pop(key, None) is not None:
                self.coalesced += 1
            self._waiting[key] = raw  # re-inserted: the latest goes to the back of the line
            self._arm()
        self._tell()

    def before_reply(self, rid: int) -> None:
        """The request `rid` is answered: its waiting progress goes out first (the gateway's token is the rid)."""
        if self._waiting:
            raw = self._waiting.pop((_PROGRESS, rid), None)
            if raw is not None:
                self._send(raw)

    @staticmethod
    def _key(method: str, raw: bytes) -> tuple[str, int | str] | None:
        try:
            params = _decode_keyed(raw).params
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        value = params.progressToken if method == _PROGRESS else params.uri
        return (method, value) if value is not None else None

    def _arm(self) -> None:
        if self._timer is None:
            delay = max(0.0, (1.0 - self._tokens) / self._rate)
            self._timer = asyncio.get_running_loop().call_later(delay, self._drain)

    def _drain(self) -> None:
        """Send what waits, oldest first, as far as the bucket allows; come back for the rest."""
        self._timer = None
        self._refill()
        while self._waiting and self._tokens >= 1.0:
            key = next(iter(self._waiting))
            self._tokens -= 1.0
            self._send(self._waiting.pop(key))
        if self._waiting:
            self._arm()

    def _tell(self) -> None:
        """Said once per WINDOW_S at most: a flood must not become a flood of log lines."""
        if self._telling.admit() is None:
            return
        coalesced, dropped = self.coalesced - self._told[0], self.dropped - self._told[1]
        self._told = (self.coalesced, self.dropped)
        log.warning(
            "Too many notifications from backend %s (over %g/s after a burst of %d): %d dropped and %d "
            "coalesced since the last report (%d and %d in all); responses are never dropped.",
            self.name,
            self._rate,
            int(self._burst),
            dropped,
            coalesced,
            self.dropped,
            self.coalesced,
        )

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def gateway_heartbeat(key: str, generation: int, counts: tuple[int, int]) -> bytes:
    """The worker's data-plane heartbeat, carrying what its budget dropped and coalesced (the gateway's /metrics)."""
    dropped, coalesced = counts
    beat = Heartbeat(key=key, generation=generation, notifications_dropped=dropped, notifications_coalesced=coalesced)
    return codec.encode(beat)
