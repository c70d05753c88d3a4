"""Aggregating the backends' tools into one list: prefixing, tool_config overrides, routing, collisions.

Pure: given each backend's tools (as the backend sent them), the tool config and the separator, it computes
the exposed list and the route of every exposed name. Every tool field is passed through; only `name` and
(with an override) `description` change. Collisions and names outside the spec's alphabet are reported,
never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.config.models import ToolConfig

# The spec's alphabet for tool names; always used with fullmatch ("$" would accept a trailing newline).
TOOL_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def qualified_name(server_key: str, separator: str, tool_name: str) -> str:
    """The seed's name of a backend tool: `<server_key><SEP><tool>`; tool_config.json is keyed by it."""
    return f"{server_key}{separator}{tool_name}"


@dataclass(frozen=True, slots=True)
class ToolRoute:
    server_key: str
    original_name: str


@dataclass
class AggregatedTools:
    tools: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, ToolRoute] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def aggregate_tools(
    catalogs: Mapping[str, Sequence[Mapping[str, Any]]],
    tool_config: ToolConfig,
    separator: str,
) -> AggregatedTools:
    """Backends are taken in key order, so the exposed list and collision winners are deterministic."""
    out = AggregatedTools()
    for server_key in sorted(catalogs):
        for tool in catalogs[server_key]:
            original = tool.get("name")
            if not isinstance(original, str) or not original:
                out.problems.append(f'Backend "{server_key}" listed a tool without a name; it is not exposed.')
                continue
            qualified = qualified_name(server_key, separator, original)
            override = tool_config.override_for(qualified)
            if override is not None and not override.enabled:
                continue
            exposed = dict(tool)
            name = qualified
            if override is not None and override.exposed_name:
                if TOOL_NAME_PATTERN.fullmatch(override.exposed_name):
                    name = override.exposed_name
                else:
                    out.problems.append(
                        f'tool_config.json: "{qualified}" has exposed name {override.exposed_name!r}, which is not '
                        f"1-128 of [A-Za-z0-9_.-]; the tool keeps the name {qualified!r}."
                    )
            if override is not None and override.exposed_description:
                exposed["description"] = override.exposed_description
            if not TOOL_NAME_PATTERN.fullmatch(name):
                out.problems.append(
                    f"Tool name {name!r} (backend {server_key!r}) is not 1-128 of [A-Za-z0-9_.-]; "
                    "some clients may refuse it."
                )
            if name in out.routes:
                winner = out.routes[name]
                out.problems.append(
                    f'Tool name {name!r} of backend "{server_key}" collides with tool '
                    f'{winner.original_name!r} of backend "{winner.server_key}"; only the latter is exposed. '
                    "Rename one in tool_config.json."
                )
                continue
            exposed["name"] = name
            out.tools.append(exposed)
            out.routes[name] = ToolRoute(server_key=server_key, original_name=original)
    return out
