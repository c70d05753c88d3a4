"""Watching the config directory for changes, robust to how files get replaced.

Editors save by rename, Kubernetes swaps a `..data` symlink, scripts write in several steps: so any event in
the directory (debounced) only triggers a re-read, and what counts is whether a file's bytes changed since they
were last applied.

On Linux the directory is watched with inotify straight from the event loop: its fd is readable when something
happened, so an idle watch wakes nobody. watchfiles (the fallback elsewhere) polls from a thread that takes the
GIL every `step` (50 ms here: twenty wake-ups a second, forever, in the supervisor).
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import logging
import os
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import watchfiles

from mcp_supervisor.config.clients import CLIENTS_FILE
from mcp_supervisor.config.loader import SERVERS_FILE, TOOLS_FILE

log = logging.getLogger("mcp_supervisor.supervisor")

WATCHED = (SERVERS_FILE, TOOLS_FILE, CLIENTS_FILE)


def fingerprint(path: Path) -> str:
    """A digest of the file's bytes through any symlinks; '' when it is missing or unreadable."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _relevant(change: watchfiles.Change | None, path: str) -> bool:
    name = Path(path).name
    # Our own files and editor droppings never matter; everything else may be part of a swap.
    return not (name.endswith((".log", ".swp", "~")) or name == ".session_secret")


async def watch_config(config_dir: Path, on_change: Callable[[str], Awaitable[None]], debounce_ms: int = 300) -> None:
    """Call `on_change(file_name)` for each watched file whose contents changed.

    The directory itself may go away and come back (a volume remounted, `rm -rf` and a fresh checkout): a watch
    ends with the directory it was put on, so the loop notices, waits for a directory of that name again, looks
    at what changed meanwhile and watches the new one.
    """
    seen = {name: fingerprint(config_dir / name) for name in WATCHED}

    async def look() -> None:
        for name in WATCHED:
            current = fingerprint(config_dir / name)
            if current != seen[name]:
                seen[name] = current
                log.info("%s changed on disk.", name)
                await on_change(name)

    while True:
        watched = await _directory_back(config_dir)
        await look()
        try:
            batches: AsyncIterator[object]
            if _inotify is not None:
                batches = _inotify_batches(config_dir, debounce_ms)
            else:
                batches = watchfiles.awatch(
                    config_dir, watch_filter=_relevant, debounce=debounce_ms, step=50, recursive=True
                )
            async for _changes in batches:
                await look()
                if _identity(config_dir) != watched:
                    break
        except (FileNotFoundError, RuntimeError, OSError) as exc:  # the watcher's own end when its root vanished
            log.debug("The watch on %s ended: %s", config_dir, exc)
        if _identity(config_dir) is None:
            log.warning("The config directory %s is gone; the running config stays until it is back.", config_dir)


# inotify(7): the events that can mean a watched file changed, and those that end the watch.
_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x2, 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_IGNORED, _IN_Q_OVERFLOW = 0x400, 0x800, 0x8000, 0x4000
_IN_ONLYDIR, _IN_NONBLOCK, _IN_CLOEXEC = 0x0100_0000, 0o4000, 0o2000000
_WATCH_MASK = (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE) | (
    _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR
)
_ENDED = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of NUL-padded name)
# After a relevant event, the batch is handed over once nothing more happened for this long (a rename, a
# multi-step write), or at the latest after `debounce_ms`.
_QUIET_S = 0.05


def _load_inotify() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = (ctypes.c_int,)
        libc.inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
    except (OSError, AttributeError):
        return None
    return libc


_inotify = _load_inotify()


async def _inotify_batches(directory: Path, debounce_ms: int) -> AsyncIterator[None]:
    """One item per debounced batch of relevant events in `directory` (not recursive: what is swapped, renamed
    or written is an entry of the directory itself); ends when the directory is deleted or moved away."""
    assert _inotify is not None
    fd = _inotify.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"inotify_init1: {os.strerror(ctypes.get_errno())}")
    loop = asyncio.get_running_loop()
    batches: asyncio.Queue[bool] = asyncio.Queue()  # True: a batch; False: the watch ended
    timer: asyncio.TimerHandle | None = None
    first = 0.0

    def hand_over() -> None:
        nonlocal timer
        timer = None
        batches.put_nowait(True)

    def readable() -> None:
        nonlocal timer, first
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        relevant = ended = False
        offset = 0
        while offset + _EVENT.size <= len(data):
            _, mask, _, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            ended = ended or bool(mask & _ENDED)
            relevant = relevant or bool(mask & _IN_Q_OVERFLOW) or _relevant(None, os.fsdecode(name))
        if relevant:
            now = loop.time()
            if timer is None:
                first = now
            else:
                timer.cancel()
            timer = loop.call_at(min(now + _QUIET_S, first + debounce_ms / 1000), hand_over)
        if ended:
            batches.put_nowait(False)

    try:
        if _inotify.inotify_add_watch(fd, os.fsencode(directory), _WATCH_MASK) < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"inotify_add_watch {directory}: {os.strerror(errno)}")
        loop.add_reader(fd, readable)
        while await batches.get():
            yield None
    finally:
        if timer is not None:
            timer.cancel()
        loop.remove_reader(fd)
        os.close(fd)


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        info = directory.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


async def _directory_back(directory: Path, interval_s: float = 0.5) -> tuple[int, int]:
    """The directory's identity, once it exists (polling: nothing can be watched for in a missing directory)."""
    while True:
        identity = _identity(directory)
        if identity is not None:
            return identity
        await asyncio.sleep(interval_s)
