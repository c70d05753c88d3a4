"""A 2026-07-28 backend's InputRequiredResult, answered for a handshake-era client.

The backend cannot send server→client requests; it returns `inputRequests` on the very call that needs them.
A handshake-era client only knows real requests, so each input request becomes one, sent on the stream of
the client request it belongs to (attribution is exact: it is that call's result). The client's answers go
back in a retry of the call with `inputResponses` and the backend's `requestState`, for at most MAX_ROUNDS
rounds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from mcp_supervisor.gateway.dataplane.backends import CallContext
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.gateway.server.server_requests import REQUIRED_CAPABILITY
from mcp_supervisor.protocol import error_codes

MAX_ROUNDS = 8

# Send the client of a call a request of the gateway's own; its response message (server_requests.ask).
Ask = Callable[[CallContext, str, Any], Awaitable[dict[str, Any]]]
# Call a backend for a client's request: (result, error) (backend_calls.BackendCalls.call).
Call = Callable[[CallContext, str, str, dict[str, Any] | None], Awaitable[tuple[bytes, bytes]]]


def _error(code: int, message: str) -> bytes:
    return jsonrpc.encode_json({"code": code, "message": message})


class InputRounds:
    def __init__(self, ask: Ask, call: Call) -> None:
        self._ask = ask
        self._call = call

    async def answer(
        self, context: CallContext, key: str, method: str, params: dict[str, Any], result: bytes
    ) -> tuple[bytes, bytes]:
        """(result, error) of the call once the backend stops asking."""
        for _ in range(MAX_ROUNDS):
            decoded = jsonrpc.decode_json(result)
            if not isinstance(decoded, dict) or decoded.get("resultType") != "input_required":
                return result, b""
            requests = decoded.get("inputRequests")
            requests = requests if isinstance(requests, dict) else {}
            for input_key, request in requests.items():
                request_method = request.get("method") if isinstance(request, dict) else None
                capability = REQUIRED_CAPABILITY.get(str(request_method))
                if capability is None:
                    return b"", _error(
                        error_codes.INTERNAL_ERROR,
                        f"Backend {key} asked for an input of an unknown kind ({input_key!r}).",
                    )
                if capability not in context.session.capabilities:
                    return b"", _error(
                        error_codes.INVALID_REQUEST,
                        f"Backend {key} needs the client's {capability} capability ({request_method}) for this "
                        "request, and this session did not declare it.",
                    )
            keys = list(requests)
            answers = await asyncio.gather(
                *(self._ask(context, requests[k]["method"], requests[k].get("params")) for k in keys)
            )
            responses: dict[str, Any] = {}
            for input_key, answer in zip(keys, answers, strict=True):
                if "error" in answer:
                    error = answer["error"]
                    return b"", jsonrpc.encode_json(
                        error
                        if isinstance(error, dict)
                        else {"code": error_codes.INTERNAL_ERROR, "message": str(error)}
                    )
                responses[input_key] = answer.get("result")
            retry = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
            retry["inputResponses"] = responses
            state = decoded.get("requestState")
            if isinstance(state, str):
                retry["requestState"] = state
            result, error = await self._call(context, key, method, retry)
            if error:
                return result, error
        return b"", _error(error_codes.INTERNAL_ERROR, f"Backend {key} asked for input more than {MAX_ROUNDS} times.")
