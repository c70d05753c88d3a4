"""Tool definitions checked at the edge: what a backend lists reaches clients only if it is well formed.

A backend's tool list is untrusted input read by the model and by clients' own validators (one `inputSchema:
null` made the official SDK refuse the whole aggregated list). A definition that breaks a rule is withheld,
never repaired or renamed, and the refusal names the backend, the tool and the reason (`Refusal`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_supervisor.config.tool_names import TOOL_NAME_PATTERN, TOOL_NAME_RULE

# Defaults of the limits (config/settings.py: TOOL_DESCRIPTION_MAX_BYTES, MAX_TOOLS_PER_BACKEND).
TOOL_DESCRIPTION_MAX_BYTES = 16 * 1024
MAX_TOOLS_PER_BACKEND = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    description_max_bytes: int = TOOL_DESCRIPTION_MAX_BYTES
    tools_per_backend: int = MAX_TOOLS_PER_BACKEND


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Refusal:
    """One definition a backend listed that clients do not get, and why."""

    backend: str
    item: str  # the exposed name it would have had ("" when it has none)
    reason: str
    kind: str = "tool"

    def __str__(self) -> str:
        what = f"{self.kind} {self.item!r}" if self.item else f"a {self.kind}"
        return f'Backend "{self.backend}" listed {what}; withheld: {self.reason}.'


def tool_problem(tool: Mapping[str, Any], exposed_name: str, limits: Limits) -> str | None:
    """Why the tool cannot be exposed under `exposed_name` (its name after prefixing or renaming), or None."""
    if not TOOL_NAME_PATTERN.fullmatch(exposed_name):
        return f"the name is not {TOOL_NAME_RULE} (MCP's tool name alphabet)"
    schema = tool.get("inputSchema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return 'its inputSchema is not an object schema ({"type": "object", ...})'
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        return "its description is not a string"
    if isinstance(description, str) and len(description) > limits.description_max_bytes // 4:
        size = len(description.encode())  # only measured when it may be past the limit
        if size > limits.description_max_bytes:
            return f"its description is {size} bytes, past the limit of {limits.description_max_bytes} bytes"
    title = tool.get("title")
    if title is not None and not isinstance(title, str):
        return "its title is not a string"
    return None
