"""Per-process stderr capture: a pipe read by the supervisor's loop, into a rotating file, a ring of lines and the
supervisor's own log.

A worker has two pipes: its own stderr, and its backend's (a stdio backend's fd 2 is a pipe of its own, never the
worker's: worker/stdio_connection.py). So what the backend wrote is known to be the backend's without reading it,
and a backend cannot write a line that passes for its worker's, or for anyone else's: every backend line is
echoed behind `key| `, its control characters escaped. The last line the backend wrote (typically why it failed)
is shown by `status`, `/health/backends` and errors.

The supervisor is the root of the tree, so what a child writes costs it a bounded amount whatever the child does
(stderr_limits.py): at most LINE_LIMIT bytes of a line are kept; lines past KEEP_RATE a second are counted, not
stored; the echo into the supervisor's log is rate-limited per pipe, and what it leaves out is counted and said
once per REPORT_WINDOW_S; past READ_RATE bytes a second the pipe is not read for a while, so that a child
writing without pause waits in its own write(2) rather than spinning the supervisor.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcp_supervisor.redaction import redact
from mcp_supervisor.supervisor.stderr_limits import Line, LineCutter, TokenBucket
from mcp_supervisor.system.logs import escape_controls

log = logging.getLogger("mcp_supervisor.supervisor")

MAX_FILE_BYTES = 1024 * 1024
KEEP_FILES = 3
RING_LINES = 200
READ_BYTES = 65536
LINE_LIMIT = 64 * 1024
ECHO_MAX_CHARS = 1000  # of one line, in the supervisor's log (the file keeps up to LINE_LIMIT)
LAST_LINE_CHARS = 500
REPORT_WINDOW_S = 5.0
# Our own processes' log lines ("2026-… gateway INFO …", uvicorn's "INFO:  …") start with a header.
_OWN_HEADER = re.compile(r"^(\d{4}-\d\d-\d\d [\d:,]+ (gateway|zygote) |(INFO|WARNING|ERROR|DEBUG|CRITICAL):  )")

# Whose pipe: our own process (the gateway, the zygote), a worker, or a worker's backend.
Source = Literal["own", "worker", "backend"]


@dataclass(frozen=True)
class Limits:
    echo_rate: float  # lines a second into the supervisor's log
    echo_burst: float
    keep_rate: float = 2000.0  # lines a second into the file and the ring
    keep_burst: float = 20000.0
    read_rate: float = 16 * 1024 * 1024  # bytes a second read from the pipe
    read_burst: float = 64 * 1024 * 1024


LIMITS: dict[Source, Limits | None] = {
    "own": None,  # ours, and no backend's words: every line, as before
    "worker": Limits(echo_rate=100.0, echo_burst=1000.0),
    "backend": Limits(echo_rate=20.0, echo_burst=200.0),
}


class RotatingFile:
    """The per-process log file (`logs KEY`), shared by a worker's two captures: closed when both are."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "ab")  # noqa: SIM115 - kept open for the capture's lifetime
        self._users = 1

    def share(self) -> RotatingFile:
        self._users += 1
        return self

    def write(self, data: bytes) -> None:
        if self._users <= 0:
            return
        self._handle.write(data)
        self._handle.flush()
        if self._handle.tell() >= MAX_FILE_BYTES:
            self._rotate()

    def _rotate(self) -> None:
        self._handle.close()
        for index in range(KEEP_FILES - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._handle = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._handle.close()


class StderrCapture:
    """Reads one child's stderr pipe until EOF (which may come after the child died: its own children hold it)."""

    def __init__(self, key: str, read_fd: int, file: RotatingFile | Path, source: Source = "own") -> None:
        self.key = key
        self.source = source
        self.lines: collections.deque[str] = collections.deque(maxlen=RING_LINES)
        self.last_line: str | None = None
        self.not_echoed = 0  # lines, since the last report (`not_kept` of them not stored either)
        self.not_kept = 0
        self._reported_cut = 0
        self._fd = read_fd
        self._file = file if isinstance(file, RotatingFile) else RotatingFile(file)
        self._cutter = LineCutter(LINE_LIMIT)
        limits = LIMITS[source]
        self._echo = TokenBucket(limits.echo_rate, limits.echo_burst) if limits else None
        self._keep = TokenBucket(limits.keep_rate, limits.keep_burst) if limits else None
        self._read = TokenBucket(limits.read_rate, limits.read_burst) if limits else None
        header = rf"\d{{4}}-\d\d-\d\d [\d:,]+ worker\[{re.escape(key)}\] [A-Z]+ "
        self._header = re.compile(header) if source == "worker" else _OWN_HEADER if source == "own" else None
        self._report: asyncio.TimerHandle | None = None
        self._paused: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        os.set_blocking(read_fd, False)
        self._loop.add_reader(read_fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        lines, dropped = self._cutter.feed(chunk, self._keep.take if self._keep else _always)
        if dropped:
            self._dropped(dropped, dropped)
        self._write(lines)
        if self._cutter.cut_bytes > self._reported_cut:
            self._dropped(0, 0)
        if self._read is not None:
            self._read.charge(len(chunk))
            if (wait := self._read.wait_s()) > 0:  # the child waits in its write(2), not we in a busy loop
                self._loop.remove_reader(self._fd)
                self._paused = self._loop.call_later(wait, self._resume)

    def _resume(self) -> None:
        self._paused = None
        if self._fd >= 0:
            self._loop.add_reader(self._fd, self._readable)

    def _write(self, lines: list[Line]) -> None:
        """Into the file (one write for the whole read), the ring, and as much as the echo's rate allows into
        our log. Line by line redacted, so that what `logs KEY` shows is redacted like everything else."""
        if not lines:
            return
        texts = []
        for raw, cut in lines:
            text = escape_controls(redact(raw.decode(errors="replace").rstrip()))
            if cut:
                text += f" [cut at {LINE_LIMIT} bytes]"
            texts.append(text)
            if text:
                self._line(text)
        self._file.write("".join(f"{text}\n" for text in texts).encode())

    def _line(self, text: str) -> None:
        self.lines.append(text)
        own = self._header is not None and self._header.match(text) is not None
        if not own:
            self.last_line = text[:LAST_LINE_CHARS]
        if self._echo is not None and not self._echo.take():
            self._dropped(1, 0)
            return
        if len(text) > ECHO_MAX_CHARS:
            text = f"{text[:ECHO_MAX_CHARS]}… [{len(text) - ECHO_MAX_CHARS} more characters in its log file]"
        if own:
            sys.stderr.write(f"{text}\n")
        elif self.source == "worker":
            sys.stderr.write(f"worker[{self.key}]| {text}\n")
        else:
            sys.stderr.write(f"{self.key}| {text}\n")

    def _dropped(self, lines: int, not_kept: int) -> None:
        self.not_echoed += lines
        self.not_kept += not_kept
        if self._report is None and self._fd >= 0:
            self._report = self._loop.call_later(REPORT_WINDOW_S, self.report)

    def report(self) -> None:
        """Say once what the last window left out of our log (called by the window's timer, and at close)."""
        self._report = None
        cut = self._cutter.cut_bytes - self._reported_cut
        if not (self.not_echoed or cut):
            return
        whose = "backend stderr" if self.source == "backend" else "stderr"
        parts = [f"{self.not_echoed} {whose} lines not echoed (rate limit)"] if self.not_echoed else []
        if self.not_kept:
            parts.append(f"{self.not_kept} of them not kept in its log file either")
        if cut:
            parts.append(f"{cut} bytes of {whose} lines over {LINE_LIMIT} bytes dropped")
        label = self.key if self.source == "own" else f"worker[{self.key}]"
        log.warning("%s: %s.", label, "; ".join(parts))
        self.not_echoed = self.not_kept = 0
        self._reported_cut = self._cutter.cut_bytes

    def close(self) -> None:
        if self._fd < 0:
            return
        rest = self._cutter.finish()
        if rest is not None:
            self._write([rest])
        for timer in (self._paused, self._report):
            if timer is not None:
                timer.cancel()
        self._paused = None
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1
        self.report()
        self._file.close()


def _always() -> bool:
    return True


def open_captures(
    key: str, read_fd: int, backend_fd: int | None, path: Path, source: Source
) -> tuple[StderrCapture, StderrCapture | None]:
    """The captures of a child's stderr and, for a worker with a stdio backend, of its backend's: one file."""
    file = RotatingFile(path)
    own = StderrCapture(key, read_fd, file, source)
    backend = StderrCapture(key, backend_fd, file.share(), "backend") if backend_fd is not None else None
    return own, backend
