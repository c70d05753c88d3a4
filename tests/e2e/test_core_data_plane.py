"""Issue 2 end to end: the real `mcp-supervisor start`, three real backends, the official SDK client on /mcp."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError

from tests.e2e.conftest import FIXTURE_SERVER, alive, stdio_fixture_entry, write_config
from tests.helpers import async_wait_until, backend_pids, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOOL_CONFIG = {
    "local--add": {"enabled": False},
    # mcp-proxy-server's README spelling...
    "remote--echo": {"displayName": "remote_echo", "description": "Echo, through Streamable HTTP."},
    # ...and mcp-proxy-server's code spelling.
    "time--convert_time": {"exposedName": "tz_convert", "exposedDescription": "Convert between zones."},
}


def three_backends(tmp_path: Path, http_port: int, key: str) -> Path:
    config_dir = tmp_path / "config"
    write_config(
        config_dir,
        {
            # Its slow tool signals through a marker file in tmp_path, which the sandbox must let it write.
            "local": stdio_fixture_entry("local", sandbox={"writePaths": [str(tmp_path)]}),
            "remote": {"type": "http", "url": f"http://127.0.0.1:{http_port}/mcp", "apiKey": key},
            "time": {"type": "stdio", "command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
            "dormant": {"type": "stdio", "command": "/nonexistent/never-started", "active": "false"},
        },
        TOOL_CONFIG,
    )
    return config_dir


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def test_aggregates_and_calls_three_backends(
    tmp_path: Path, supervisor_factory: Any, http_backend: tuple[int, str]
) -> None:
    sup = supervisor_factory(three_backends(tmp_path, *http_backend))
    sup.wait_linked({"local", "remote", "time"})
    assert "dormant" not in sup.backends()

    async with mcp_client(sup.url) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {
            "local--echo",
            "local--slow",
            "local--whoami",  # local--add is disabled
            "remote_echo",
            "remote--add",
            "remote--slow",
            "remote--whoami",
            "time--get_current_time",
            "tz_convert",
        }
        assert tools["remote_echo"].description == "Echo, through Streamable HTTP."
        assert tools["tz_convert"].description == "Convert between zones."
        # Every tool field passes through, not only name and description; the title says whose tool it is.
        assert tools["remote--add"].title == "remote: Add two numbers"
        assert tools["remote--add"].annotations is not None and tools["remote--add"].annotations.read_only_hint
        assert tools["local--echo"].output_schema is not None

        local = await client.call_tool("local--echo", {"text": "hi"})
        assert text_of(local) == "local: hi" and not local.is_error
        remote = await client.call_tool("remote_echo", {"text": "there"})
        assert text_of(remote) == "remote: there"
        assert (await client.call_tool("remote--add", {"a": 2, "b": 40})).structured_content == {"result": 42}
        now = await client.call_tool("time--get_current_time", {"timezone": "Asia/Tokyo"})
        assert json.loads(text_of(now))["timezone"] == "Asia/Tokyo"

        with pytest.raises(MCPError) as unknown:
            await client.call_tool("local--add", {"a": 1, "b": 1})  # disabled = not exposed
        assert "local--add" in str(unknown.value)


async def test_process_titles_one_worker_per_backend(
    tmp_path: Path, supervisor_factory: Any, http_backend: tuple[int, str]
) -> None:
    sup = supervisor_factory(three_backends(tmp_path, *http_backend))
    sup.wait_linked({"local", "remote", "time"})
    titles = sup.titles()
    assert sum(t.startswith("mcp-supervisor: supervisor") for t in titles) == 1
    assert sum(t == "mcp-supervisor: gateway" for t in titles) == 1
    for key in ("local", "remote", "time"):
        assert sum(t == f"mcp-supervisor: worker[{key}]" for t in titles) == 1, titles
    assert not any("dormant" in t for t in titles)


async def test_sigkill_of_busy_worker_fails_in_flight_call_then_recovers(
    tmp_path: Path, supervisor_factory: Any, http_backend: tuple[int, str]
) -> None:
    sup = supervisor_factory(three_backends(tmp_path, *http_backend))
    before = sup.wait_linked({"local", "remote", "time"})
    marker = tmp_path / "slow-started"

    async with mcp_client(sup.url) as client:
        (backend_pid,) = backend_pids(before["local"]["pid"])
        remote_pid = (await client.call_tool("remote--whoami", {})).structured_content["pid"]
        time_backend = [p.pid for p in sup.tree() if "mcp-server-time" in " ".join(p.cmdline())]
        outcome: dict[str, Any] = {}

        async def slow_call() -> None:
            try:
                outcome["result"] = await client.call_tool("local--slow", {"seconds": 60, "marker": str(marker)})
            except MCPError as exc:
                outcome["error"] = exc

        async with anyio.create_task_group() as group:
            group.start_soon(slow_call)
            await async_wait_until(marker.exists, 15, what="the slow call to reach the backend")
            os.kill(before["local"]["pid"], signal.SIGKILL)
            with anyio.fail_after(2):  # an error, not a hang
                await async_wait_until(lambda: bool(outcome), 2, what="the in-flight call to end")
        assert "error" in outcome, outcome
        assert "local" in str(outcome["error"])

        # Other backends are unaffected meanwhile.
        assert text_of(await client.call_tool("remote_echo", {"text": "still here"})) == "remote: still here"

        async def local_answers() -> bool:
            try:
                return text_of(await client.call_tool("local--echo", {"text": "back"})) == "local: back"
            except MCPError:
                return False

        await async_wait_until(local_answers, 20, interval=0.1, what="the restarted backend to answer")
        # Nothing else was touched: the other workers and the other stdio backend kept their processes.
        now = sup.backends()
        assert now["time"]["pid"] == before["time"]["pid"] and now["remote"]["pid"] == before["remote"]["pid"]
        assert time_backend and not set(time_backend) - set(alive(set(time_backend)))
        assert (await client.call_tool("remote--whoami", {})).structured_content["pid"] == remote_pid
        after = sup.backends()["local"]
        assert after["pid"] != before["local"]["pid"] and after["generation"] == before["local"]["generation"] + 1
        assert after["restarts"] == 1
    # The killed worker's backend was adopted by the supervisor and swept.
    await async_wait_until(lambda: not alive({backend_pid}), 10, what="the orphaned backend to be swept")


async def test_call_to_a_down_backend_names_it(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir = tmp_path / "config"
    poison = tmp_path / "poison"
    write_config(
        config_dir,
        {
            "local": stdio_fixture_entry(
                "local", args=[str(FIXTURE_SERVER), "--name", "local", "--crash-if", str(poison)]
            )
        },
    )
    sup = supervisor_factory(config_dir)
    first = sup.wait_linked({"local"})
    async with mcp_client(sup.url) as client:
        assert (await client.call_tool("local--echo", {"text": "x"})).content
        poison.touch()  # from now on the backend crashes at start: it stays down, restarting with backoff
        os.kill(first["local"]["pid"], signal.SIGKILL)
        await async_wait_until(
            lambda: sup.backends()["local"].get("last_error"), 10, what="a failed restart to be reported"
        )
        with pytest.raises(MCPError) as down:
            await client.call_tool("local--echo", {"text": "x"})
        assert 'Backend "local" is not available' in str(down.value)
        assert "last error: The backend closed the connection" in str(down.value)
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("local--nonexistent", {})
        assert "Unknown tool" in str(unknown.value)


async def test_stop_leaves_no_process_behind(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"a": stdio_fixture_entry("a"), "b": stdio_fixture_entry("b")})
    sup = supervisor_factory(config_dir)
    sup.wait_linked({"a", "b"})
    pids = {p.pid for p in sup.tree()}
    assert len(pids) >= 6  # supervisor, gateway, 2 workers, 2 backends
    assert sup.stop() == 0
    await async_wait_until(lambda: not alive(pids), 10, what="every process of the tree to exit")


async def test_sse_backend_with_bearer_token(
    tmp_path: Path, supervisor_factory: Any, sse_backend: tuple[int, str]
) -> None:
    port, token = sse_backend
    config_dir = tmp_path / "config"
    write_config(
        config_dir,
        {
            "legacy": {"type": "sse", "url": f"http://127.0.0.1:{port}/sse", "bearerToken": token},
            "denied": {"type": "sse", "url": f"http://127.0.0.1:{port}/sse", "apiKey": "wrong"},
        },
    )
    sup = supervisor_factory(config_dir)
    sup.wait_linked({"legacy"})
    async with mcp_client(sup.url) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "legacy--echo" in names and not any(name.startswith("denied--") for name in names)
        assert text_of(await client.call_tool("legacy--echo", {"text": "over sse"})) == "legacy: over sse"
    # The backend refusing the wrong key is a failed backend, reported with the reason.
    denied = await async_wait_until(lambda: sup.backends()["denied"].get("last_error"), 15, what="denied error")
    assert "401" in denied or "Unauthorized" in denied, denied
