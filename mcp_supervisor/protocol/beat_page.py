"""A worker's heartbeat page: one page of shared memory that the worker's event loop writes and the supervisor's
watchdog reads.

Design: docs/architecture.md, "The heartbeat page".
"""

from __future__ import annotations

import ctypes
import mmap
import os
from typing import NamedTuple

from mcp_supervisor.protocol.states import WorkerReport

PAGE_SIZE = mmap.PAGESIZE
_BEATS, _IN_FLIGHT, _REFUSED, _STATE, _DETAIL_LENGTH, _ERA_LENGTH, _VERSION_LENGTH = range(7)
STARTING, READY, FAILED = 0, 1, 2
_STATES = {READY: WorkerReport.READY, FAILED: WorkerReport.FAILED}
DETAIL_OFFSET = 64
_Words = ctypes.c_uint64 * 7
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)


class PageReport(NamedTuple):
    state: str  # "ready" | "failed"
    detail: str
    era: str
    protocol_version: str


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

    def report(self, state: str, detail: str, era: str = "", protocol_version: str = "") -> None:
        """The worker's side: "ready" or "failed", with a line of detail (cut to fit the page)."""
        assert self._address is not None
        room = PAGE_SIZE - DETAIL_OFFSET
        texts = [era.encode(errors="replace")[:64], protocol_version.encode(errors="replace")[:64]]
        texts.append(detail.encode(errors="replace")[: room - len(texts[0]) - len(texts[1])])
        blob = b"".join(texts)
        ctypes.memmove(self._address + DETAIL_OFFSET, blob, len(blob))
        words = self._words
        words[_ERA_LENGTH], words[_VERSION_LENGTH], words[_DETAIL_LENGTH] = (len(text) for text in texts)
        words[_STATE] = READY if state == WorkerReport.READY else FAILED  # last: the lengths are current when it moves

    def read_report(self) -> PageReport | None:
        """The supervisor's side: what the worker reported, or None while it has reported nothing."""
        assert self._address is not None
        words = self._words
        state = _STATES.get(words[_STATE])
        if state is None:
            return None
        # The worker is ours, but its page is shared memory: bound every length before reading.
        blob = ctypes.string_at(self._address + DETAIL_OFFSET, PAGE_SIZE - DETAIL_OFFSET)
        era_end = min(words[_ERA_LENGTH], len(blob))
        version_end = min(era_end + words[_VERSION_LENGTH], len(blob))
        detail_end = min(version_end + words[_DETAIL_LENGTH], len(blob))
        return PageReport(
            state,
            blob[version_end:detail_end].decode(errors="replace"),
            blob[:era_end].decode(errors="replace"),
            blob[era_end:version_end].decode(errors="replace"),
        )

    def close(self) -> None:
        if self._address is not None:
            del self._words
            _libc.munmap(self._address, PAGE_SIZE)
            self._address = None
