"""What the operator reads: the pin file as rows, and the diff of a held definition against its pin.

Read-only (the CLI and the admin page share it); only the gateway writes the pin file.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import msgspec

from mcp_supervisor.gateway.server.pinning.store import Entry, PinFile

HELD_STATES = ("quarantined", "rejected")


def read_entries(path: Path) -> list[Entry]:
    """The entries of the pin file, [] when there is none yet; ValueError when it cannot be read."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=PinFile).entries
    except FileNotFoundError:
        return []
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"The pin file {path} cannot be read: {exc}") from None


def _pretty(definition: dict[str, Any] | None) -> list[str]:
    if definition is None:
        return []
    return json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=True).splitlines(keepends=True)


def diff_lines(entry: Entry) -> list[str]:
    """A unified diff, pinned → now served (a new definition diffs against nothing). Non-ASCII characters are
    escaped, so hidden ones (tag characters, bidi controls) show as \\uXXXX."""
    before = _pretty(entry.pinned.definition if entry.pinned is not None else None)
    after = _pretty(entry.pending.definition if entry.pending is not None else None)
    pinned = f"pinned {entry.pinned.hash[:19]}" if entry.pinned is not None else "not pinned"
    served = f"served {entry.pending.hash[:19]}" if entry.pending is not None else "served"
    return list(difflib.unified_diff(before, after, pinned, served, n=3))


def row(entry: Entry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "name": entry.exposed,
        "backend": entry.backend,
        "originalName": entry.name,
        "state": entry.state,
        "reason": entry.reason,
        "pinnedHash": entry.pinned.hash if entry.pinned is not None else None,
        "pendingHash": entry.pending.hash if entry.pending is not None else None,
    }


def held(entries: list[Entry]) -> list[Entry]:
    return [entry for entry in entries if entry.state in HELD_STATES]
