"""Transparency for every pair of eras, with a dual-era SDK 2.x backend and no `"protocol"` setting.

tests/fixtures/dual_era_server.py is written in the SDK's documented style: `interview` asks the user and the
client's LLM with real server→client requests (handshake era only), `greet` returns an InputRequiredResult
(2026-07-28 only). Each client, handshake-era or 2026-07-28, must get through the gateway exactly what it gets
when it connects to the backend directly; the test runs the same calls both ways and compares.

Before this work the worker spoke 2026-07-28 to such a backend for every client: a handshake-era client's
`interview` said "interview failed: Cannot send 'elicitation/create': this transport context has no
back-channel …" through the gateway, and "Ada asked; …" directly. And a 2026-07-28 client that declares no
roots got -32021 ("The backend serving this request needs the client's roots capability") from a handshake-era
backend that asks for roots, where a direct client without roots gets the tool's result.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp_types import CreateMessageResult, ElicitResult, TextContent

from tests.e2e.conftest import ROOT, RunningSupervisor, write_config
from tests.e2e.test_modern_clients import ENVELOPE, post, routing
from tests.helpers import free_port, port_open, stop_process, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

DUAL = ROOT / "tests" / "fixtures" / "dual_era_server.py"
MODERN = "2026-07-28"
CALLS: list[tuple[str, dict[str, Any]]] = [("whoami", {}), ("interview", {"topic": "tea"}), ("greet", {})]


async def elicit(context: Any, params: Any) -> ElicitResult:
    return ElicitResult(action="accept", content={"name": "Ada"})


async def sample(context: Any, params: Any) -> CreateMessageResult:
    return CreateMessageResult(role="assistant", content=TextContent(type="text", text="hi"), model="m")


async def outcomes(target: Any, mode: str, prefix: str = "", **callbacks: Any) -> dict[str, str]:
    """What each of CALLS gives a client of `mode`: the text of its result, or its JSON-RPC error code."""
    got: dict[str, str] = {}
    with anyio.fail_after(60):
        async with Client(target, mode=mode, **callbacks) as client:
            for tool, arguments in CALLS:
                try:
                    result = await client.call_tool(prefix + tool, arguments)
                    got[tool] = "".join(getattr(block, "text", "") for block in result.content)
                except MCPError as exc:
                    got[tool] = f"error {exc.error.code}"
    return got


@pytest.fixture(scope="module")
def dual_http() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(DUAL), "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: port_open(port), 30, what="the dual-era fixture over HTTP")
        yield port
    finally:
        stop_process(process)


def entry_for(transport: str, port: int) -> dict[str, Any]:
    if transport == "http":
        return {"type": "http", "url": f"http://127.0.0.1:{port}/mcp"}
    return {"type": "stdio", "command": sys.executable, "args": [str(DUAL)]}


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_each_client_gets_its_own_era_of_a_dual_era_backend(
    tmp_path: Path, supervisor_factory: Any, dual_http: int, transport: str
) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"dual": entry_for(transport, dual_http)})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"dual"})
    direct: Any = (
        f"http://127.0.0.1:{dual_http}/mcp"
        if transport == "http"
        else StdioServerParameters(command=sys.executable, args=[str(DUAL)])
    )
    callbacks = {"elicitation_callback": elicit, "sampling_callback": sample}

    handshake = await outcomes(sup.url, "legacy", "dual--", **callbacks)
    assert handshake["interview"] == "Ada asked; the LLM said: hi", handshake
    assert handshake["whoami"] == "2025-11-25"
    assert handshake == await outcomes(direct, "legacy", **callbacks)

    modern = await outcomes(sup.url, MODERN, "dual--", **callbacks)
    assert modern["greet"] == "Hello, Ada!", modern  # InputRequiredResult rounds, driven by the SDK client
    assert modern["whoami"] == MODERN
    assert modern == await outcomes(direct, MODERN, **callbacks)


async def legacy_roots_answer(url: str) -> str:
    with anyio.fail_after(60):
        async with Client(url, mode="legacy") as client:  # declares no roots
            result = await client.call_tool("dual--roots_or_error", {})
    return "".join(getattr(block, "text", "") for block in result.content)


async def modern_roots_answer(url: str) -> dict[str, Any]:
    """A 2026-07-28 tools/call declaring no client capabilities at all (fastmcp's default Client(url))."""
    tool = "dual--roots_or_error"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    body["params"]["_meta"] = ENVELOPE  # type: ignore[index]
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await post(http, url, body, **routing("tools/call", tool))
    assert response.status_code == 200, response.text
    decoded: dict[str, Any] = response.json()
    return decoded


async def test_a_client_without_roots_gets_the_tools_result(tmp_path: Path, supervisor_factory: Any) -> None:
    """A handshake-era backend (here the dual-era fixture pinned to it, as @playwright/mcp is one) asks for
    roots: a client that declared none gets the tool's result, in both eras; the backend's roots/list got the
    error a client without roots answers (-32601). Before: the 2026-07-28 request failed with HTTP 400, -32021
    "The backend serving this request needs the client's roots capability"."""
    config_dir = tmp_path / "config"
    entry = {**entry_for("stdio", 0), "protocol": "legacy"}
    write_config(config_dir, {"dual": entry})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"dual"})
    modern = await modern_roots_answer(sup.url)
    assert modern["result"]["content"][0]["text"] == "no roots: error -32601", modern
    assert await legacy_roots_answer(sup.url) == "no roots: error -32601"
