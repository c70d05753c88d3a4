"""HTTP and WebSocket routes of the web terminal (docs/admin.md, "Web terminal"), relative to the `/admin` mount.

Authentication, CSRF and the WebSocket Origin check are the admin middleware's job; these handlers only
validate and dispatch. The output is served both as SSE (mcp-proxy-server's `GET …/output`) and over a WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from mcp_supervisor.admin.http import error, sse_frame
from mcp_supervisor.admin.terminal import Terminal, TerminalError, TerminalLimitError, TerminalManager
from mcp_supervisor.errors import SupervisorError

MAX_INPUT_CHARS = 64 * 1024
MAX_BODY_BYTES = 512 * 1024  # 64 Ki characters, JSON-escaped
MAX_SIZE = 1000  # columns or rows
SSE_KEEPALIVE_S = 15.0
WS_POLICY_VIOLATION = 1008
WS_UNKNOWN_TERMINAL = 4404


class _Invalid(SupervisorError):
    """The request is invalid; the message is the sentence for the client."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _size(body: dict[str, Any], field: str, default: int | None) -> int:
    value = body.get(field, default)
    if value is None:
        raise _Invalid(f'"{field}" is required.')
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
        raise _Invalid(f'"{field}" must be an integer from 1 to {MAX_SIZE}.')
    return value


def _input(body: dict[str, Any]) -> str:
    value = body.get("input", body.get("data"))
    if not isinstance(value, str):
        raise _Invalid('"input" must be a string.')
    if len(value) > MAX_INPUT_CHARS:
        raise _Invalid(f'"input" must be at most {MAX_INPUT_CHARS} characters.')
    return value


async def _body(request: Request, optional: bool = False) -> dict[str, Any]:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise _Invalid(f"The request body is larger than {MAX_BODY_BYTES} bytes.", 413)
    if not raw.strip() and optional:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _Invalid("The request body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise _Invalid("The request body must be a JSON object.")
    return body


def _unknown(term_id: str) -> Response:
    return error(404, f"There is no terminal {term_id}.")


async def _start(terminals: TerminalManager, request: Request) -> Response:
    """A new shell, of the size the body asks (80x24 by default)."""
    try:
        body = await _body(request, optional=True)
        terminal = terminals.start(_size(body, "cols", 80), _size(body, "rows", 24))
    except _Invalid as exc:
        return error(exc.status, str(exc))
    except TerminalLimitError as exc:
        return error(409, str(exc))
    except TerminalError as exc:
        return error(500, str(exc))
    return JSONResponse({"success": True, "termId": terminal.id})


async def _websocket(terminals: TerminalManager, ws: WebSocket) -> None:
    """One terminal over a WebSocket: JSON frames both ways (see _serve_websocket)."""
    terminal = terminals.get(ws.path_params["term_id"])
    await ws.accept()
    if terminal is None:
        # Accepted then closed: a browser sees this close code and reason, never a refused handshake's status.
        await ws.close(code=WS_UNKNOWN_TERMINAL, reason="There is no such terminal.")
        return
    await _serve_websocket(ws, terminal)


def terminal_routes(terminals: TerminalManager) -> list[BaseRoute]:
    def found(request: Request) -> Terminal | Response:
        term_id = request.path_params["term_id"]
        return terminals.get(term_id) or _unknown(term_id)

    async def start(request: Request) -> Response:
        return await _start(terminals, request)

    async def listing(request: Request) -> Response:
        return JSONResponse({"terminals": terminals.list()})

    async def change(request: Request, apply: Callable[[Terminal, dict[str, Any]], None]) -> Response:
        """Input or resize: one validated body applied to one live terminal."""
        terminal = found(request)
        if isinstance(terminal, Response):
            return terminal
        try:
            apply(terminal, await _body(request))
        except _Invalid as exc:
            return error(exc.status, str(exc))
        except TerminalError as exc:
            return error(409, str(exc))
        return JSONResponse({"success": True})

    async def write(request: Request) -> Response:
        return await change(request, lambda terminal, body: terminal.write(_input(body)))

    async def resize(request: Request) -> Response:
        return await change(
            request, lambda terminal, body: terminal.resize(_size(body, "cols", None), _size(body, "rows", None))
        )

    async def close(request: Request) -> Response:
        term_id = request.path_params["term_id"]
        if not await terminals.close(term_id):
            return _unknown(term_id)
        return JSONResponse({"success": True, "message": f"Terminal {term_id} closed."})

    async def output(request: Request) -> Response:
        terminal = found(request)
        if isinstance(terminal, Response):
            return terminal
        return StreamingResponse(
            _sse(terminal),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def websocket(ws: WebSocket) -> None:
        await _websocket(terminals, ws)

    return [
        Route("/terminal/start", start, methods=["POST"]),
        Route("/terminal/list", listing, methods=["GET"]),
        Route("/terminal/{term_id}/input", write, methods=["POST"]),
        Route("/terminal/{term_id}/resize", resize, methods=["POST"]),
        Route("/terminal/{term_id}/output", output, methods=["GET"]),
        Route("/terminal/{term_id}", close, methods=["DELETE"]),
        WebSocketRoute("/terminal/{term_id}/ws", websocket),
    ]


async def _sse(terminal: Terminal) -> AsyncIterator[bytes]:
    async for chunk in terminal.output(keepalive_s=SSE_KEEPALIVE_S):
        if chunk:
            yield sse_frame("output", {"data": chunk})
        else:
            yield b": keepalive\n\n"  # a write, so that a client gone away is noticed
    code = await terminal.wait()
    yield sse_frame("exit", {"code": code})


async def _serve_websocket(ws: WebSocket, terminal: Terminal) -> None:
    """Output to the client until the shell exits; the client's frames to the shell until it disconnects."""

    async def send_output() -> None:
        async for chunk in terminal.output():
            await ws.send_text(json.dumps({"type": "output", "data": chunk}))
        await ws.send_text(json.dumps({"type": "exit", "code": await terminal.wait()}))
        await ws.close()

    sender = asyncio.create_task(send_output())
    receiver: asyncio.Task[str] | None = None
    try:
        while True:
            receiver = asyncio.create_task(ws.receive_text())
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done():
                return
            problem = _apply(terminal, receiver.result())
            if problem is not None:
                await ws.close(code=WS_POLICY_VIOLATION, reason=problem)
                return
    except WebSocketDisconnect:
        pass
    finally:
        for task in (sender, receiver):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                    await task


def _apply(terminal: Terminal, frame: str) -> str | None:
    """Apply one client frame to the terminal; a sentence when the frame is invalid."""
    try:
        message = json.loads(frame)
        if not isinstance(message, dict):
            raise _Invalid("A frame must be a JSON object.")
        match message.get("type"):
            case "input":
                terminal.write(_input(message))
            case "resize":
                terminal.resize(_size(message, "cols", None), _size(message, "rows", None))
            case other:
                raise _Invalid(f'Unknown frame type {other!r}; expected "input" or "resize".')
    except ValueError:
        return "A frame must be JSON."
    except (_Invalid, TerminalError) as exc:
        return str(exc).encode()[:120].decode(errors="ignore")  # a close reason is at most 123 bytes
    return None
