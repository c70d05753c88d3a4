"""No tenant reaches another (issue 14, finding 2): notifications, server→client requests, session quotas, memory.

Two credentials (ann, bob) share one gateway and the same backends. What a backend sends because of ann's call
goes to ann's session only; a server request that cannot be attributed to one credential is refused, never
guessed across credentials; a client that never answers holds nobody for long; one credential cannot fill the
session table; idle sessions plus a log flood do not blow up the gateway's memory.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CreateMessageResult, TextContent

from tests.e2e.conftest import RunningSupervisor, write_config
from tests.e2e.test_aggregation import catalog_entry
from tests.e2e.test_delivery import FLOOD_SERVER, KEY_A, KEY_B
from tests.helpers import async_wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

AUTH = {"ALLOWED_KEYS": f"{KEY_A},{KEY_B}"}
ACCEPT = {"Accept": "application/json, text/event-stream"}


def flood_entry() -> dict[str, Any]:
    return {"type": "stdio", "command": sys.executable, "args": [str(FLOOD_SERVER)]}


@contextlib.asynccontextmanager
async def client(
    sup: RunningSupervisor, key: str, logs: list[str] | None = None, who: str | None = None, silent: bool = False
) -> AsyncIterator[ClientSession]:
    """An SDK client on /mcp as credential `key`; its log lines go to `logs`; with `who`, it answers sampling
    as `who` (or, `silent`, never answers at all)."""

    async def logging(params: Any) -> None:
        if logs is not None:
            logs.append(str(params.data))

    async def sampling(context: Any, params: Any) -> CreateMessageResult:
        if silent:
            await anyio.sleep_forever()
        return CreateMessageResult(
            role="assistant",
            content=TextContent(type="text", text=f"{who} on {params.messages[0].content.text}"),
            model="fake",
        )

    callbacks: dict[str, Any] = {"logging_callback": logging}
    if who is not None:
        callbacks["sampling_callback"] = sampling
    async with (
        httpx2.AsyncClient(headers={"X-Api-Key": key}, timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        streamable_http_client(sup.url, http_client=http) as (read, write),
        ClientSession(read, write, **callbacks) as session,
    ):
        await session.initialize()
        yield session


def text(result: Any) -> str:
    return str(result.content[0].text)


@pytest.fixture
def shared(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    # "cat" asks the client with server->client requests, which the 2026-07-28 era does not have.
    write_config(config_dir, {"flood": flood_entry(), "cat": catalog_entry("cat", protocol="legacy")})
    sup: RunningSupervisor = supervisor_factory(config_dir, {**AUTH, "SERVER_REQUEST_TIMEOUT_SECONDS": "2"})
    sup.wait_linked({"flood", "cat"})
    return sup


async def test_log_lines_go_to_the_session_they_concern(shared: RunningSupervisor) -> None:
    ann_logs: list[str] = []
    bob_logs: list[str] = []
    async with client(shared, KEY_A, ann_logs) as ann, client(shared, KEY_B, bob_logs) as bob:
        await bob.call_tool("flood--echo", {"text": "bob is here"})  # bob is initialized and listening
        assert text(await ann.call_tool("flood--flood", {"lines": 500, "tag": "ann"})) == "flooded ann"
        await async_wait_until(lambda: len(ann_logs) >= 500, 10, what="ann's 500 log lines")
        # A line logged with no request in flight goes to the sessions that set a level: ann did, bob did not.
        await ann.set_logging_level("info")
        assert text(await ann.call_tool("flood--log_later", {"tag": "unrelated"})) == "logged later"
        await async_wait_until(lambda: "unrelated later" in ann_logs, 10, what="the unattributed line at ann")
        await bob.call_tool("flood--echo", {"text": "still here"})
    assert bob_logs == []


async def test_a_server_request_never_reaches_another_credential(shared: RunningSupervisor) -> None:
    """bob's tool asks for sampling while ann's call is in flight at the same backend, and nothing in the
    request says whose it is: the gateway used to guess the most recent call (ann's), and bob's tool returned
    ann's answer. Now it is refused, the tools involved take turns from then on, and the retry is exact."""
    async with client(shared, KEY_A, who="ann") as ann, client(shared, KEY_B, who="bob") as bob:
        results: dict[str, str] = {}

        async def bobs(ticket: str) -> None:
            try:
                result = await bob.call_tool("cat--ask_llm_after", {"ticket": ticket, "delay": 0.5})
            except MCPError as exc:  # refused: the tool failed on the gateway's error, and says why
                results[ticket] = f"error: {exc}"
                return
            results[ticket] = text(result) if not result.is_error else f"error: {text(result)}"

        async with anyio.create_task_group() as group:
            group.start_soon(bobs, "bob-1")
            await anyio.sleep(0.1)  # bob's call is at the backend, waiting 0.5 s before it asks
            group.start_soon(ann.call_tool, "cat--nap", {"seconds": 1.0})
        assert "ann" not in results["bob-1"], results
        assert "could not be attributed" in results["bob-1"], results
        async with anyio.create_task_group() as group:
            group.start_soon(bobs, "bob-2")
            await anyio.sleep(0.1)
            group.start_soon(ann.call_tool, "cat--nap", {"seconds": 1.0})
        assert results["bob-2"] == "bob-2: bob on Pick a colour.", results


async def test_a_silent_client_holds_no_other_credentials_call(shared: RunningSupervisor) -> None:
    async with client(shared, KEY_A, who="ann", silent=True) as ann, client(shared, KEY_B, who="bob") as bob:
        # One unambiguous call teaches the gateway that the tool asks things: its calls take turns.
        assert (
            text(await bob.call_tool("cat--ask_llm_after", {"ticket": "t0", "delay": 0})) == "t0: bob on Pick a colour."
        )
        ann_result: list[Any] = []
        async with anyio.create_task_group() as group:

            async def anns() -> None:
                try:
                    ann_result.append(await ann.call_tool("cat--ask_llm_after", {"ticket": "a", "delay": 0}))
                except MCPError as exc:  # the backend's tool failed on the gateway's timeout error
                    ann_result.append(exc)

            group.start_soon(anns)
            await anyio.sleep(0.3)  # ann's call holds the turn, her client never answers its sampling request
            started = time.monotonic()
            with anyio.fail_after(20):
                result = await bob.call_tool("cat--ask_llm_after", {"ticket": "t1", "delay": 0})
            waited = time.monotonic() - started
        print(f"\nbob waited {waited:.1f} s behind a silent client")
        assert text(result) == "t1: bob on Pick a colour."
        assert waited < 5.0  # SERVER_REQUEST_TIMEOUT_SECONDS=2 bounds ann's turn
        assert ann_result and (isinstance(ann_result[0], MCPError) or ann_result[0].is_error)
        assert "did not answer within 2 s" in str(ann_result[0])


async def initialize(http: httpx2.AsyncClient, sup: RunningSupervisor, key: str) -> httpx2.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "q", "version": "1"}},
    }
    return await http.post(sup.url, json=body, headers={**ACCEPT, "X-Api-Key": key})


async def ping(http: httpx2.AsyncClient, sup: RunningSupervisor, key: str, session_id: str) -> int:
    body = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    headers = {**ACCEPT, "X-Api-Key": key, "Mcp-Session-Id": session_id}
    return (await http.post(sup.url, json=body, headers=headers)).status_code


async def test_one_credential_cannot_fill_the_session_table(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"flood": flood_entry()})
    env = {**AUTH, "MAX_SESSIONS": "6", "MAX_SESSIONS_PER_CREDENTIAL": "3"}
    sup: RunningSupervisor = supervisor_factory(config_dir, env)
    sup.wait_linked({"flood"})
    async with httpx2.AsyncClient(timeout=10) as http:
        anns = []
        for _ in range(10):
            reply = await initialize(http, sup, KEY_A)
            assert reply.status_code == 200, reply.text
            anns.append(reply.headers["mcp-session-id"])
        # ann holds her quota, her newest sessions: the least recently used ones made room.
        assert [await ping(http, sup, KEY_A, s) for s in anns] == [404] * 7 + [200] * 3
        for _ in range(3):
            reply = await initialize(http, sup, KEY_B)
            assert reply.status_code == 200, reply.text  # bob is not locked out
            assert await ping(http, sup, KEY_B, reply.headers["mcp-session-id"]) == 200


def gateway_rss(sup: RunningSupervisor) -> int:
    (gateway,) = [p for p in sup.tree() if " ".join(p.cmdline()).strip() == "mcp-supervisor: gateway"]
    return int(psutil.Process(gateway.pid).memory_info().rss)


async def test_idle_sessions_and_a_log_flood_stay_small(shared: RunningSupervisor) -> None:
    async with httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_connections=8)) as http:
        limiter = anyio.CapacityLimiter(8)

        async def idle() -> None:
            async with limiter:
                reply = await initialize(http, shared, KEY_B)
                assert reply.status_code == 200
                headers = {**ACCEPT, "X-Api-Key": KEY_B, "Mcp-Session-Id": reply.headers["mcp-session-id"]}
                notice = {"jsonrpc": "2.0", "method": "notifications/initialized"}
                assert (await http.post(shared.url, json=notice, headers=headers)).status_code == 202

        async with anyio.create_task_group() as group:
            for _ in range(3000):
                group.start_soon(idle)
    before = gateway_rss(shared)
    async with client(shared, KEY_A) as ann:
        assert text(await ann.call_tool("flood--flood", {"lines": 30_000, "tag": "ann"})) == "flooded ann"
    after = gateway_rss(shared)
    print(
        f"\ngateway RSS with 3000 idle sessions: {before / 2**20:.0f} MB, "
        f"after a 30 000-line flood {after / 2**20:.0f} MB"
    )
    assert after - before < 40 * 2**20
