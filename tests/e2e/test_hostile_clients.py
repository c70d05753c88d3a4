"""Hostile HTTP clients against the real gateway: slowloris on headers and on bodies, and forged proxy headers.

Each attack is made with raw sockets or httpx2 from the test itself, against `mcp-supervisor start`, while an
ordinary client keeps using the gateway.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import mcp_client, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SLOW_CLIENTS = 40


def start(tmp_path: Path, supervisor_factory: Any, **env: str) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup: RunningSupervisor = supervisor_factory(config_dir, env)
    sup.wait_linked({"local"})
    return sup


def closed_by_server(sock: socket.socket) -> bytes | None:
    """What the server sent before closing, or None while the connection is still open."""
    try:
        data = sock.recv(4096)
    except BlockingIOError:
        return None
    except OSError:
        return b""
    if not data:
        return b""
    return data if b"\r\n\r\n" in data else None


def slow_connection(port: int, body: bool) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if body:  # complete headers, then a body that never comes
        head = (
            "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            "accept: application/json, text/event-stream\r\ncontent-length: 1000\r\n\r\n{"
        )
        sock.sendall(head.encode())
    else:  # a request line and one header, and then nothing
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n")
    sock.setblocking(False)
    return sock


@pytest.mark.parametrize("body", [False, True], ids=["headers", "body"])
async def test_slowloris_connections_are_closed_and_others_keep_being_served(
    tmp_path: Path, supervisor_factory: Any, body: bool
) -> None:
    """Issue 14: 1250 slowloris connections were each held for 25 s, with no header or body timeout."""
    sup = start(tmp_path, supervisor_factory, HEADER_TIMEOUT_SECONDS="2", BODY_TIMEOUT_SECONDS="2")
    began = time.monotonic()
    slow = [slow_connection(sup.port, body) for _ in range(SLOW_CLIENTS)]
    try:
        async with mcp_client(sup.url) as client:
            for index in range(5):  # others are served meanwhile
                result = await client.call_tool("local--echo", {"text": f"still {index}"})
                assert not result.is_error
        endings: dict[int, bytes] = {}

        def all_closed() -> bool:
            for index, sock in enumerate(slow):
                if index not in endings:
                    ending = closed_by_server(sock)
                    if ending is not None:
                        endings[index] = ending
            return len(endings) == len(slow)

        wait_until(all_closed, 15, what=f"the gateway to close {SLOW_CLIENTS} slow connections")
        took = time.monotonic() - began
        print(f"\n{SLOW_CLIENTS} slow {'body' if body else 'header'} connections closed within {took:.1f} s")
        assert took >= 1.5, "closed before the deadline: not a timeout"
        if not body:
            assert all(ending.startswith(b"HTTP/1.1 408") for ending in endings.values()), endings
    finally:
        for sock in slow:
            sock.close()


async def test_forwarded_headers_are_not_believed_from_unlisted_addresses(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    """Issue 14: a fresh X-Forwarded-For per attempt bypassed the admin's login throttle (uvicorn trusts proxy
    headers from loopback by default, where every backend runs)."""
    sup = start(tmp_path, supervisor_factory, ENABLE_ADMIN_UI="true", ADMIN_PASSWORD="right-password")
    statuses = []
    with httpx2.Client(base_url=sup.base, timeout=10) as http:
        for attempt in range(8):
            response = http.post(
                "/admin/login",
                content=json.dumps({"username": "admin", "password": f"wrong-{attempt}"}),
                headers={"content-type": "application/json", "x-forwarded-for": f"203.0.113.{attempt + 1}"},
            )
            statuses.append(response.status_code)
    print(f"\nlogin attempts with a fresh X-Forwarded-For each: {statuses}")
    assert statuses[:5] == [401] * 5 and 429 in statuses[5:], statuses


async def test_forwarded_headers_are_believed_from_a_listed_proxy(tmp_path: Path, supervisor_factory: Any) -> None:
    """With FORWARDED_ALLOW_IPS naming the proxy, each forwarded client is throttled on its own."""
    sup = start(
        tmp_path,
        supervisor_factory,
        ENABLE_ADMIN_UI="true",
        ADMIN_PASSWORD="right-password",
        FORWARDED_ALLOW_IPS="127.0.0.1",
    )
    statuses = []
    with httpx2.Client(base_url=sup.base, timeout=10) as http:
        for attempt in range(8):
            response = http.post(
                "/admin/login",
                content=json.dumps({"username": "admin", "password": "wrong"}),
                headers={"content-type": "application/json", "x-forwarded-for": f"203.0.113.{attempt + 1}"},
            )
            statuses.append(response.status_code)
    assert statuses == [401] * 8, statuses
