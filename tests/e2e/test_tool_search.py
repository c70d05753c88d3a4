"""Tool search (issue 26) through the real supervisor: clients in search mode list `search_tools` and
`call_tool`, find a tool by what it does and call it, in both eras and on every front end; a tool that elicits
works through `call_tool` (a handshake-era client answers the backend's request on its call's stream, a
2026-07-28 client in InputRequiredResult rounds); a tool the profile hides is neither found nor callable through
`call_tool`; the audit trail names the real tool.

On the code before tool search every `call_tool` and `search_tools` was "Unknown tool: 'call_tool'".
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, ClientSession, MCPError, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ElicitResult

from tests.e2e.conftest import SUPERVISOR_CMD, RunningSupervisor, stdio_fixture_entry, write_config
from tests.e2e.test_aggregation import catalog_entry
from tests.helpers import async_wait_until, mcp_client
from tests.npm_tools import INSTALL_HINT, NODE, NODE_MODULES, NPM_TOOLS_DIR, installed_version, locked_version

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.e2e,
    # logging/setLevel is a handshake-era method: the point of the progress/logging test, not a mistake.
    pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning"),
]

MODERN = "2026-07-28"
ANN, BOB = "ann-key", "bob-key"
CLIENTS = {
    "clients": {
        "ann": {"match": {"keys": [ANN]}, "alwaysShow": ["local--echo"]},
        # Bob may not ask users anything: cat--ask_user is hidden from him.
        "bob": {"match": {"keys": [BOB]}, "tools": {"deny": ["cat--ask_*"]}},
    }
}
META = ["search_tools", "call_tool"]


@pytest.fixture
def gateway(tmp_path: Path, supervisor_factory: Any) -> tuple[RunningSupervisor, Path]:
    config_dir = tmp_path / "config"
    # The catalog fixture asks its client with server->client requests (handshake era): elicitation.
    # startTimeout: room for Python backends on a loaded machine (their SDK import alone can take seconds).
    local = stdio_fixture_entry("local", startTimeout=120)
    # The catalog fixture leaves cancellation markers in tmp_path, which its sandbox must let it write.
    cat = catalog_entry("cat", protocol="legacy", startTimeout=120, sandbox={"writePaths": [str(tmp_path)]})
    write_config(config_dir, {"local": local, "cat": cat})
    (config_dir / "clients.json").write_text(json.dumps(CLIENTS))
    audit = tmp_path / "audit" / "audit.jsonl"
    audit.parent.mkdir()
    env = {"ALLOWED_KEYS": f"{ANN},{BOB}", "AUDIT_LOG": str(audit), "TOOL_SEARCH": "on"}
    sup: RunningSupervisor = supervisor_factory(config_dir, env)
    sup.credential = {"X-Api-Key": ANN}
    sup.wait_linked({"local", "cat"}, timeout=120)
    return sup, audit


@asynccontextmanager
async def client(url: str, key: str, mode: str, answers: list[str] | None = None) -> AsyncIterator[Client]:
    """The SDK client with `key`, in era `mode`; its elicitation callback answers "<key>-blue"."""

    async def elicitation(context: Any, params: Any) -> ElicitResult:
        if answers is not None:
            answers.append(params.message)
        return ElicitResult(action="accept", content={"colour": f"{key}-blue"})

    async with httpx2.AsyncClient(headers={"x-api-key": key}, timeout=httpx2.Timeout(30, read=60)) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, elicitation_callback=elicitation) as connected:
            yield connected


def text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def found(session: Client | ClientSession, query: str, limit: int = 5) -> list[str]:
    result = await session.call_tool("search_tools", {"query": query, "limit": limit})
    assert result.is_error is not True, text(result)
    tools = result.structured_content["tools"]  # type: ignore[index]
    if tools:  # the same matches as text, for text-only clients
        assert tools == json.loads(text(result))["tools"]
    else:
        assert text(result).startswith("No tool matches")
    for tool in tools:
        assert {"name", "description", "inputSchema"} <= set(tool)
    return [tool["name"] for tool in tools]


def audit_lines(audit: Path) -> list[dict[str, Any]]:
    if not audit.exists():
        return []
    return [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_find_and_call_through_search_and_profiles_hold(
    gateway: tuple[RunningSupervisor, Path], mode: str
) -> None:
    sup, audit = gateway
    asked: list[str] = []
    with anyio.fail_after(90):
        async with client(sup.url, ANN, mode, asked) as ann:
            assert [tool.name for tool in (await ann.list_tools()).tools] == [*META, "local--echo"]
            assert (await found(ann, "ask the user for a colour"))[0] == "cat--ask_user"
            assert (await found(ann, "echo some text back"))[0] == "local--echo"
            # A tool that elicits: the handshake-era client answers on its call's stream, the 2026-07-28 one in
            # InputRequiredResult rounds, both through call_tool.
            called = await ann.call_tool("call_tool", {"name": "cat--ask_user", "arguments": {"question": "colour?"}})
            assert text(called) == f"accept: {ANN}-blue"
            echoed = await ann.call_tool("call_tool", {"name": "local--echo", "arguments": {"text": mode}})
            assert text(echoed) == f"local: {mode}"
            # A tool found by search may be called directly too: it is in the client's view, only not listed.
            assert text(await ann.call_tool("local--echo", {"text": "direct"})) == "local: direct"
            with pytest.raises(MCPError) as unknown:
                await ann.call_tool("call_tool", {"name": "local--nope", "arguments": {}})
            assert unknown.value.error.code == -32602 and "local--nope" in unknown.value.error.message
        async with client(sup.url, BOB, mode) as bob:
            assert [tool.name for tool in (await bob.list_tools()).tools] == META
            assert "cat--ask_user" not in await found(bob, "ask the user for a colour", 50)
            with pytest.raises(MCPError) as hidden:
                await bob.call_tool("call_tool", {"name": "cat--ask_user", "arguments": {"question": "colour?"}})
            # Exactly what a direct call of a tool that does not exist gets.
            assert hidden.value.error.code == -32602
            assert hidden.value.error.message == "Unknown tool: 'cat--ask_user' is not exposed by this gateway."
            assert text(await bob.call_tool("call_tool", {"name": "cat--nap", "arguments": {"seconds": 0}}))
    assert asked == ["colour?"]
    await async_wait_until(lambda: len(audit_lines(audit)) >= 4, 10, what="four audit lines")
    lines = audit_lines(audit)
    # The trail names the tool that ran, never the meta-tool; search_tools and the refused call reach nothing.
    assert [(line["principal"]["client"], line["name"], line["backend"]) for line in lines] == [
        ("ann", "cat--ask_user", "cat"),
        ("ann", "local--echo", "local"),
        ("ann", "local--echo", "local"),
        ("bob", "cat--nap", "cat"),
    ]
    assert all(line["outcome"] == "ok" for line in lines)


async def test_progress_logging_and_cancellation_through_call_tool(
    gateway: tuple[RunningSupervisor, Path], tmp_path: Path
) -> None:
    sup, _ = gateway
    logs: list[str] = []
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    with anyio.fail_after(90):
        async with mcp_client(sup.url, {"X-Api-Key": ANN}, notifications=logs) as session:
            await session.set_logging_level("info")
            call = {"name": "cat--count", "arguments": {"n": 3}}
            counted = await session.call_tool("call_tool", call, progress_callback=on_progress)
            assert text(counted) == "counted 3"
            assert progress == [1, 2, 3]  # the client's own progress token, on call_tool's request
            await async_wait_until(lambda: "notifications/message" in logs, 10, what="the backend's log line")
            marker = tmp_path / "wait"
            waiting = {"name": "cat--wait_for_cancel", "arguments": {"marker": str(marker)}}
            async with anyio.create_task_group() as group:
                group.start_soon(session.call_tool, "call_tool", waiting)
                await async_wait_until(lambda: marker.with_suffix(".started").exists(), 30, what="the call to start")
                group.cancel_scope.cancel()  # the SDK sends notifications/cancelled for call_tool's request id
            await async_wait_until(
                lambda: marker.with_suffix(".cancelled").exists(), 10, what="the backend to see the cancellation"
            )


async def test_the_index_follows_catalog_changes(gateway: tuple[RunningSupervisor, Path]) -> None:
    """tool_config.json disables one tool and renames another: the client is told, and its next search sees it."""
    sup, _ = gateway
    seen: list[str] = []
    with anyio.fail_after(90):
        async with mcp_client(sup.url, {"X-Api-Key": ANN}, notifications=seen) as session:
            assert (await found(session, "report progress"))[0] == "cat--count"
            tools = {"cat--count": {"enabled": False}, "cat--nap": {"displayName": "snooze"}}
            # A backend linking just before the write may have announced a list_changed of its own (debounced):
            # only one that arrives after the write counts, and the search is polled until it follows.
            before = seen.count("notifications/tools/list_changed")
            (sup.config_dir / "tool_config.json").write_text(json.dumps({"tools": tools}))
            await async_wait_until(
                lambda: seen.count("notifications/tools/list_changed") > before, 20, what="list_changed"
            )

            async def followed() -> bool:
                return "cat--count" not in await found(session, "report progress n times", 50)

            await async_wait_until(followed, 20, interval=0.2, what="the index to drop the disabled tool")
            assert (await found(session, "snooze"))[0] == "snooze"
            assert text(await session.call_tool("call_tool", {"name": "snooze", "arguments": {"seconds": 0}}))


async def test_sse_front_end_and_honest_cache_hints(gateway: tuple[RunningSupervisor, Path]) -> None:
    sup, _ = gateway
    with anyio.fail_after(60):
        async with (
            sse_client(f"{sup.base}/sse", headers={"X-Api-Key": ANN}) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            assert (await found(session, "report progress"))[0] == "cat--count"
            counted = await session.call_tool("call_tool", {"name": "cat--count", "arguments": {"n": 2}})
            assert counted.is_error is not True and text(counted)
    # 2026-07-28: search mode is per profile here, so the list is private; complete, with the catalog's TTL.
    envelope = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "wire-test", "version": "1"},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": envelope}}
    headers = {
        "x-api-key": BOB,
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/list",
        "accept": "application/json, text/event-stream",
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        result = (await http.post(sup.url, json=body, headers=headers)).json()["result"]
    assert [tool["name"] for tool in result["tools"]] == META
    assert result["cacheScope"] == "private" and result["resultType"] == "complete"


async def test_stdio_front_end_with_the_global_default(tmp_path: Path) -> None:
    """No clients.json: TOOL_SEARCH=auto switches search on for a view past TOOL_SEARCH_THRESHOLD."""
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local", startTimeout=120)})
    env = {"MCP_SUPERVISOR_STATE_DIR": str(tmp_path / "state"), "TOOL_SEARCH": "auto", "TOOL_SEARCH_THRESHOLD": "3"}
    env["STARTUP_WAIT_SECONDS"] = "120"  # the first list waits for the backend, however loaded the machine
    params = StdioServerParameters(command=SUPERVISOR_CMD, args=["stdio", "--config-dir", str(config_dir)], env=env)
    with anyio.fail_after(150):
        async with Client(params, mode=MODERN) as stdio:
            assert [tool.name for tool in (await stdio.list_tools()).tools] == META  # 4 tools > 3
            assert (await found(stdio, "add two numbers"))[0] == "local--add"
            added = await stdio.call_tool("call_tool", {"name": "local--add", "arguments": {"a": 2, "b": 3}})
            assert text(added) == "5"


INSPECTOR_PACKAGE = "@modelcontextprotocol/inspector"
INSPECTOR_JS = NODE_MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"


def inspector(sup: RunningSupervisor, key: str, era: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One run of the MCP Inspector's CLI (`mcp-inspector --cli`) against the gateway, JSON output."""
    version = installed_version(INSPECTOR_PACKAGE)
    if not INSPECTOR_JS.exists() or version != locked_version(INSPECTOR_PACKAGE):
        pytest.fail(f"{INSPECTOR_PACKAGE} is not installed in {NPM_TOOLS_DIR} (found {version}). {INSTALL_HINT}")
    command = [str(NODE), str(INSPECTOR_JS), "--cli", sup.url, "--transport", "http", "--header", f"X-Api-Key: {key}"]
    command += ["--protocol-era", era, "--format", "json", "-q", "--method", "tools/call", *args]
    # Its catalog file goes to HOME: the test's own, never the machine's.
    env = {**os.environ, "HOME": str(sup.config_dir.parent)}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)


def inspector_result(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, f"{done.args}\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)["result"]
    return result


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_the_inspector_cli_finds_and_calls(gateway: tuple[RunningSupervisor, Path], era: str) -> None:
    """A second real client, in both eras: the MCP Inspector's CLI, with every argument given as key=value."""
    sup, audit = gateway
    searched = inspector_result(
        inspector(sup, ANN, era, "--tool-name", "search_tools", "--tool-arg", "query=report progress", "limit=3")
    )
    assert searched["structuredContent"]["tools"][0]["name"] == "cat--count"
    call = ("--tool-name", "call_tool", "--tool-arg", "name=cat--count", 'arguments={"n": 2}')
    called = inspector_result(inspector(sup, ANN, era, *call))
    assert called["content"][0]["text"] == "counted 2" and not called.get("isError")
    refused = inspector(sup, BOB, era, "--tool-name", "call_tool", "--tool-arg", "name=cat--ask_user")
    assert refused.returncode != 0 and "Unknown tool: 'cat--ask_user'" in refused.stdout + refused.stderr
    await async_wait_until(lambda: len(audit_lines(audit)) >= 1, 10, what="the audit line of cat--count")
    assert [line["name"] for line in audit_lines(audit)] == ["cat--count"]
