"""Restart policy: pure decisions over an injected clock and random source (unit-tested without processes).

The first crash after a stable run restarts at once (as supervisord and systemd do: a one-off crash should
cost one restart, not a wait). Each further crash in the streak waits `base * 2**(n-2)` capped at
`max_delay`, with jitter between half and all of it, so a crash loop backs off 0.5 s, 1 s, 2 s, …; the
streak resets after a stable run; more than `max_restarts` crashes inside `window_s` means FATAL. A
commanded stop is never recorded here: only crashes are.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestartSettings:
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    stable_after_s: float = 60.0
    max_restarts: int = 5
    window_s: float = 60.0


@dataclass(frozen=True)
class Decision:
    fatal: bool
    delay_s: float = 0.0
    reason: str = ""


@dataclass
class RestartPolicy:
    settings: RestartSettings = field(default_factory=RestartSettings)
    clock: Callable[[], float] = field(default=lambda: 0.0)
    rand: Callable[[], float] = field(default=random.random)
    streak: int = 0
    _crashes: deque[float] = field(default_factory=deque)

    def on_crash(self, started_at: float) -> Decision:
        """Record a crash of a process started at `started_at` and say what to do next."""
        now = self.clock()
        if now - started_at >= self.settings.stable_after_s:
            self.streak = 0
        self.streak += 1
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.settings.window_s:
            self._crashes.popleft()
        if len(self._crashes) > self.settings.max_restarts:
            return Decision(
                fatal=True,
                reason=(
                    f"crashed {len(self._crashes)} times within {self.settings.window_s:g} s "
                    f"(limit {self.settings.max_restarts})"
                ),
            )
        if self.streak == 1:
            return Decision(fatal=False, delay_s=0.0)
        ceiling = min(self.settings.max_delay_s, self.settings.base_delay_s * 2 ** (self.streak - 2))
        delay = ceiling * (0.5 + 0.5 * self.rand())
        return Decision(fatal=False, delay_s=delay)

    def reset(self) -> None:
        """A config change or an explicit restart clears FATAL and the history."""
        self.streak = 0
        self._crashes.clear()
