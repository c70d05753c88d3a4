"""Login throttling, keyed so that nobody can lock the operator out (issue 22).

Every backend reached the gateway from 127.0.0.1, as a local operator does: a throttle keyed by address alone let
five bad logins from a backend lock the operator out. The key is now (see `login_key`):

- a browser that logged in here before carries a signed device cookie (OWASP's "device cookies"): its attempts
  are throttled under that device alone, so failures from anywhere else never delay it. Only someone who knew
  the password can hold one;
- any other attempt is throttled per (address, username) when the username is the admin's, and in one bucket
  per address for every other username (a wrong username can never succeed, and one bucket keeps a flood of
  invented usernames from evicting the real one's count).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def login_key(address: str, username_known: bool, device: str | None) -> str:
    if device is not None:
        return f"device:{device}"
    return f"{address}\0{'admin' if username_known else 'other'}"


class LoginThrottle:
    """Per key (`login_key`): after `free_failures` failures within `window_s`, every attempt under that key is
    refused for a lockout that doubles with each further failure, up to `max_lockout_s`."""

    def __init__(
        self,
        free_failures: int = 5,
        window_s: float = 3600.0,
        first_lockout_s: float = 30.0,
        max_lockout_s: float = 900.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = free_failures
        self._window = window_s
        self._first = first_lockout_s
        self._max = max_lockout_s
        self._max_clients = max_clients
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, client: str) -> list[float]:
        cutoff = self._clock() - self._window
        recent = [at for at in self._failures.get(client, []) if at > cutoff]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return recent

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        recent = self._recent(client)
        if len(recent) < self._free:
            return 0.0
        lockout = min(self._first * 2.0 ** (len(recent) - self._free), self._max)
        return max(0.0, recent[-1] + lockout - self._clock())

    def failed(self, client: str) -> None:
        if client not in self._failures and len(self._failures) >= self._max_clients:
            self._failures.pop(next(iter(self._failures)))  # forget the oldest client, never grow unbounded
        self._failures.setdefault(client, []).append(self._clock())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
