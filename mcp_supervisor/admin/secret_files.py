"""Secrets the admin keeps in the config directory (the session secret, a generated admin password): read back
with the same checks, so a truncated or world-readable file is noticed the same way for each."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("mcp_supervisor.admin")


def read_stored(path: Path, what: str, minimum: int, error: type[Exception], unreadable_hint: str = "") -> str:
    """The secret stored in `path` (whitespace stripped). Raises `error` with a sentence naming the file when it
    cannot be read or is shorter than `minimum` characters; warns when other users may read it."""
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise error(f"{path}: the {what} cannot be read ({exc.strerror}){unreadable_hint}.") from None
    if len(secret) < minimum:
        raise error(f"{path}: the {what} is shorter than {minimum} characters; delete it to regenerate.")
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; chmod 600 it.", path)
    return secret
