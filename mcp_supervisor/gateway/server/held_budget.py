"""The byte budget of 2026-07-28 calls that may need their client's input (tools/call, prompts/get,
resources/read), per credential and in all.

Such a call can be held for minutes (modern_requests.py): its arguments stay in the gateway until the client
retries. Its bytes are charged when it arrives, before it is forwarded, and given back when it ends, so a
credential's calls in flight and held together stay within HELD_REQUESTS_MB_PER_CREDENTIAL, and everyone's
within HELD_REQUESTS_MB. A call that would pass either is refused at once with a clear error; the others go on.
Without it, 300 held calls of 1 MB each took the gateway from 76 to 767 MB.
"""

from __future__ import annotations

_MIB = 1024 * 1024


class HeldBytes:
    def __init__(self, per_credential: int, total: int) -> None:
        self.per_credential = per_credential
        self.limit = total
        self._by_principal: dict[str, int] = {}
        self.total = 0

    def refusal(self, principal: str, size: int) -> str:
        """Why `size` more bytes for `principal` would pass a budget, or "" when they fit."""
        if self._by_principal.get(principal, 0) + size > self.per_credential:
            return (
                f"this credential's calls that may wait for input would exceed their byte budget of "
                f"{self.per_credential / _MIB:g} MiB (HELD_REQUESTS_MB_PER_CREDENTIAL); answer or drop the ones "
                "it holds, then retry"
            )
        if self.total + size > self.limit:
            return (
                f"the calls that may wait for input would exceed the gateway's byte budget of "
                f"{self.limit / _MIB:g} MiB (HELD_REQUESTS_MB); retry later"
            )
        return ""

    def charge(self, principal: str, size: int) -> None:
        self._by_principal[principal] = self._by_principal.get(principal, 0) + size
        self.total += size

    def release(self, principal: str, size: int) -> None:
        left = self._by_principal.get(principal, 0) - size
        if left > 0:
            self._by_principal[principal] = left
        else:
            self._by_principal.pop(principal, None)
        self.total -= size

    def of(self, principal: str) -> int:
        return self._by_principal.get(principal, 0)
