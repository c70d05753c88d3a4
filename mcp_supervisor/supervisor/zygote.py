"""The supervisor's side of the worker zygote (the zygote itself is `worker/zygote.py`).

The zygote is a child of the supervisor like the gateway: spawned in its own session, reaped on SIGCHLD, and
restarted under the restart policy when it crashes (workers it forked are not its children and live on). While
it is down, starting or found unsafe, workers are spawned as before; `status` says which and why.

Fork requests are asynchronous: `request` sends one (or queues it while the socket is full) and returns; the
reply, the worker's pid, is read by the loop's reader callback and handed to the request's `done`. Waiting for
replies on the loop (as it once did, in chunks, with a 5 s timeout) held the supervisor for as long as the
zygote's forked intermediates waited for a CPU: on a loaded machine that timed out, killed a zygote that was
only slow, and left forked workers nobody knew. Meanwhile the supervisor must treat an unknown child as
possibly a worker whose reply is on its way (see `Children.forked`): it keeps such a child's exit status and
sweeps no orphans while any request is pending. A zygote that answers nothing for FORK_TIMEOUT_S is killed;
its pending requests fail (`done(None)`) and those workers are spawned instead.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mcp_supervisor.protocol.spawn import OWN_CHILD, ZYGOTE_FD_ENV, ZYGOTE_FORK
from mcp_supervisor.supervisor.process import ChildProcess, describe_exit
from mcp_supervisor.supervisor.restart_policy import RestartPolicy

log = logging.getLogger("mcp_supervisor.supervisor")

READY_TIMEOUT_S = 10.0
# No answer to any pending fork request for this long: the zygote is hung (a busy one answers well within it).
FORK_TIMEOUT_S = 10.0

ForkDone = Callable[[int | None], None]


@dataclass
class _Request:
    fds: tuple[int, ...]  # the worker's output pipe, its handoff, and maybe its backend's stderr pipe
    done: ForkDone

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)


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
        self._queued: collections.deque[_Request] = collections.deque()  # not sent yet: the socket was full
        self._sent: collections.deque[ForkDone] = collections.deque()  # sent, awaiting their replies in order
        self._writing = False
        self._progress = 0.0  # monotonic time of the last reply (or of the first pending request)

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

    def start(self, env: Mapping[str, str], worker_fds: Mapping[str, int] | None = None) -> None:
        """`worker_fds`: environment name -> fd of what the zygote keeps for the workers it forks."""
        if self.disabled:
            return
        self.timer = None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        read_fd, write_fd = os.pipe()
        argv = [sys.executable, *OWN_CHILD, "zygote"]
        extra = dict(worker_fds or {})
        child_env = {**env, ZYGOTE_FD_ENV: str(theirs.fileno()), **{name: str(fd) for name, fd in extra.items()}}
        try:
            self.child = ChildProcess(argv, child_env, write_fd, (theirs.fileno(), *extra.values()))
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
            sock.setblocking(False)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._on_replies)
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

    @property
    def pending(self) -> int:
        """Fork requests not answered yet."""
        return len(self._queued) + len(self._sent)

    def request(self, fds: tuple[int, ...], done: ForkDone) -> None:
        """Ask for a worker whose stdout/stderr is `fds[0]`, whose handoff is `fds[1]` and whose backend's stderr
        is `fds[2]` if there is one (all the zygote's to close from now on). `done(pid)` once it is forked,
        `done(None)` if it was not (then spawn it): never before this returns. Only while `ready`."""
        if not self.pending:
            self._progress = time.monotonic()
        self._queued.append(_Request(fds, done))
        if not self.ready or self._sock is None:
            asyncio.get_running_loop().call_soon(self._fail_pending)
            return
        self._flush()

    def _flush(self) -> None:
        sock = self._sock
        while self._queued and sock is not None:
            request = self._queued[0]
            try:
                socket.send_fds(sock, [ZYGOTE_FORK], list(request.fds))
            except BlockingIOError:
                if not self._writing:
                    asyncio.get_running_loop().add_writer(sock.fileno(), self._flush)
                    self._writing = True
                return
            except OSError as exc:
                self._broken(f"the fork request failed ({exc})")  # the requests fail when it has exited
                return
            self._queued.popleft()
            request.close()  # the message carries its own copies
            self._sent.append(request.done)
        if self._writing and sock is not None:
            asyncio.get_running_loop().remove_writer(sock.fileno())
            self._writing = False

    def _on_replies(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                reply = sock.recv(4096)
            except BlockingIOError:
                return
            except OSError as exc:
                self._broken(f"its socket failed ({exc})")
                return
            if not reply:
                asyncio.get_running_loop().remove_reader(sock.fileno())
                if self.ready:
                    self._broken("the zygote closed its socket")
                return
            self._progress = time.monotonic()
            if not self._sent:
                log.warning("Worker zygote: an answer to no request (%r); ignored.", reply[:80])
                continue
            done = self._sent.popleft()
            if reply.startswith(b"pid ") and reply[4:].isdigit():
                done(int(reply[4:]))
            else:
                self._broken(f"the zygote could not fork a worker ({reply.decode(errors='replace')})")
                done(None)

    def check(self, now: float) -> None:
        """The watchdog's tick: a zygote that has answered no pending request for FORK_TIMEOUT_S is hung."""
        if self.pending and self.ready and now - self._progress > FORK_TIMEOUT_S:
            self._broken(f"no answer to a fork request for {FORK_TIMEOUT_S:g} s")

    def _fail_pending(self) -> None:
        """Every request not answered (the zygote is gone or unusable): `done(None)`, so they get spawned."""
        sent, queued = list(self._sent), list(self._queued)
        self._sent.clear()
        self._queued.clear()
        for request in queued:
            request.close()
        for done in [*sent, *(request.done for request in queued)]:
            done(None)

    def _broken(self, reason: str) -> None:
        self.ready = False
        self.reason = reason
        log.error("Worker zygote: %s; killing it.", reason)
        if self.child is not None:
            self.child.signal_group(signal.SIGKILL)

    def on_exit(self, code: int) -> float | None:
        """The zygote exited (reaped by the supervisor). Returns the delay before its restart, or None.
        Answers it sent before it died are still read; the requests left fail (`done(None)`)."""
        if self.child is not None:
            self.child.mark_exited(code)
        was_ready = self.ready
        self.ready = False  # first: a request that fails below is spawned, not sent here again
        self._on_replies()
        self._close_socket()
        self._fail_pending()
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
                loop = asyncio.get_running_loop()
                loop.remove_reader(self._sock.fileno())
                loop.remove_writer(self._sock.fileno())
            self._writing = False
            self._sock.close()
            self._sock = None

    async def stop(self, grace_s: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.disabled = True
        self.ready = False
        self._close_socket()  # EOF: the zygote exits on its own
        self._fail_pending()
        if self.child is not None and self.child.alive:
            await self.child.stop(grace_s)
