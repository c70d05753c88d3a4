"""The zygote: a process with the worker's modules imported that forks each worker, copy-on-write.

Design: docs/architecture.md, "The zygote".
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import gc
import logging
import os
import re
import signal
import socket
import sys
import time
import traceback

from mcp_supervisor.protocol.exit_codes import EXIT_FAILURE
from mcp_supervisor.protocol.spawn import (
    BACKEND_STDERR_FD_ENV,
    HANDOFF_FD_ENV,
    REPORT_FD_ENV,
    ZYGOTE_FD_ENV,
    ZYGOTE_FORK,
)
from mcp_supervisor.system.process_tree import PARENT_PID_ENV, die_with_parent, set_title

# What a worker imports at run time, imported here once so that forked workers share it.
from mcp_supervisor.worker import main as worker_main
from mcp_supervisor.worker import stdio_connection as _stdio_connection  # noqa: F401

log = logging.getLogger("mcp_supervisor.zygote")

# The fd a forked worker finds its handoff memfd at (0, 1, 2 are stdin and the capture pipe).
CHILD_HANDOFF_FD = 3
# ... and the report eventfd every worker shares (protocol/beat_page.py), when the supervisor gave us one.
CHILD_REPORT_FD = 4
# ... and the write end of its backend's stderr pipe, when it has a stdio backend.
CHILD_BACKEND_STDERR_FD = 5
_report_fd: int | None = None
REPARENT_TIMEOUT_S = 5.0


def fork_unsafe_reason() -> str | None:
    """Why forking this process would be unsafe, or None."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        threads = threading.active_count()
    if threads > 1:
        return f"the zygote runs {threads} threads after its imports (forking a threaded process is unsafe)"
    return None


def _preload() -> None:
    """Modules the worker imports lazily, and the caches it fills on first use (msgspec's type information of
    the spec and the messages), loaded before the freeze so that they are shared; then a rehearsal of a
    worker's start-up, so that the code it runs is already quickened (worker/rehearsal.py)."""
    import asyncio.base_subprocess
    import asyncio.unix_events  # noqa: F401

    import msgspec
    import zmq.asyncio  # noqa: F401

    from mcp_supervisor.protocol import codec
    from mcp_supervisor.protocol.messages import WorkerHeartbeat
    from mcp_supervisor.protocol.spawn import WorkerSpec
    from mcp_supervisor.worker.rehearsal import rehearse

    # The workers' event loop, shared by them all (a worker imports it otherwise: ~4 ms and 1.5 MB each). Not
    # Settings: the supervisor set this variable from Settings.event_loop in the zygote's spawn environment.
    if os.environ.get("MCP_SUPERVISOR_EVENT_LOOP") == "uvloop":
        from mcp_supervisor import event_loop

        event_loop.loop_factory("uvloop")  # imports uvloop, makes the loop class

    with contextlib.suppress(msgspec.ValidationError):
        msgspec.json.decode(b"{}", type=WorkerSpec)
    codec.encode(WorkerHeartbeat(key="", generation=0))
    rehearse()  # a worker's start-up, run once here (worker/rehearsal.py)


# Objects that fill the free blocks of the allocator's partly used pools before the fork (never touched again).
_PADDING: list[object] = []
_SIZE_CLASS = re.compile(rb"^\s*\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s*$", re.MULTILINE)


def _fill_allocator_holes() -> list[object]:
    """CPython's small-object allocator hands out the free blocks of partly used pools first: after the imports
    those are holes scattered over the shared pages, so every worker's first allocations would copy a page per
    hole. Filled here with objects of each size class (as many as `sys._debugmallocstats()` counts free), a
    worker's new objects go to fresh pools instead, packed into pages of their own. Costs the zygote a few
    hundred kB, shared."""
    debug_stats = getattr(sys, "_debugmallocstats", None)
    if debug_stats is None:
        return []
    read_end, write_end = os.pipe()
    saved = os.dup(2)
    try:
        os.dup2(write_end, 2)  # the statistics go to the C stderr
        debug_stats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write_end)
    with os.fdopen(read_end, "rb") as stats:
        text = stats.read()
    padding: list[object] = []
    empty_bytes = sys.getsizeof(b"")
    for size_text, free_text in _SIZE_CLASS.findall(text.split(b"# arenas")[0]):
        size, free = int(size_text), int(free_text)
        if size <= 16:
            padding.extend(object() for _ in range(free))
        elif size <= 32:
            padding.extend(float(index) + 0.5 for index in range(free))
        else:  # a bytes object of this many bytes in all: the largest that still fits the class
            padding.extend(bytes(size - empty_bytes) for _ in range(free))
    return padding


def main() -> int:
    raw = os.environ.pop(ZYGOTE_FD_ENV, "")
    if not raw.isdigit():
        raise SystemExit(f"{ZYGOTE_FD_ENV} is not set: the zygote is started by `mcp-supervisor start`.")
    die_with_parent()  # the zygote is the supervisor's own child
    set_title("mcp-supervisor: zygote")
    # Not Settings: the zygote reads only its spawn environment, which the supervisor set from Settings.log_level.
    logging.basicConfig(
        level=os.environ.get("MCP_SUPERVISOR_LOG_LEVEL", "INFO"),
        format="%(asctime)s zygote %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    global _report_fd
    report = os.environ.pop(REPORT_FD_ENV, "")
    _report_fd = int(report) if report.isdigit() else None
    sock = socket.socket(fileno=int(raw))
    _preload()
    gc.disable()  # no collection between the freeze and a fork: it would dirty the pages to be shared
    gc.collect()
    for _ in range(2):  # the second pass fills what the first one freed (its own list growing, temporaries)
        _PADDING.extend(_fill_allocator_holes())
    gc.freeze()
    reason = fork_unsafe_reason()
    if reason is not None:
        log.warning("Not forking workers: %s.", reason)
        sock.send(b"unsafe " + reason.encode())
        return 0
    # Intermediate children are reaped by the kernel: a reply never waits for one's exit.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    sock.send(b"ready")
    while True:
        try:
            batch, eof = _requests(sock)
        except OSError as exc:
            log.error("The supervisor's socket failed: %s", exc)
            return EXIT_FAILURE
        sys.stdout.flush()
        sys.stderr.flush()
        # Every intermediate is forked first, then their answers collected: the forks of a batch overlap
        # instead of each waiting for its intermediate to be scheduled on a busy machine.
        started: list[int | bytes] = []
        for message, fds in batch:
            try:
                if message != ZYGOTE_FORK or len(fds) not in (2, 3):
                    started.append(b"error a fork request carries the word fork and two or three fds")
                else:
                    started.append(_start_fork(sock, fds))
            except OSError as exc:
                started.append(f"error {exc}".encode())
            finally:
                for fd in fds:
                    os.close(fd)
        for item in started:
            reply = item if isinstance(item, bytes) else _collect(item)
            if not eof:
                sock.send(reply)
        if eof:
            return 0  # the supervisor closed its end: stopping


def _requests(sock: socket.socket) -> tuple[list[tuple[bytes, list[int]]], bool]:
    """The next request (blocking) and whatever others are already queued, and whether the supervisor closed
    its end (an empty message)."""
    batch: list[tuple[bytes, list[int]]] = []
    flags = 0
    while len(batch) < 64:
        try:
            message, fds = _recv_fds(sock, flags)
        except BlockingIOError:
            break
        if not message:
            for fd in fds:
                os.close(fd)
            return batch, True
        batch.append((message, fds))
        flags = socket.MSG_DONTWAIT
    return batch, False


def _recv_fds(sock: socket.socket, flags: int) -> tuple[bytes, list[int]]:
    """socket.recv_fds with its flags honoured (Python 3.11's drops them, so MSG_DONTWAIT would block)."""
    size = array.array("i").itemsize
    message, ancillary, _, _ = sock.recvmsg(64, socket.CMSG_LEN(3 * size), flags)
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(data[: len(data) - (len(data) % size)])
            fds.extend(received)
    return message, fds


def _start_fork(sock: socket.socket, fds: list[int]) -> int:
    """Double fork; returns the pipe on which the intermediate writes the worker's pid, then exits at once
    (the worker waits for its reparenting itself)."""
    read_end, write_end = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        code = 1
        try:
            os.close(read_end)
            worker = os.fork()
            if worker == 0:
                os.close(write_end)
                _become_worker(sock, fds)  # never returns
            os.write(write_end, b"%d\n" % worker)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return read_end


def _collect(read_end: int) -> bytes:
    """The reply for one fork: `pid N`, or an error."""
    try:
        reply = b""
        while not reply.endswith(b"\n") and (chunk := os.read(read_end, 32)):
            reply += chunk
    except OSError as exc:
        return f"error {exc}".encode()
    finally:
        os.close(read_end)
    reply = reply.strip()
    return b"pid " + reply if reply.isdigit() else b"error the intermediate child failed to fork the worker"


def _become_worker(sock: socket.socket, fds: list[int]) -> None:
    code: int = 1
    try:
        sock.close()
        os.setsid()  # its own session and process group, as a spawned worker (the supervisor signals the group)
        # Out of the way of the dups below first (whatever number each has, it may be one of their targets).
        output_fd, handoff_fd, *backend = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in fds)
        report = fcntl.fcntl(_report_fd, fcntl.F_DUPFD, 10) if _report_fd is not None else None
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.dup2(handoff_fd, CHILD_HANDOFF_FD)
        keep = {0, 1, 2, CHILD_HANDOFF_FD}
        placed = [(report, CHILD_REPORT_FD, REPORT_FD_ENV)]
        if backend:
            placed.append((backend[0], CHILD_BACKEND_STDERR_FD, BACKEND_STDERR_FD_ENV))
        for fd, target, name in placed:
            if fd is not None:
                os.dup2(fd, target)
                os.environ[name] = str(target)
                keep.add(target)
        for entry in os.listdir("/proc/self/fd"):
            if int(entry) not in keep:
                with contextlib.suppress(OSError):
                    os.close(int(entry))
        os.environ[HANDOFF_FD_ENV] = str(CHILD_HANDOFF_FD)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        gc.enable()
        # The parent-death signal is about the *current* parent: set it (worker_main does) only once we are
        # the supervisor's, not while the intermediate that is about to exit is still our parent.
        supervisor = int(os.environ.get(PARENT_PID_ENV) or 0)  # the spawn environment, not a setting
        deadline = time.monotonic() + REPARENT_TIMEOUT_S
        while supervisor and os.getppid() != supervisor:
            if os.getppid() == 1 or time.monotonic() > deadline:
                raise SystemExit(f"The forked worker was not reparented to the supervisor (pid {supervisor}).")
            time.sleep(0.001)
        logging.root.handlers.clear()  # the worker configures its own (its key in every line)
        code = worker_main.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_FAILURE
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
