"""Watching the config directory for changes, robust to how files get replaced.

Editors save by rename, Kubernetes swaps a `..data` symlink, scripts write in several steps: so any event in
the directory (debounced by watchfiles) only triggers a re-read, and what counts is whether a file's bytes
changed since they were last applied.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
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


def _relevant(change: watchfiles.Change, path: str) -> bool:
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
            async for _changes in watchfiles.awatch(
                config_dir, watch_filter=_relevant, debounce=debounce_ms, step=50, recursive=True
            ):
                await look()
                if _identity(config_dir) != watched:
                    break
        except (FileNotFoundError, RuntimeError, OSError) as exc:  # the watcher's own end when its root vanished
            log.debug("The watch on %s ended: %s", config_dir, exc)
        if _identity(config_dir) is None:
            log.warning("The config directory %s is gone; the running config stays until it is back.", config_dir)


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
