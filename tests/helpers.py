"""Shared test helpers: bounded polling, free ports, and an MCP client over the gateway's /mcp."""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

T = TypeVar("T")


# A raw client's POST to /mcp, and the handshake request it opens a session with.
POST_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def stop_process(process: Any, grace_s: float = 10.0) -> None:
    """SIGTERM, a grace period, then SIGKILL: for the helper servers a test starts itself."""
    import subprocess

    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds. Never a bare sleep."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing polled may not exist yet
            last_error = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error!r})")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], T | Awaitable[T]], timeout: float, interval: float = 0.05, what: str = "condition"
) -> T:
    """The async twin of `wait_until`; the predicate may also be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(interval)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@asynccontextmanager
async def mcp_client(
    url: str, headers: dict[str, str] | None = None, notifications: list[str] | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized official SDK client on /mcp; the methods of notifications it receives go to `notifications`."""

    async def record(message: Any) -> None:
        method = getattr(message, "method", None)
        if notifications is not None and isinstance(method, str):
            notifications.append(method)

    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, message_handler=record) as session,
    ):
        await session.initialize()
        yield session


def backend_pids(worker_pid: int) -> list[int]:
    """Host pids of a worker's backend processes, the sandbox's own processes left out (bubblewrap's wrappers and
    slirp4netns, the backend's user-mode network). A sandboxed backend cannot tell its host pid: what it reports
    of itself is its pid in its own pid namespace."""
    import psutil

    try:
        below = psutil.Process(worker_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p.pid for p in below if p.pid and _name(p) not in ("bwrap", "slirp4netns")]


def _name(process: Any) -> str:
    try:
        return str(process.name())
    except Exception:  # gone meanwhile
        return ""
