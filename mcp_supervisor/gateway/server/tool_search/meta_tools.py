"""The two tools a client in search mode is shown instead of the catalog: their definitions, the parsing of
their arguments, and the shape of `search_tools`' result. Pure: no gateway state."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

SEARCH_TOOLS = "search_tools"
CALL_TOOL = "call_tool"
META_TOOLS = frozenset({SEARCH_TOOLS, CALL_TOOL})
DEFAULT_LIMIT = 5
MAX_LIMIT = 50

SEARCH_DEFINITION: dict[str, Any] = {
    "name": SEARCH_TOOLS,
    "title": "Search tools",
    "description": (
        "Find the tools that can do a task. This gateway has more tools than it lists: describe what you want "
        "to do in a few words, and get the best-matching tools, best first, each with its name, description "
        f"and input schema. Then run one with {CALL_TOOL}."
    ),
    "inputSchema": {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What you want to do, in natural language or keywords."},
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LIMIT,
                "description": f"How many tools to return at most (default {DEFAULT_LIMIT}).",
            },
        },
        "required": ["query"],
    },
    "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
}

CALL_DEFINITION: dict[str, Any] = {
    "name": CALL_TOOL,
    "title": "Call a tool",
    "description": (
        f"Run a tool that {SEARCH_TOOLS} found: give its exact name and its arguments, which must match "
        "that tool's input schema. The result is that tool's own result."
    ),
    "inputSchema": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": f"The tool's name, as {SEARCH_TOOLS} returned it."},
            "arguments": {"type": "object", "description": "The tool's arguments.", "additionalProperties": True},
        },
        "required": ["name"],
    },
}

_FIELDS = ("name", "title", "description", "inputSchema")


class BadArguments(ValueError):
    """The meta-tool's arguments do not fit its schema (the message says how)."""


def search_arguments(arguments: object) -> tuple[str, int]:
    """(query, limit) of a `search_tools` call."""
    arguments = arguments if isinstance(arguments, dict) else {}
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        raise BadArguments(f'{SEARCH_TOOLS} needs a non-empty string "query".')
    limit = arguments.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, str) and limit.strip().isdigit():
        limit = int(limit)  # a client that sends every argument as a string (the Inspector CLI does)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise BadArguments(f'{SEARCH_TOOLS}: "limit" must be an integer from 1 to {MAX_LIMIT}.')
    return query, limit


def call_target(arguments: object) -> tuple[str, dict[str, Any]]:
    """(name, arguments) of the tool a `call_tool` call names. Arguments given as a JSON text of an object are
    accepted too: some clients can only send strings."""
    arguments = arguments if isinstance(arguments, dict) else {}
    name = arguments.get("name")
    if not isinstance(name, str) or not name:
        raise BadArguments(f'{CALL_TOOL} needs the string "name" of the tool to call.')
    if name in META_TOOLS:
        raise BadArguments(f"{CALL_TOOL} calls the tools {SEARCH_TOOLS} finds, not {name}.")
    inner = arguments.get("arguments", {})
    if isinstance(inner, str):
        with contextlib.suppress(ValueError):  # not JSON: refused below as not an object
            inner = json.loads(inner) if inner.strip() else {}
    if inner is None:
        inner = {}
    if not isinstance(inner, dict):
        raise BadArguments(f'{CALL_TOOL}: "arguments" must be an object (the arguments of {name!r}).')
    return name, inner


def search_result(query: str, found: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A CallToolResult: the matches as structured content, and the same JSON as text for clients that read
    only text."""
    tools = [{key: tool[key] for key in _FIELDS if key in tool} for tool in found]
    if tools:
        text = json.dumps({"tools": tools}, ensure_ascii=False)
    else:
        text = f"No tool matches {query!r}. Try other words, or fewer."
    return {"content": [{"type": "text", "text": text}], "structuredContent": {"tools": tools}}


def error_result(message: str) -> dict[str, Any]:
    """A tool execution error: the model reads it and can correct its call."""
    return {"content": [{"type": "text", "text": message}], "isError": True}
