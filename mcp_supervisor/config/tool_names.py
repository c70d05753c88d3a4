"""The spec's rule for tool names, and what a tool_config.json display name does to a tool.

mcp-proxy-server's README shows `"displayName": "My Custom Tool Name"`, which is no valid MCP tool name (clients refuse
or mangle spaces). MCP has a field for exactly that, the tool's `title`: so a display name that is a valid name
renames the tool, and any other becomes its title while the name stays.
"""

from __future__ import annotations

import re
from typing import Literal

# The spec's alphabet for tool names; always used with fullmatch ("$" would accept a trailing newline).
TOOL_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")
TOOL_NAME_RULE = "1-128 of [A-Za-z0-9_.-]"


def is_valid_tool_name(name: str) -> bool:
    return TOOL_NAME_PATTERN.fullmatch(name) is not None


def display_name_effect(display_name: str) -> Literal["rename", "title"]:
    """`rename`: the tool is exposed under this name; `title`: it becomes the tool's title, the name stays."""
    return "rename" if is_valid_tool_name(display_name) else "title"
