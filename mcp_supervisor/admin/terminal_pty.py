"""One web-terminal shell on a real PTY, read without threads through the event loop (see `terminal.py`).

Each `Terminal` is a shell (`$SHELL`, else bash, else sh; `-i`) in its own session whose controlling terminal is
the PTY's slave side. Output is read from the master side with `loop.add_reader`, kept in a bounded backlog
(replayed to every new subscriber) and fanned out to subscribers. The shell's exit is noticed through a pidfd
(a poll where there is none). Closing hangs the terminal up as a closing window does (the master side is closed:
the kernel sends SIGHUP to the shell, which passes it to its jobs; an interactive shell ignores SIGTERM); after a
grace period, SIGKILL to every process left in the terminal's session.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import logging
import os
import signal
import struct
import subprocess
import termios
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import psutil

from mcp_supervisor.errors import SupervisorError

log = logging.getLogger("mcp_supervisor.admin.terminal")

BACKLOG_CHARS = 64 * 1024  # replayed to each new subscriber
SUBSCRIBER_QUEUE_LIMIT = 256  # chunks; a subscriber that stops reading loses its oldest chunks
MAX_PENDING_INPUT = 1024 * 1024  # bytes written but not yet accepted by the PTY
CLOSE_GRACE_S = 2.0  # after a hang-up (or a plain exit), how long until SIGKILL
EOF_WAIT_S = 0.5  # after the shell exits, how long its last output may take to reach the master side
# A session leader without a controlling terminal acquires the first terminal it opens: the shell's session gets
# the PTY as its controlling terminal (job control, Ctrl-C) without a preexec_fn, which is unsafe with threads.
_ACQUIRE_CTTY = ': <"$1" && exec "$0" -i'


class TerminalError(SupervisorError):
    """A terminal could not be started or used."""


def default_shell() -> str:
    for candidate in (os.environ.get("SHELL"), "/bin/bash", "/bin/sh"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return "/bin/sh"


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _session_members(sid: int) -> list[int]:
    """The live processes of session `sid`: everything started in the terminal that did not setsid."""
    members = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(pid) == sid and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                members.append(pid)
    return members


def _signal_session(sid: int, sig: signal.Signals) -> None:
    for pid in _session_members(sid):
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


class Terminal:
    def __init__(self, term_id: str, shell: str, cols: int, rows: int, on_exit: Callable[[Terminal], None]) -> None:
        self.id = term_id
        self.created_at = self.last_activity = time.time()
        self.exit_code: int | None = None
        self._on_exit = on_exit
        self._idle_since = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._backlog: deque[str] = deque()
        self._backlog_chars = 0
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self._pending = bytearray()
        self._done = asyncio.Event()
        self._eof = False
        self._close_task: asyncio.Task[None] | None = None
        self.sweep_task: asyncio.Task[None] | None = None  # ends the processes that outlived the shell
        self._hung_up = False
        self._watch_task: asyncio.Task[None] | None = None
        master, slave = os.openpty()
        try:
            _set_size(slave, cols, rows)
            env = {**os.environ, "TERM": "xterm-256color"}
            argv = ["/bin/sh", "-c", _ACQUIRE_CTTY, shell, os.ttyname(slave)]
            self._process = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.pid = self._process.pid
        self._fd = master
        os.set_blocking(master, False)
        self._loop.add_reader(master, self._on_readable)
        self._watch_exit()

    # Input and output.

    def write(self, data: str) -> None:
        self._check_open()
        if len(self._pending) + len(data) > MAX_PENDING_INPUT:
            raise TerminalError(f"Terminal {self.id} is not reading its input; {len(self._pending)} bytes wait.")
        self._touch()
        was_empty = not self._pending
        self._pending += data.encode("utf-8", errors="replace")
        if was_empty:
            self._flush()

    def resize(self, cols: int, rows: int) -> None:
        self._check_open()
        _set_size(self._fd, cols, rows)  # the kernel sends SIGWINCH to the foreground process group

    async def output(self, keepalive_s: float | None = None) -> AsyncIterator[str]:
        """The recent backlog, then output as it comes, until the shell exits. With `keepalive_s`, an empty
        string is yielded after that long without output (for streams that must write to notice a gone client)."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(SUBSCRIBER_QUEUE_LIMIT)
        backlog = "".join(self._backlog)
        self._subscribers.add(queue)
        try:
            if backlog:
                yield backlog
            if self._done.is_set():
                return
            while True:
                try:
                    chunk = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    chunk = ""
                if chunk is None:
                    return
                yield chunk
        finally:
            self._subscribers.discard(queue)

    async def wait(self) -> int:
        await self._done.wait()
        assert self.exit_code is not None
        return self.exit_code

    @property
    def closing(self) -> bool:
        return self._close_task is not None

    def idle_for(self) -> float:
        return time.monotonic() - self._idle_since

    def info(self) -> dict[str, Any]:
        return {"termId": self.id, "pid": self.pid, "createdAt": self.created_at, "lastActivity": self.last_activity}

    async def close(self) -> None:
        """Hang up, SIGKILL to the session after a grace period; returns once the shell is reaped and the
        processes that outlived it are gone."""
        if self._close_task is None:
            self._close_task = asyncio.create_task(self._terminate())
        await asyncio.shield(self._close_task)

    # Internals.

    def _check_open(self) -> None:
        if self._fd < 0:
            raise TerminalError(f"Terminal {self.id} has exited or is closing.")

    def _release_fd(self) -> None:
        """Stop watching the master side and close it. While the shell runs, this hangs the terminal up: the
        session gets SIGHUP and its readers EOF (a shell that deferred a SIGHUP while starting still exits)."""
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._eof = True

    def _touch(self) -> None:
        self._idle_since = time.monotonic()
        self.last_activity = time.time()

    def _flush(self) -> None:
        try:
            written = os.write(self._fd, self._pending)
        except BlockingIOError:
            written = 0
        except OSError:  # the shell is gone; its exit is reported by the watcher
            written = len(self._pending)
        del self._pending[:written]
        if self._pending:
            self._loop.add_writer(self._fd, self._flush)
        else:
            self._loop.remove_writer(self._fd)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: no process holds the slave side any more
            data = b""
        if data:
            self._emit(self._decoder.decode(data))
            return
        self._eof = True
        self._loop.remove_reader(self._fd)
        if self._process.returncode is not None:
            self._finish()

    def _emit(self, text: str) -> None:
        if not text:
            return
        self._touch()
        self._backlog.append(text)
        self._backlog_chars += len(text)
        while self._backlog_chars - len(self._backlog[0]) >= BACKLOG_CHARS:
            self._backlog_chars -= len(self._backlog.popleft())
        self._push(text)

    def _push(self, item: str | None) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # this subscriber stopped reading: it loses its oldest chunk
            queue.put_nowait(item)

    def _watch_exit(self) -> None:
        try:
            pidfd = os.pidfd_open(self.pid)  # readable once the process has exited
        except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll
            self._watch_task = asyncio.create_task(self._poll_exit())
            return
        self._loop.add_reader(pidfd, self._exited, pidfd)

    async def _poll_exit(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            if self._process.poll() is not None:
                return self._exited(None)

    def _exited(self, pidfd: int | None) -> None:
        if pidfd is not None:
            self._loop.remove_reader(pidfd)
            os.close(pidfd)
        self._process.wait()  # reaps it (it has exited)
        if self._eof:
            self._finish()
        else:  # the last output may still be on its way through the line discipline
            self._loop.call_later(EOF_WAIT_S, self._finish)

    def _finish(self) -> None:
        if self.exit_code is not None:
            return
        self.exit_code = self._process.returncode
        self._release_fd()
        self._emit(self._decoder.decode(b"", final=True))
        self.sweep_task = asyncio.create_task(self._sweep())
        self._push(None)
        self._done.set()
        log.info("terminal %s (pid %d) exited with code %s", self.id, self.pid, self.exit_code)
        self._on_exit(self)

    async def _terminate(self) -> None:
        if not self._done.is_set():
            # A hang-up, as when a terminal window closes: the kernel sends SIGHUP to the shell, which passes it to
            # its jobs, once. Signalling them ourselves too could cut short the exit traps they run (lock files).
            self._hung_up = True
            self._release_fd()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), CLOSE_GRACE_S)
        if not self._done.is_set():
            _signal_session(self.pid, signal.SIGKILL)
            try:  # SIGKILL cannot be ignored: the watcher reports the exit
                await asyncio.wait_for(self._done.wait(), 5.0)
            except TimeoutError:
                log.warning("terminal %s: the shell (pid %d) survived SIGKILL", self.id, self.pid)
        if self.sweep_task is not None:
            await self.sweep_task

    async def _sweep(self) -> None:
        """What outlived the shell (background jobs, commands still running their exit traps) gets CLOSE_GRACE_S
        to end, then SIGKILL. After a plain `exit`, nothing was hung up: the survivors of that moment get one
        SIGHUP first (never processes that appear later: an exit trap's own `rm` must not be killed)."""
        members = _session_members(self.pid)
        if members and not self._hung_up:
            for sig in (signal.SIGHUP, signal.SIGCONT):  # stopped jobs must run to die of the SIGHUP
                for pid in members:
                    with contextlib.suppress(OSError):
                        os.kill(pid, sig)
        deadline = self._loop.time() + CLOSE_GRACE_S
        while members and self._loop.time() < deadline:
            await asyncio.sleep(0.05)
            members = _session_members(self.pid)
        if members:
            _signal_session(self.pid, signal.SIGKILL)
