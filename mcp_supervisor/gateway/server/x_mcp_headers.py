"""`Mcp-Param-*` headers of a 2026-07-28 `tools/call`: they must mirror the arguments that the tool's input schema
marks with `x-mcp-header` (intermediaries route on them). The SDK's `validate_mcp_param_headers` rules, without
importing the SDK (envelope_ladder.py says why): same walk of the schema, same comparisons, same messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from mcp_supervisor.gateway.server.envelope_ladder import Rejection, decode_header_value
from mcp_supervisor.protocol import error_codes

X_MCP_HEADER_KEY = "x-mcp-header"
MCP_PARAM_HEADER_PREFIX = "Mcp-Param-"
_RFC9110_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PRIMITIVE_TYPES = frozenset({"string", "integer", "boolean"})
_CANONICAL_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
# JSON Schema 2020-12 applicators whose values are schema positions (`properties` keeps the path; these drop it).
_SUBSCHEMA_SINGLE = frozenset(
    {
        "items",
        "contains",
        "unevaluatedItems",
        "additionalProperties",
        "propertyNames",
        "unevaluatedProperties",
        "not",
        "if",
        "then",
        "else",
        "contentSchema",
    }
)
_SUBSCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAP = frozenset({"patternProperties", "dependentSchemas", "$defs", "definitions"})


def _positions(root: Any) -> Iterator[tuple[tuple[str, ...] | None, dict[str, Any]]]:
    """(properties path or None once another applicator is crossed, schema) of every schema position."""
    stack: list[tuple[tuple[str, ...] | None, Any]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield path, node
        for keyword, value in node.items():
            if keyword == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    stack.append(((*path, name) if path is not None else None, sub))
            elif keyword in _SUBSCHEMA_SINGLE:
                stack.append((None, value))
            elif keyword in _SUBSCHEMA_LIST and isinstance(value, list):
                stack.extend((None, sub) for sub in value)
            elif keyword in _SUBSCHEMA_MAP and isinstance(value, dict):
                stack.extend((None, sub) for sub in value.values())


def schema_is_invalid(schema: Any) -> bool:
    """An annotation off a pure `properties` chain, not an RFC 9110 token, on a non-primitive property, or
    duplicated: conforming clients drop such a tool and send no headers, so nothing is validated."""
    seen: set[str] = set()
    for path, position in _positions(schema):
        if X_MCP_HEADER_KEY not in position:
            continue
        header = position[X_MCP_HEADER_KEY]
        if not path or not isinstance(header, str) or not _RFC9110_TOKEN.fullmatch(header):
            return True
        prop_type = position.get("type")
        if not isinstance(prop_type, str) or prop_type not in _PRIMITIVE_TYPES or header.lower() in seen:
            return True
        seen.add(header.lower())
    return False


def _rendered(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str | int | float):
        return None
    try:
        return str(value)
    except ValueError:  # an int past the int-to-str digit limit
        return None


def _value_at(arguments: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = arguments
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _matches(prop_type: Any, value: Any, rendered: str, decoded: str) -> bool:
    """Integers compare numerically (`42` matches `42.0`) for canonical decimals; the rest as rendered."""
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if prop_type == "integer" and not isinstance(value, bool) and integral and _CANONICAL_DECIMAL.fullmatch(decoded):
        whole, _, fraction = decoded.partition(".")
        if fraction and set(fraction) != {"0"}:
            return False
        try:
            return int(whole) == int(value)
        except ValueError:
            return False
    return decoded == rendered


def _mismatch(message: str) -> Rejection:
    return Rejection(error_codes.HEADER_MISMATCH, message)


def validate(schema: Any, arguments: Mapping[str, Any], headers: Mapping[str, str]) -> Rejection | None:
    """The first `Mcp-Param-*` header that disagrees with its argument (absent together, or equal after the
    sentinel's decoding), or None. `headers` may repeat names (Starlette's Headers): a repeated one is refused."""
    if schema_is_invalid(schema):
        return None
    folded: dict[str, str] = {}
    duplicated: set[str] = set()
    for name, value in headers.items():
        key = name.lower()
        if key in folded:
            duplicated.add(key)
        folded[key] = value
    for path, position in _positions(schema):
        token = position.get(X_MCP_HEADER_KEY)
        if not path or not isinstance(token, str):
            continue
        header = f"{MCP_PARAM_HEADER_PREFIX}{token}"
        raw = folded.get(header.lower())
        value = _value_at(arguments, path)
        argument = ".".join(path)
        if raw is not None and header.lower() in duplicated:
            return _mismatch(f"{header} header appears more than once")
        if value is None:
            if raw is not None:
                return _mismatch(f"{header} header is present but the request body's {argument!r} argument is absent")
            continue
        rendered = _rendered(value)
        if rendered is None:
            if raw is not None:
                return _mismatch(f"{header} header does not match the request body's {argument!r} argument")
            continue
        if raw is None:
            return _mismatch(f"{header} header is missing but the request body's {argument!r} argument is present")
        decoded = decode_header_value(raw)
        if decoded is None:
            return _mismatch(f"{header} header carries a malformed base64 sentinel value")
        if not _matches(position.get("type"), value, rendered, decoded):
            return _mismatch(f"{header} header does not match the request body's {argument!r} argument")
    return None
