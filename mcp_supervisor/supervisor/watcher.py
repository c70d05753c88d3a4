"""Watching the config directory for changes, robust to how files get replaced.

Editors save by rename, Kubernetes swaps a `..data` symlink, scripts write in several steps: so any event in
the directory (debounced by watchfiles) only triggers a re-read, and what counts is whether a file's bytes
changed since they were last applied.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import watchfiles

from mcp_supervisor.config.loader import SERVERS_FILE, TOOLS_FILE

log = logging.getLogger("mcp_supervisor.supervisor")

WATCHED = (SERVERS_FILE, TOOLS_FILE)


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
    """Call `on_change(file_name)` for each watched file whose contents changed."""
    seen = {name: fingerprint(config_dir / name) for name in WATCHED}
    async for _changes in watchfiles.awatch(
        config_dir, watch_filter=_relevant, debounce=debounce_ms, step=50, recursive=True
    ):
        for name in WATCHED:
            current = fingerprint(config_dir / name)
            if current != seen[name]:
                seen[name] = current
                log.info("%s changed on disk.", name)
                await on_change(name)
