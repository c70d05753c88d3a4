"""The stdio client's input, line by line, whatever kind of file its descriptor is.

A pipe, a socket or a terminal is read in the event loop. A regular file or /dev/null (`mcp-supervisor stdio
< requests.jsonl`, a service manager's stdin) cannot be: epoll refuses them, which asyncio's loop reports as a
ValueError and uvloop's (libuv) answers with abort(), taking the gateway down without a word. Those are read
in a thread instead, a line at a time (such input does not block for long: it is all there).
"""

from __future__ import annotations

import asyncio
import io
import os
import select
from typing import Protocol


class Lines(Protocol):
    async def readuntil(self, separator: bytes = b"\n") -> bytes: ...


async def open_lines(fd: int, limit: int) -> Lines:
    """asyncio.StreamReader's `readuntil` over `fd`: its errors for a line over `limit` bytes and for the end of
    the input (LimitOverrunError, IncompleteReadError with what came after the last newline)."""
    if not pollable(fd):
        return FileLines(os.fdopen(fd, "rb"), limit)
    reader = asyncio.StreamReader(limit=limit)
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader


def pollable(fd: int) -> bool:
    with select.epoll(1) as poller:
        try:
            poller.register(fd, select.EPOLLIN)
        except PermissionError:  # EPERM: a regular file or a device without poll support
            return False
    return True


class FileLines:
    def __init__(self, file: io.BufferedReader, limit: int) -> None:
        self._file = file
        self._limit = limit

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        assert separator == b"\n", "lines only"
        line = await asyncio.to_thread(self._file.readline, self._limit + 1)
        if len(line) > self._limit:
            raise asyncio.LimitOverrunError("A line is longer than the limit.", len(line))
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        return line
