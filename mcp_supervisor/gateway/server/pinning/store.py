"""The pin file and the request inbox, in the state directory (kept across restarts, hidden from backends).

One writer: the gateway, which sees the catalogs, owns `tool-pins.json` and replaces it atomically (a
temporary file renamed over it, mode 0600). The CLI never edits it: it drops a request file into
`tool-pins.requests/` (also by rename), the gateway applies it within a poll interval and leaves the outcome
beside it as `<id>.done`. So the file has no concurrent writers, and a request made while the gateway is
down is applied when it starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import msgspec

from mcp_supervisor.config.settings import Settings

log = logging.getLogger("mcp_supervisor.gateway")

PIN_FILE = "tool-pins.json"
REQUESTS_DIR = "tool-pins.requests"


def pin_path(settings: Settings) -> Path:
    """Beside the backends' state directories (like the admin's revocations), never inside one."""
    return settings.state_dir.parent / PIN_FILE


def requests_path(settings: Settings) -> Path:
    return settings.state_dir.parent / REQUESTS_DIR


class Definition(msgspec.Struct, kw_only=True):
    hash: str
    definition: dict[str, Any]
    at: float


class Entry(msgspec.Struct, kw_only=True):
    kind: str  # "tool" or "prompt"
    backend: str
    name: str  # the backend's own name: a rename in tool_config.json keeps the pin
    exposed: str = ""  # the name clients saw last
    state: str = "pinned"  # pinned | quarantined | rejected | warned
    pinned: Definition | None = None
    pending: Definition | None = None  # what the backend serves now, awaiting approval
    reason: str = ""
    rejected: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.backend, self.name)


class PinFile(msgspec.Struct, kw_only=True):
    version: int = 1
    mode: str = ""
    entries: list[Entry] = msgspec.field(default_factory=list)


class Request(msgspec.Struct, kw_only=True):
    action: str  # approve | reject
    name: str = ""
    backend: str = ""


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def read_pin_file(path: Path) -> PinFile:
    """The pins; an unreadable file is set aside (never silently overwritten) and pinning starts afresh."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=PinFile)
    except FileNotFoundError:
        return PinFile()
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        with contextlib.suppress(OSError):
            path.rename(aside)
        log.error("The pin file %s is unreadable (%s); set aside as %s, pinning starts afresh.", path, exc, aside)
        return PinFile()


class PinStore:
    """The entries in memory; `path` None keeps them there only (settings with no real state directory)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        loaded = read_pin_file(path) if path is not None else PinFile()
        self.entries: dict[tuple[str, str, str], Entry] = {e.key: e for e in loaded.entries}

    def save(self, mode: str) -> None:
        if self.path is None:
            return
        document = PinFile(mode=mode, entries=sorted(self.entries.values(), key=lambda e: e.key))
        try:
            write_atomically(self.path, msgspec.json.format(msgspec.json.encode(document), indent=1))
        except OSError as exc:
            log.error("Could not write the pin file %s: %s", self.path, exc)


def submit(inbox: Path, request: Request) -> Path:
    """Queue a request for the gateway; returns where its outcome will appear."""
    name = f"{time.time_ns()}-{secrets.token_hex(4)}"
    write_atomically(inbox / f"{name}.json", msgspec.json.encode(request))
    return inbox / f"{name}.done"


def take_requests(inbox: Path) -> list[tuple[Path, Request | None]]:
    """The queued requests, oldest first, each removed as it is taken (None: not a request)."""
    try:
        names = sorted(n for n in os.listdir(inbox) if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return []
    taken: list[tuple[Path, Request | None]] = []
    for name in names:
        path = inbox / name
        try:
            request: Request | None = msgspec.json.decode(path.read_bytes(), type=Request)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            request = None
        with contextlib.suppress(OSError):
            path.unlink()
        taken.append((path.with_suffix(".done"), request))
    return taken
