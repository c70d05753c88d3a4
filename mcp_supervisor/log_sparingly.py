"""Log a repeated event at most once per window per key, and say next time how many were held back.

Anything a client, a backend or a stranger can make us log again and again goes through this: a flood of
events must not become a flood of log lines (the log is on disk, and read by people).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Any


class Sparingly:
    """At most one log line per `window_s` per key (`math.inf`: once per key, ever); at most `max_keys` keys are
    remembered, so that a stranger choosing keys (user names, say) cannot grow it: past that, new keys are
    held back (and counted) like repeats."""

    def __init__(self, window_s: float, *, max_keys: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._said_at: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}
        self.held_back = 0  # in all, over every key

    def admit(self, key: Hashable = None) -> int | None:
        """None: hold this one back (counted). Else: say it now; the int is how many of `key` were held back
        since it was last said."""
        now = self._clock()
        said = self._said_at.get(key)
        if said is None and len(self._said_at) >= self.max_keys:
            self.held_back += 1
            return None
        if said is not None and now - said < self.window_s:
            self._held[key] = self._held.get(key, 0) + 1
            self.held_back += 1
            return None
        self._said_at[key] = now
        return self._held.pop(key, 0)

    def log(self, logger: logging.Logger, level: int, key: Hashable, message: str, *args: Any) -> bool:
        """`logger.log(level, message, *args)` if `key` is admitted, with the count held back appended; True if
        it was said."""
        held = self.admit(key)
        if held is None:
            return False
        if held:
            message += f" ({held} more like it not logged since the last one)"
        logger.log(level, message, *args)
        return True
