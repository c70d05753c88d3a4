"""What `check-config` can tell of name ownership without starting a backend (gateway/server/ownership.py).

The files alone say where names may meet: a `namePrefix` or a tool_config.json rename inside another backend's
namespace (`<key><SEP>`, which only that backend may use), and backends sharing one prefix (`""` included), whose
equal names go to the first to list them. What backends list (their tools, URIs and templates) is only known
once they run: `status` reports what the running gateway withholds.
"""

from __future__ import annotations

from collections.abc import Mapping

from mcp_supervisor.config.models import ServerEntry, ToolConfig


def ownership_warnings(servers: Mapping[str, ServerEntry], tools: ToolConfig, separator: str) -> list[str]:
    active = {key: entry for key, entry in servers.items() if entry.active}
    namespaces = [key for key, entry in active.items() if entry.namePrefix is None]
    warnings = []
    by_prefix: dict[str, list[str]] = {}
    for key, entry in active.items():
        prefix = f"{key}{separator}" if entry.namePrefix is None else entry.namePrefix
        by_prefix.setdefault(prefix, []).append(key)
        owner = _namespace_of(prefix, key, namespaces, separator)
        if owner is not None:
            warnings.append(
                f'Server {key!r}: "namePrefix" {prefix!r} is inside server {owner!r}\'s namespace '
                f"({owner}{separator}); every tool of {key!r} would be withheld."
            )
    for prefix, keys in by_prefix.items():
        if len(keys) > 1:
            warnings.append(
                f"Servers {', '.join(map(repr, keys))} share the name prefix {prefix!r}: a name both list goes to the "
                "one that listed it first; the other's is withheld."
            )
    for qualified, override in tools.tools.items():
        key = next((k for k in active if qualified.startswith(f"{k}{separator}")), "")
        renamed = override.exposed_name
        owner = _namespace_of(renamed, key, namespaces, separator) if renamed else None
        if owner is not None:
            warnings.append(
                f"tool_config.json: {qualified!r} is renamed to {renamed!r}, inside server {owner!r}'s namespace; "
                "it would be withheld."
            )
    return warnings


def _namespace_of(name: str, key: str, namespaces: list[str], separator: str) -> str | None:
    return next((other for other in namespaces if other != key and name.startswith(f"{other}{separator}")), None)
