"""The legacy HTTP+SSE front end and the stdio front end, driven by the official SDK client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client

from tests.e2e.conftest import SUPERVISOR_CMD, RunningSupervisor, alive, stdio_fixture_entry, write_config
from tests.helpers import async_wait_until, backend_pids

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


@pytest.fixture
def secured(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")}, {"local--add": {"enabled": False}})
    sup: RunningSupervisor = supervisor_factory(config_dir, {"ALLOWED_KEYS": "sse-key", "ALLOWED_TOKENS": "sse-token"})
    sup.wait_linked({"local"})
    return sup


@pytest.mark.parametrize(
    ("suffix", "headers"),
    [("?key=sse-key", None), ("", {"X-Api-Key": "sse-key"}), ("", {"Authorization": "Bearer sse-token"})],
    ids=["query-key", "header-key", "bearer"],
)
async def test_sdk_client_over_sse(secured: RunningSupervisor, suffix: str, headers: dict[str, str] | None) -> None:
    async with (
        sse_client(f"{secured.base}/sse{suffix}", headers=headers) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"local--echo", "local--slow", "local--whoami"}
        assert text_of(await client.call_tool("local--echo", {"text": "sse"})) == "local: sse"


async def test_sse_edge_cases(secured: RunningSupervisor) -> None:
    base = secured.base
    async with httpx2.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{base}/sse")).status_code == 401
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        key = {"X-Api-Key": "sse-key"}
        assert (await http.post(f"{base}/message", json=ping, headers=key)).status_code == 400
        assert (await http.post(f"{base}/message?sessionId=nope", json=ping, headers=key)).status_code == 404
        # A live session cannot be used with another credential, nor without any (mcp-proxy-server allowed that).
        async with http.stream("GET", f"{base}/sse", headers=key) as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == "event: endpoint"
            endpoint = (await anext(lines)).removeprefix("data: ")
            assert endpoint.startswith("/message?sessionId=")
            assert (await http.post(f"{base}{endpoint}", json=ping)).status_code == 401
            other = {"Authorization": "Bearer sse-token"}
            assert (await http.post(f"{base}{endpoint}", json=ping, headers=other)).status_code == 404
            assert (await http.post(f"{base}{endpoint}", json=ping, headers=key)).status_code == 202
            malformed = await http.post(
                f"{base}{endpoint}", content=b"{nope", headers={**key, "content-type": "application/json"}
            )
            assert malformed.status_code == 400 and malformed.json()["error"]["code"] == -32700


async def test_stdio_front_end_runs_the_tree_and_leaves_nothing(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local"), "other": stdio_fixture_entry("other")})
    params = StdioServerParameters(command=SUPERVISOR_CMD, args=["stdio", "--config-dir", str(config_dir)])
    with open(tmp_path / "stderr.log", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            # The first listing already has every backend: the gateway waits for backends still starting.
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"local--echo", "other--echo"} <= names
            assert text_of(await client.call_tool("other--echo", {"text": "stdio"})) == "other: stdio"
            status = subprocess.run(
                [SUPERVISOR_CMD, "status", "--json", "--config-dir", str(config_dir)],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
            snapshot = json.loads(status.stdout)
            workers = [b["pid"] for b in snapshot["backends"]]
            backends = [pid for worker in workers for pid in backend_pids(worker)]
            assert len(backends) >= 2, backends
            tree = {*backends, snapshot["gateway"]["pid"], *workers}
    # Closing stdin ends the whole tree, backends included.
    await async_wait_until(lambda: not alive(tree), 20, what="the stdio tree to exit")
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()


def stdio_params(tmp_path: Path, config_dir: Path, **env: str) -> StdioServerParameters:
    state = {"MCP_SUPERVISOR_STATE_DIR": str(tmp_path / "state"), **env}
    return StdioServerParameters(command=SUPERVISOR_CMD, args=["stdio", "--config-dir", str(config_dir)], env=state)


HANGING = {"type": "stdio", "command": sys.executable, "args": ["-c", "import time; time.sleep(600)"]}


async def test_stdio_initialize_waits_only_the_startup_wait_and_logs_for_whom(tmp_path: Path) -> None:
    """A backend that never answers initialize delayed the client's initialize by 15.6 s, silently."""
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local"), "hang": HANGING})
    params = stdio_params(tmp_path, config_dir, STARTUP_WAIT_SECONDS="3")
    with open(tmp_path / "stderr.log", "w") as errlog, anyio.fail_after(60):
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            began = time.monotonic()
            await client.initialize()
            waited = time.monotonic() - began
            assert waited < 8, f"initialize took {waited:.1f} s"

            async def local_listed() -> bool:
                return "local--echo" in {tool.name for tool in (await client.list_tools()).tools}

            await async_wait_until(local_listed, 30, what="local's tools")
            assert text_of(await client.call_tool("local--echo", {"text": "up"})) == "local: up"
    log = (tmp_path / "stderr.log").read_text()
    waiting = [line for line in log.splitlines() if "Waiting up to" in line]
    assert waiting and "hang" in waiting[-1], log[-3000:]
    assert "Answering without backends still starting" in log and "STARTUP_WAIT_SECONDS" in log, log[-3000:]


async def test_a_second_stdio_supervisor_answers_initialize_with_why_it_cannot_serve(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    supervisor_factory(config_dir)  # already serving this config dir
    with open(tmp_path / "stderr.log", "w") as errlog, anyio.fail_after(30):
        params = stdio_params(tmp_path, config_dir)
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            with pytest.raises(MCPError) as refused:
                await client.initialize()
    assert "already running for" in str(refused.value) and str(config_dir) in str(refused.value), refused.value


async def test_stdio_requests_sent_before_the_initialize_reply_wait_for_it(tmp_path: Path) -> None:
    """A client that writes initialize, initialized and a call at once: the call is answered, after the
    initialize result, and no list_changed comes before that result."""
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    initialize = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "local--echo", "arguments": {"text": "hi"}},
        },
    ]
    env = {**os.environ, "MCP_SUPERVISOR_STATE_DIR": str(tmp_path / "state")}
    command = [SUPERVISOR_CMD, "stdio", "--config-dir", str(config_dir)]
    received: list[dict[str, Any]] = []
    with open(tmp_path / "stderr.log", "wb") as errlog:
        async with await anyio.open_process(command, env=env, stderr=errlog) as process:
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
            buffered = b""
            with anyio.fail_after(60):
                while not any(message.get("id") == 2 for message in received):
                    buffered += await process.stdout.receive()
                    *complete, buffered = buffered.split(b"\n")
                    received += [json.loads(line) for line in complete if line.strip()]
            await process.stdin.aclose()
            with anyio.fail_after(30):
                await process.wait()
    assert received[0].get("id") == 1 and "result" in received[0], received[:3]
    call = next(message for message in received if message.get("id") == 2)
    assert "result" in call, call
    assert call["result"]["content"][0]["text"] == "local: hi", call
