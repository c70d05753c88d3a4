"""The gateway's own opaque pagination cursors over its aggregated lists.

A cursor encodes an offset into the aggregate; it is opaque to clients (the spec requires them not to parse
it) and validated on the way back: anything we did not issue is -32602. If the list changed between pages the
offset still applies (a client that needs a consistent view re-lists on `list_changed`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from mcp_supervisor.gateway.server.jsonrpc import JsonRpcFault
from mcp_supervisor.protocol import error_codes

_PREFIX = "mcps1:"


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: object) -> int:
    if not isinstance(cursor, str) or not cursor or len(cursor) > 64:
        raise JsonRpcFault(error_codes.INVALID_PARAMS, "Invalid params: the cursor is not one this gateway issued.")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith(_PREFIX) or not text[len(_PREFIX) :].isdigit():
        raise JsonRpcFault(error_codes.INVALID_PARAMS, "Invalid params: the cursor is not one this gateway issued.")
    return int(text[len(_PREFIX) :])


def page(items: Sequence[Any], field: str, cursor: object, size: int) -> dict[str, Any]:
    """The result object of one page of a list method."""
    offset = 0 if cursor is None else decode_cursor(cursor)
    if offset > len(items):
        raise JsonRpcFault(error_codes.INVALID_PARAMS, "Invalid params: the cursor points past the end of the list.")
    end = offset + size
    result: dict[str, Any] = {field: list(items[offset:end])}
    if end < len(items):
        result["nextCursor"] = encode_cursor(end)
    return result
