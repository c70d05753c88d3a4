"""Definitions that trust on first use must not pin: hidden or direction-changing text, oversized parts.

Unicode tag characters (U+E0000-E007F) spell ASCII that no screen shows but models read; zero-width characters
hide text inside words; bidi controls make the text shown differ from the text read. Every string of a
definition is checked (keys too: property names of a schema reach the model as well).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from mcp_supervisor.gateway.server.pinning.fingerprint import canonical

_TAG = re.compile("[\U000e0000-\U000e007f]")
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060-\u2064\ufeff\u180e]")
_BIDI = re.compile("[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")
_CLASSES = (
    (_TAG, "a Unicode tag character"),
    (_ZERO_WIDTH, "a zero-width character"),
    (_BIDI, "a bidi control character"),
)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def hidden_text(definition: Mapping[str, Any]) -> str | None:
    """The first invisible or bidi character, as a reason naming the field and the code point."""
    for field, value in definition.items():
        for text in _strings(value):
            for pattern, what in _CLASSES:
                found = pattern.search(text)
                if found is not None:
                    return f"its {field} contains {what} (U+{ord(found.group()):04X})"
    return None


def suspicion(definition: Mapping[str, Any], description_max: int, schema_max: int) -> str | None:
    """Why this definition must not be pinned unseen, or None."""
    description = definition.get("description")
    if isinstance(description, str) and len(description.encode("utf-8", "surrogatepass")) > description_max:
        return f"its description is longer than {description_max} bytes (TOOL_DESCRIPTION_MAX_BYTES)"
    for field in ("inputSchema", "outputSchema", "arguments"):
        if field in definition and len(canonical(definition[field])) > schema_max:
            return f"its {field} is larger than {schema_max} bytes (TOOL_SCHEMA_MAX_BYTES)"
    return hidden_text(definition)


def storable(definition: dict[str, Any], limit: int) -> dict[str, Any]:
    """What the pin file keeps of a definition for the diff: all of it, unless it weighs more than `limit`;
    then the fields over a quarter of it are left out and named (its hash covers them all the same), so a
    backend listing huge definitions cannot grow the state directory without bound."""
    size = len(canonical(definition))
    if size <= limit:
        return definition
    kept = {field: value for field, value in definition.items() if len(canonical(value)) <= limit // 4}
    left_out = sorted(set(definition) - set(kept))
    kept["(not stored)"] = f"{size} bytes in all; left out of the pin file: {', '.join(left_out)}"
    return kept
