"""What a pin covers: every field of a definition the model reads or a call depends on, hashed canonically."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# The backend's own definition (before a tool_config.json override, which is the operator's own text).
PINNED_FIELDS = {
    "tool": ("name", "title", "description", "inputSchema", "outputSchema", "annotations"),
    "prompt": ("name", "title", "description", "arguments"),
}


def pinned_definition(kind: str, item: Mapping[str, Any]) -> dict[str, Any]:
    return {field: item[field] for field in PINNED_FIELDS[kind] if field in item}


def canonical(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 as is: the same definition always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def fingerprint(definition: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(definition)).hexdigest()
