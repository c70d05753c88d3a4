"""A worker's heartbeat page: one page of shared memory that the worker's event loop writes and the supervisor's
watchdog reads.

A heartbeat message from every worker every couple of seconds woke three threads in two processes per beat
(the worker's loop and ZeroMQ I/O thread, the supervisor's I/O thread and loop) and was most of an idle tree's
CPU at a hundred backends. Here a beat is three stores into memory: the supervisor reads every page on its
watchdog tick, which runs anyway, and nobody is woken for it.

The page is the first page of the worker's handoff memfd (protocol/spawn.py): the spec follows it, so the same
single inherited fd brings both, and no fd or mapping of it survives into the backend (exec drops mappings).
Each worker has a memfd of its own: a worker can only speak for its own liveness, as with messages.

Layout: native unsigned 64-bit words, each written by one aligned store: beats (incremented last, so the next
two are current when it moves), requests in flight at the backend, replies the worker refused, the worker's
report (0 starting, READY, FAILED) and the length of its detail, which is UTF-8 text from DETAIL_OFFSET to the
end of the page (what a ready worker serves, or why it failed). A report replaces the state and detail messages
on the control socket: the worker writes detail, length, then state, and wakes the supervisor through the
report eventfd all workers share (a syscall on both sides, so the supervisor reads what was written); a failed
worker's report is read when its exit is reaped, and is there however fast it exited.

Mapped with libc's mmap through ctypes rather than Python's `mmap` module, which keeps a dup of the fd for as
long as the mapping lives (3.11 has no `trackfd=False`): that would be one more fd per worker in the supervisor
(a few hundred workers and it meets the usual limit of 1024) and a handoff fd left open in every worker.
"""

from __future__ import annotations

import ctypes
import mmap
import os

PAGE_SIZE = mmap.PAGESIZE
_BEATS, _IN_FLIGHT, _REFUSED, _STATE, _DETAIL_LENGTH = 0, 1, 2, 3, 4
STARTING, READY, FAILED = 0, 1, 2
_STATES = {READY: "ready", FAILED: "failed"}
DETAIL_OFFSET = 64
_Words = ctypes.c_uint64 * 5
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)


class BeatPage:
    def __init__(self, fd: int, writable: bool) -> None:
        """Map the first page of `fd` (which the caller may close afterwards: the mapping keeps the file)."""
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        address = _libc.mmap(None, PAGE_SIZE, prot, mmap.MAP_SHARED, fd, 0)
        if address is None or address == _MAP_FAILED:
            errno = ctypes.get_errno()
            raise OSError(errno, f"mmap of the heartbeat page failed: {os.strerror(errno)}")
        self._address: int | None = address
        self._words = _Words.from_address(address)

    def beat(self, in_flight: int, refused_replies: int) -> None:
        """The worker's side: one beat, with its current figures."""
        words = self._words
        words[_IN_FLIGHT] = in_flight
        words[_REFUSED] = refused_replies
        words[_BEATS] = words[_BEATS] + 1  # c_uint64 wraps

    def read(self) -> tuple[int, int, int]:
        """The supervisor's side: (beats, in flight, refused replies)."""
        words = self._words
        return words[_BEATS], words[_IN_FLIGHT], words[_REFUSED]

    def report(self, state: str, detail: str) -> None:
        """The worker's side: "ready" or "failed", with a line of detail (cut to fit the page)."""
        assert self._address is not None
        text = detail.encode(errors="replace")[: PAGE_SIZE - DETAIL_OFFSET]
        ctypes.memmove(self._address + DETAIL_OFFSET, text, len(text))
        self._words[_DETAIL_LENGTH] = len(text)
        self._words[_STATE] = READY if state == "ready" else FAILED

    def read_report(self) -> tuple[str, str] | None:
        """The supervisor's side: ("ready" | "failed", detail), or None while the worker has reported nothing."""
        assert self._address is not None
        state = _STATES.get(self._words[_STATE])
        if state is None:
            return None
        length = min(self._words[_DETAIL_LENGTH], PAGE_SIZE - DETAIL_OFFSET)
        return state, ctypes.string_at(self._address + DETAIL_OFFSET, length).decode(errors="replace")

    def close(self) -> None:
        if self._address is not None:
            del self._words
            _libc.munmap(self._address, PAGE_SIZE)
            self._address = None
