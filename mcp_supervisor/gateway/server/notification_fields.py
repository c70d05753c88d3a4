"""What a backend's notification may carry to clients: the fields its method defines, `_meta`, nothing else.

A backend's notifications are untrusted like the rest of what it says; extra fields (a `title` on a resource
update, say) are text the model may read that no schema announces. And a resource update counts only from the
backend that owns the URI (ownership.py): another backend could otherwise wake a client's subscription with
content it then serves itself, or make it re-read at will.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("mcp_supervisor.gateway")

# Each relayed notification's params, as the MCP schema (2025-11-25) defines them.
DEFINED_PARAMS: dict[str, frozenset[str]] = {
    "notifications/message": frozenset({"level", "logger", "data"}),
    "notifications/resources/updated": frozenset({"uri"}),
    "notifications/progress": frozenset({"progressToken", "progress", "total", "message"}),
    "notifications/cancelled": frozenset({"requestId", "reason"}),
}


def defined_fields(message: dict[str, Any]) -> dict[str, Any]:
    """The notification with only `jsonrpc`, `method` and its defined params (plus `_meta`)."""
    method = message.get("method")
    clean: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    params = message.get("params")
    if isinstance(params, dict):
        allowed = DEFINED_PARAMS.get(method, frozenset()) if isinstance(method, str) else frozenset()
        clean["params"] = {key: value for key, value in params.items() if key in allowed or key == "_meta"}
    return clean


def update_from_owner(owner: str | None, sender: str, uri: object) -> bool:
    """Whether `sender` may announce an update of `uri`, whose owner (by the catalog's routing) is `owner`."""
    if owner == sender:
        return True
    log.warning(
        'Dropped notifications/resources/updated for %r from backend "%s": the URI is %s.',
        str(uri)[:200],
        sender,
        f'backend "{owner}"\'s' if owner is not None else "no backend's",
    )
    return False
