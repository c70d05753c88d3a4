"""The supervisor's side of the worker zygote (the zygote itself is `worker/zygote.py`).

The zygote is a child of the supervisor like the gateway: spawned in its own session, reaped on SIGCHLD, and
restarted under the restart policy when it crashes (workers it forked are not its children and live on). While
it is down, starting or found unsafe, workers are spawned as before; `status` says which and why.

A fork request blocks the supervisor's loop for the fork's duration (about a millisecond), bounded by a socket
timeout. Being synchronous is what makes it safe: the worker's pid is recorded before the loop can run the
SIGCHLD reaper or an orphan sweep, which would otherwise see an unknown child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping

from mcp_supervisor.protocol.spawn import ZYGOTE_FD_ENV, ZYGOTE_FORK
from mcp_supervisor.supervisor.policy import RestartPolicy
from mcp_supervisor.supervisor.process import ChildProcess, describe_exit

log = logging.getLogger("mcp_supervisor.supervisor")

READY_TIMEOUT_S = 10.0
FORK_TIMEOUT_S = 5.0


class ZygoteError(Exception):
    pass


def fork_unsupported() -> str | None:
    """Why this platform cannot run a zygote, or None."""
    if not sys.platform.startswith("linux"):
        return f"forking workers is only supported on Linux, not {sys.platform}"
    if not hasattr(socket, "send_fds") or not hasattr(os, "fork"):
        return "this Python lacks os.fork or socket.send_fds"
    return None


class Zygote:
    def __init__(self, policy: RestartPolicy, output: Callable[[int], None]) -> None:
        """`output(read_fd)` takes over the read end of the zygote's stderr pipe (a StderrCapture)."""
        self.policy = policy
        self._output = output
        self.child: ChildProcess | None = None
        self._sock: socket.socket | None = None
        self.ready = False
        # Why workers are spawned rather than forked (empty while forking works).
        self.reason = "the zygote is starting"
        self.disabled = False  # for good: unsafe, unsupported, or too many crashes
        self.restarts = 0
        self.timer: asyncio.TimerHandle | None = None
        self._ready_waiter: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None and self.child.alive else None

    def describe(self) -> str:
        if self.ready and self.pid is not None:
            return f"fork (zygote pid {self.pid}, {self.restarts} restart(s))"
        return f"spawn: {self.reason}"

    def disable(self, reason: str) -> None:
        self.disabled = True
        self.ready = False
        self.reason = reason
        log.warning("Workers are spawned, not forked: %s.", reason)

    def start(self, env: Mapping[str, str]) -> None:
        if self.disabled:
            return
        self.timer = None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        read_fd, write_fd = os.pipe()
        argv = [sys.executable, "-m", "mcp_supervisor", "zygote"]
        try:
            self.child = ChildProcess(argv, {**env, ZYGOTE_FD_ENV: str(theirs.fileno())}, write_fd, (theirs.fileno(),))
        except OSError as exc:
            ours.close()
            os.close(read_fd)
            self.disable(f"the zygote cannot be spawned ({exc})")
            return
        finally:
            theirs.close()
        self._output(read_fd)
        self._sock = ours
        self.ready = False
        self.reason = "the zygote is starting"
        loop = asyncio.get_running_loop()
        self._ready_waiter = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_hello)
        log.info("Started the worker zygote (pid %d).", self.child.pid)

    def _on_hello(self) -> None:
        sock = self._sock
        if sock is None:
            return
        asyncio.get_running_loop().remove_reader(sock.fileno())
        try:
            hello = sock.recv(4096)
        except OSError as exc:
            hello = f"unsafe its socket failed ({exc})".encode()
        if hello == b"ready":
            self.ready = True
            self.reason = ""
            log.info("The worker zygote (pid %s) is ready: workers are forked.", self.pid)
        elif hello.startswith(b"unsafe "):
            self.disable(hello[len(b"unsafe ") :].decode(errors="replace"))
        else:
            self.reason = "the zygote closed its socket before it was ready"
        if self._ready_waiter is not None and not self._ready_waiter.done():
            self._ready_waiter.set_result(None)

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        if self._ready_waiter is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._ready_waiter), timeout)
            except TimeoutError:
                log.warning("The worker zygote was not ready within %g s: spawning workers meanwhile.", timeout)

    def fork(self, output_fd: int, handoff_fd: int) -> int:
        """The pid of a new worker whose stdout/stderr is `output_fd` and whose handoff is `handoff_fd` (both
        stay the caller's to close). Raises ZygoteError; the zygote is then killed (and restarted on its exit)."""
        sock = self._sock
        if not self.ready or sock is None:
            raise ZygoteError(self.reason)
        try:
            sock.settimeout(FORK_TIMEOUT_S)
            socket.send_fds(sock, [ZYGOTE_FORK], [output_fd, handoff_fd])
            reply = sock.recv(4096)
        except OSError as exc:
            self._broken(f"the fork request failed ({exc})")
            raise ZygoteError(self.reason) from None
        if not reply.startswith(b"pid ") or not reply[4:].isdigit():
            detail = reply.decode(errors="replace") or "the zygote closed its socket"
            self._broken(f"the zygote could not fork a worker ({detail})")
            raise ZygoteError(self.reason)
        return int(reply[4:])

    def fork_many(self, requests: list[tuple[int, int]]) -> list[int | None]:
        """`fork` for many workers at once: all requests sent, then all replies read (in order). None where a
        worker was not forked (the zygote is then killed and restarted; the caller spawns that one)."""
        sock = self._sock
        pids: list[int | None] = [None] * len(requests)
        if not self.ready or sock is None:
            return pids
        sent = 0
        try:
            sock.settimeout(FORK_TIMEOUT_S)
            for output_fd, handoff_fd in requests:
                socket.send_fds(sock, [ZYGOTE_FORK], [output_fd, handoff_fd])
                sent += 1
            for index in range(sent):
                reply = sock.recv(4096)
                if not reply.startswith(b"pid ") or not reply[4:].isdigit():
                    detail = reply.decode(errors="replace") or "the zygote closed its socket"
                    self._broken(f"the zygote could not fork a worker ({detail})")
                    break
                pids[index] = int(reply[4:])
        except OSError as exc:
            self._broken(f"the fork request failed ({exc})")
        return pids

    def _broken(self, reason: str) -> None:
        self.ready = False
        self.reason = reason
        log.error("Worker zygote: %s; killing it.", reason)
        if self.child is not None:
            self.child.signal_group(signal.SIGKILL)

    def on_exit(self, code: int) -> float | None:
        """The zygote exited (reaped by the supervisor). Returns the delay before its restart, or None."""
        if self.child is not None:
            self.child.mark_exited(code)
        self._close_socket()
        was_ready = self.ready
        self.ready = False
        if self.disabled:
            return None
        self.reason = f"the zygote exited ({describe_exit(code)}){'' if was_ready else ' before it was ready'}"
        log.warning("Worker zygote %s; workers are spawned until it is back.", self.reason[len("the zygote ") :])
        decision = self.policy.on_crash(self.child.started_at if self.child else time.monotonic())
        if decision.fatal:
            self.disable(f"the zygote crashed too often ({decision.reason})")
            return None
        self.restarts += 1
        return decision.delay_s

    def _close_socket(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    async def stop(self, grace_s: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.disabled = True
        self.ready = False
        self._close_socket()  # EOF: the zygote exits on its own
        if self.child is not None and self.child.alive:
            await self.child.stop(grace_s)
