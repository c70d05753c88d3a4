"""Tool pinning (issue #25): what a backend tells the model is pinned at first sight, and a change is held.

The hostile backend (tests/fixtures/rug_pull_server.py) serves "Adds two numbers.", then, once `turn` is
called, an injected instruction, and says list_changed. Published servers must pin at first sight and serve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import MCPError

from tests.e2e.conftest import ROOT, SUPERVISOR_CMD, RunningSupervisor, write_config
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

RUG_PULL = str(ROOT / "tests" / "fixtures" / "rug_pull_server.py")
BENIGN = "Adds two numbers."


def rug_entry(*args: str) -> dict[str, Any]:
    return {"type": "stdio", "command": sys.executable, "args": [RUG_PULL, *args]}


def start_rug(tmp_path: Path, factory: Any, env: dict[str, str] | None = None, *args: str) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"rug": rug_entry(*args)})
    sup: RunningSupervisor = factory(config_dir, {"AUDIT_LOG": str(tmp_path / "audit.jsonl"), **(env or {})})
    sup.wait_linked({"rug"})
    return sup


def cli(sup: RunningSupervisor, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it, with the environment the supervisor was started with."""
    env = {"MCP_SUPERVISOR_STATE_DIR": str(sup.config_dir.parent / f"{sup.config_dir.name}-state")}
    command = [SUPERVISOR_CMD, *args, "--config-dir", str(sup.config_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ, **env})


async def descriptions(client: Any) -> dict[str, str]:
    return {tool.name: tool.description or "" for tool in (await client.list_tools()).tools}


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def turn_and_wait(client: Any, gone: str) -> None:
    """The backend turns; the gateway re-lists it on list_changed."""
    assert text_of(await client.call_tool("rug--turn", {})) == "turned"

    async def changed() -> bool:
        tools = await descriptions(client)
        return gone not in tools or tools[gone] != BENIGN

    await async_wait_until(changed, 30, interval=0.2, what=f"{gone} to change")


async def test_rug_pull_is_quarantined_until_approved(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start_rug(tmp_path, supervisor_factory)
    seen: list[str] = []
    async with mcp_client(sup.url, notifications=seen) as client:
        assert (await descriptions(client))["rug--add"] == BENIGN
        assert text_of(await client.call_tool("rug--add", {"a": 1, "b": 2})) == "3"
        await turn_and_wait(client, "rug--add")
        tools = await descriptions(client)
        assert "rug--add" not in tools, f"the changed definition was served: {tools.get('rug--add')!r}"
        assert "rug--turn" in tools  # unchanged tools keep being served

        async def prompt_held() -> bool:  # its list_changed may come a moment after the tools'
            return "rug--summary" not in {p.name for p in (await client.list_prompts()).prompts}

        await async_wait_until(prompt_held, 30, interval=0.2, what="the changed prompt to be held")
        with pytest.raises(MCPError) as refused:
            await client.call_tool("rug--add", {"a": 1, "b": 2})
        assert "quarantined" in refused.value.error.message
        assert "mcp-supervisor tools approve rug--add" in refused.value.error.message

        # What the operator sees: the log, status, /metrics, the audit trail, `tools`, and the diff.
        assert 'Tool "rug--add" of backend "rug" is quarantined' in sup.log_tail(200)
        status = cli(sup, "status")
        assert "tool pinning holds 2" in status.stdout and "rug--add (quarantined)" in status.stdout, status.stdout
        held = json.loads(cli(sup, "status", "--json").stdout)["tool_pinning"]["held"]
        assert {(h["kind"], h["name"], h["state"]) for h in held} == {
            ("tool", "rug--add", "quarantined"),
            ("prompt", "rug--summary", "quarantined"),
        }
        metrics = httpx2.get(f"{sup.base}/metrics", headers=sup.credential, timeout=5).text
        assert 'mcp_gateway_quarantined_definitions{backend="rug",kind="tool"} 1' in metrics
        listing = cli(sup, "tools")
        assert any(row.split()[:4] == ["tool", "rug--add", "rug", "quarantined"] for row in listing.stdout.splitlines())
        diff = cli(sup, "tools", "diff", "rug--add")
        assert diff.returncode == 0, diff.stderr
        assert f'-  "description": "{BENIGN}"' in diff.stdout and "+" in diff.stdout and "id_rsa" in diff.stdout

        seen.clear()
        approved = cli(sup, "tools", "approve", "rug--add")
        assert approved.returncode == 0 and "Approved: tool rug--add." in approved.stdout, approved
        await async_wait_until(
            lambda: "notifications/tools/list_changed" in seen, 15, what="list_changed after the approval"
        )
        assert "id_rsa" in (await descriptions(client))["rug--add"]
        assert text_of(await client.call_tool("rug--add", {"a": 2, "b": 2})) == "4"
        assert "rug--summary" not in {p.name for p in (await client.list_prompts()).prompts}  # still held
    events = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    kinds = [(e.get("event"), e.get("name")) for e in events if "event" in e]
    assert ("pin-quarantined", "rug--add") in kinds and ("pin-approved", "rug--add") in kinds, kinds


async def test_pins_survive_a_restart_and_follow_a_rename(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start_rug(tmp_path, supervisor_factory)
    async with mcp_client(sup.url) as client:
        assert (await descriptions(client))["rug--add"] == BENIGN  # pinned
        await turn_and_wait(client, "rug--add")
    sup.stop()
    # The backend now serves the hostile text from its start (its HOME remembers), and the operator renames
    # the tool: the pin is the backend's, not the name's, and the new gateway reads it back.
    (sup.config_dir / "tool_config.json").write_text(json.dumps({"tools": {"rug--add": {"displayName": "sum"}}}))
    again = supervisor_factory(sup.config_dir, {"AUDIT_LOG": str(tmp_path / "audit.jsonl")})
    again.wait_linked({"rug"})
    async with mcp_client(again.url) as client:
        tools = await descriptions(client)
        assert "sum" not in tools and "rug--add" not in tools, f"pinned afresh after the restart: {tools}"
        with pytest.raises(MCPError) as refused:
            await client.call_tool("sum", {"a": 1, "b": 2})
        assert "quarantined" in refused.value.error.message and "tools approve sum" in refused.value.error.message


async def test_warn_serves_the_change_and_reports_it(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start_rug(tmp_path, supervisor_factory, {"TOOL_PINNING": "warn"})
    async with mcp_client(sup.url) as client:
        await turn_and_wait(client, "rug--add")
        assert "id_rsa" in (await descriptions(client))["rug--add"]  # served
        assert text_of(await client.call_tool("rug--add", {"a": 1, "b": 2})) == "3"
    assert 'Tool "rug--add" of backend "rug" is served anyway (TOOL_PINNING=warn)' in sup.log_tail(200)
    rows = json.loads(cli(sup, "tools", "--json").stdout)["entries"]
    assert {"name": "rug--add", "state": "warned"}.items() <= next(r for r in rows if r["name"] == "rug--add").items()


async def test_off_is_the_old_behaviour(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start_rug(tmp_path, supervisor_factory, {"TOOL_PINNING": "off"}, "--tag")
    async with mcp_client(sup.url) as client:
        assert "rug--tagged" in await descriptions(client)
        await turn_and_wait(client, "rug--add")
        assert "id_rsa" in (await descriptions(client))["rug--add"]
    assert not (tmp_path / "tool-pins.json").exists()  # nothing pinned, nothing written
    assert "quarantined" not in sup.log_tail(200)


async def test_a_tag_character_is_quarantined_at_first_sight(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start_rug(tmp_path, supervisor_factory, None, "--tag")
    async with mcp_client(sup.url) as client:
        tools = await descriptions(client)
        assert "rug--tagged" not in tools, f"served: {tools.get('rug--tagged')!r}"
        assert tools["rug--add"] == BENIGN
        with pytest.raises(MCPError) as refused:
            await client.call_tool("rug--tagged", {})
        assert "a Unicode tag character (U+E0069)" in refused.value.error.message
    diff = cli(sup, "tools", "diff", "rug--tagged")
    assert "\\udb40\\udc69" in diff.stdout  # the hidden text is shown escaped


async def test_approve_mode_holds_every_new_tool(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start_rug(tmp_path, supervisor_factory, {"TOOL_PINNING": "approve"})
    seen: list[str] = []
    async with mcp_client(sup.url, notifications=seen) as client:
        assert await descriptions(client) == {}
        approved = cli(sup, "tools", "approve", "--backend", "rug")
        assert approved.returncode == 0, approved
        assert "prompt rug--summary, tool rug--add, tool rug--turn" in approved.stdout
        await async_wait_until(lambda: "notifications/tools/list_changed" in seen, 15, what="list_changed")
        assert set(await descriptions(client)) == {"rug--add", "rug--turn"}
    rejected = cli(sup, "tools", "reject", "rug--add")
    assert rejected.returncode == 1 and "awaits approval" in rejected.stderr  # nothing held any more


async def test_published_servers_pin_at_first_sight_and_serve(tmp_path: Path, supervisor_factory: Any) -> None:
    from tests.e2e.test_published_backends import FILESYSTEM_JS, require_tools
    from tests.e2e.test_server_everything import SERVER_JS, require_everything
    from tests.npm_tools import NODE, NPM_TOOLS_DIR

    npx = require_tools()
    require_everything()
    files = tmp_path / "files"
    files.mkdir()
    servers = {
        "everything": {"type": "stdio", "command": str(NODE), "args": [str(SERVER_JS), "stdio"]},
        "files": {"type": "stdio", "command": str(NODE), "args": [str(FILESYSTEM_JS), str(files)]},
        "memory": {
            "type": "stdio",
            "command": npx,
            "args": ["--offline", "--yes", "mcp-server-memory"],
            "cwd": str(NPM_TOOLS_DIR),
            "env": {"MEMORY_FILE_PATH": "/tmp/memory.jsonl"},
        },
        "time": {"type": "stdio", "command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
    }
    write_config(tmp_path / "config", servers)
    sup: RunningSupervisor = supervisor_factory(tmp_path / "config")
    sup.wait_linked(set(servers), timeout=90)
    async with mcp_client(sup.url) as client:
        listed = await descriptions(client)
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        for key in servers:
            assert any(name.startswith(f"{key}--") for name in listed), f"{key} lists no tool: {sorted(listed)}"
        assert "2" in text_of(await client.call_tool("everything--get-sum", {"a": 1, "b": 1}))
        assert str(files) in text_of(await client.call_tool("files--list_allowed_directories", {}))
        assert "entities" in text_of(await client.call_tool("memory--read_graph", {}))
        assert "UTC" in text_of(await client.call_tool("time--get_current_time", {"timezone": "UTC"}))
    rows = json.loads(cli(sup, "tools", "--json").stdout)["entries"]
    assert {r["name"] for r in rows if r["kind"] == "tool"} == set(listed)
    assert {r["name"] for r in rows if r["kind"] == "prompt"} == prompts
    assert {r["state"] for r in rows} == {"pinned"}, [r for r in rows if r["state"] != "pinned"]
    print(f"\npinned {len(listed)} tools and {len(prompts)} prompts of {len(servers)} published servers")
