"""`notifications/<kind>/list_changed` at most once per window, whatever a backend does.

A backend that announces a change 20 000 times must not make every client re-list 20 000 times. The first
announcement after a quiet window goes out at once; those that come during the window are merged, and go out
once when it ends (the trailing edge: the last change is never lost), opening the next window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

KINDS = ("tools", "prompts", "resources")


class Debounced:
    def __init__(self, window_s: float, deliver: Callable[[str], None]) -> None:
        self.window_s = window_s
        self._deliver = deliver
        self._pending: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None

    def announce(self, *kinds: str) -> None:
        self._pending.update(kinds)
        if self._timer is None:
            self._flush()

    def _flush(self) -> None:
        self._timer = None
        if not self._pending:
            return  # a quiet window: the next announcement goes out at once
        kinds, self._pending = self._pending, set()
        for kind in KINDS:
            if kind in kinds:
                self._deliver(kind)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a unit test calling in directly): nothing to merge with
        if self.window_s > 0:
            self._timer = loop.call_later(self.window_s, self._flush)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
