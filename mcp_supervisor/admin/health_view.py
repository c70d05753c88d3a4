"""The admin's view of backend health: supervisor statuses joined with what the gateway has linked."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcp_supervisor.gateway.admin_view import LinkedBackend
from mcp_supervisor.protocol.messages import BackendStatus
from mcp_supervisor.protocol.states import BackendState

LOG_TAIL_BYTES = 256 * 1024


def backend_health(linked: Mapping[str, LinkedBackend], status: BackendStatus) -> dict[str, Any]:
    link = linked.get(status.key)
    started = status.started_at
    return {
        # Every field, defaults included (the wire form omits them): clients need not know the defaults.
        **{name: getattr(status, name) for name in status.__struct_fields__},
        "uptime_s": round(time.time() - started, 1) if started and status.state == BackendState.RUNNING else None,
        "linked": link is not None,
        "tools": len(link.tools) if link is not None else 0,
    }


def all_health(statuses: Mapping[str, BackendStatus], linked: Mapping[str, LinkedBackend]) -> list[dict[str, Any]]:
    return [backend_health(linked, status) for status in sorted(statuses.values(), key=lambda s: s.key)]


def tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a log that may be large (only its end is read)."""
    try:
        with path.open("rb") as handle:
            start = max(0, handle.seek(0, 2) - LOG_TAIL_BYTES)
            # One byte before the cut: if it is a newline, the first line read is whole and kept.
            handle.seek(max(0, start - 1))
            data = handle.read()
    except FileNotFoundError:
        return []
    if start > 0:
        data = data[data.find(b"\n") + 1 :]
    return data.decode(errors="replace").splitlines()[-count:]
