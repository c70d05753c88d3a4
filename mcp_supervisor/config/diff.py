"""Which backends a new mcp_server.json adds, removes or changes (pure; drives hot reload)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mcp_supervisor.config.models import ServerEntry


@dataclass(frozen=True)
class ServersDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_servers(old: Mapping[str, ServerEntry], new: Mapping[str, ServerEntry]) -> ServersDiff:
    """Compare the *active* entries of two configs; a display-name-only edit still restarts nothing else."""
    return ServersDiff(
        added=tuple(key for key in new if key not in old),
        removed=tuple(key for key in old if key not in new),
        changed=tuple(key for key in new if key in old and new[key] != old[key]),
    )
