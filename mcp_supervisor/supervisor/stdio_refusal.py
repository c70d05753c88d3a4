"""When `mcp-supervisor stdio` cannot start (another supervisor serves the config dir, a broken file), the
client that launched it would see only "Connection closed". Instead its `initialize` gets a JSON-RPC error
that says why, and then the process exits."""

from __future__ import annotations

import contextlib
import json
import os
import select
import time

from mcp_supervisor.protocol.error_codes import INTERNAL_ERROR

# How long to wait for the client's first request: desktop clients send initialize at once.
WAIT_FOR_REQUEST_S = 10.0


def refuse_stdio_client(in_fd: int, out_fd: int, reason: str, wait_s: float = WAIT_FOR_REQUEST_S) -> None:
    """Answer the client's first request (its initialize) with an error naming `reason`; give up quietly
    after `wait_s` or when the client closes its end first."""
    request_id = _first_request_id(in_fd, wait_s)
    if request_id is None:
        return
    error = {"code": INTERNAL_ERROR, "message": f"mcp-supervisor cannot serve: {reason}"}
    reply = json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode() + b"\n"
    with contextlib.suppress(OSError):  # the client went away meanwhile: nobody left to tell
        os.write(out_fd, reply)


def _first_request_id(in_fd: int, wait_s: float) -> int | str | None:
    deadline = time.monotonic() + wait_s
    buffered = b""
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([in_fd], [], [], left)
        if not readable:
            return None
        chunk = os.read(in_fd, 65536)
        if not chunk:
            return None
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and isinstance(message.get("id"), (int, str)) and "method" in message:
                request_id: int | str = message["id"]
                return request_id
    return None
