"""What a worker answers itself when its backend asks something and no client can be asked.

A backend may send requests of its own at any time: server-filesystem asks for `roots/list` right after
`initialize`, before the worker has even listed its tools. Such a request can go to a client only while one of
that client's requests is in flight at this backend (nothing else says whom it is for). With none in flight,
the worker answers at once instead of leaving the backend to time out (60 s, then an error line that becomes
its last stderr line in `status`): roots with the configured roots (or none), anything else with an error
that says why.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from mcp_supervisor.protocol.error_codes import METHOD_NOT_FOUND


def roots_result(roots: tuple[str, ...]) -> dict[str, Any]:
    """A `roots/list` result for the configured roots (file:// URIs), named after their last path part."""
    return {"roots": [{"uri": uri, "name": _name_of(uri)} for uri in roots]}


def no_caller_error(method: str) -> dict[str, Any]:
    return {
        "code": METHOD_NOT_FOUND,
        "message": (
            f"mcp-supervisor cannot answer {method}: no client request is in flight at this backend, so there is "
            "no client to ask (a backend can ask its client things only while it serves one of its requests)."
        ),
    }


def _name_of(uri: str) -> str:
    return PurePosixPath(unquote(urlparse(uri).path)).name or uri
