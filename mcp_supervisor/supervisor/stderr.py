"""Per-worker stderr capture: a pipe read by the supervisor's loop, into a rotating file and a ring of lines.

The worker's stderr carries the backend's stderr too (stdio backends inherit it), so the last line the
backend wrote (typically why it failed) is known and shown by `status`, `/health/backends` and errors.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import sys
from pathlib import Path

from mcp_supervisor.redaction import redact

MAX_FILE_BYTES = 1024 * 1024
KEEP_FILES = 3
RING_LINES = 200
# Our own log lines ("2026-… worker[key] LEVEL …", the gateway's and uvicorn's) are not a backend's words.
_OWN_LOG_LINE = re.compile(rb"^(\d{4}-\d\d-\d\d [\d:,]+ (worker\[|gateway )|(INFO|WARNING|ERROR|DEBUG):  )")


class RotatingFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "ab")  # noqa: SIM115 - kept open for the capture's lifetime

    def write(self, data: bytes) -> None:
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
        self._handle.close()


class StderrCapture:
    """Reads one child's stderr pipe until EOF (which may come after the child died: its backend holds it)."""

    def __init__(self, key: str, read_fd: int, log_file: Path, echo: bool = True) -> None:
        self.key = key
        self.lines: collections.deque[str] = collections.deque(maxlen=RING_LINES)
        self.last_line: str | None = None
        self._fd = read_fd
        self._file = RotatingFile(log_file)
        self._echo = echo
        self._partial = b""
        os.set_blocking(read_fd, False)
        asyncio.get_running_loop().add_reader(read_fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            self._line(raw)

    def _line(self, raw: bytes) -> None:
        # Line by line into the file too, so that what `logs KEY` shows is redacted like everything else.
        text = redact(raw.decode(errors="replace").rstrip())
        self._file.write(text.encode() + b"\n")
        if not text:
            return
        self.lines.append(text)
        own = bool(_OWN_LOG_LINE.match(raw))
        if not own:
            self.last_line = text[:500]
        if self._echo:
            sys.stderr.write(f"{text}\n" if own else f"{self.key}| {text}\n")

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._partial:
            self._line(self._partial)
            self._partial = b""
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1
        self._file.close()
