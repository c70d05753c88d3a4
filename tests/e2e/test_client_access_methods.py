"""Per-client access (config/clients.json) on every list and call, not only tools: prompts, resources, resource
templates, subscriptions (and the updates they deliver) and completions, for a client limited by `servers` and
for one limited by patterns. A name the client may not see is unknown to it (-32602), a URI is not found
(-32002), exactly as if it did not exist; even a backend that is down is not named to a client outside it. The
stdio front end's client is matched with `"match": {"stdio": true}`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError, StdioServerParameters, stdio_client
from mcp.client.session import ClientSession
from mcp_types import PromptReference, ResourceTemplateReference

from tests.e2e.conftest import (
    CONFORMANCE_SERVER,
    ROOT,
    SUPERVISOR_CMD,
    RunningSupervisor,
    alive,
    stdio_fixture_entry,
    write_config,
)
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CATALOG_SERVER = str(ROOT / "tests" / "fixtures" / "catalog_server.py")
KEY_CAT, KEY_PATTERNS, KEY_ALL = "key-cat-only", "key-patterns", "key-everything"
WATCHED = "test://watched-resource"
CONF_TEMPLATE = "test://template/{id}/data"


def _clients(patterns_resources_deny: list[str]) -> dict[str, Any]:
    return {
        "clients": {
            "cat-only": {"match": {"keys": [KEY_CAT]}, "servers": ["cat"]},
            # The prompts share the tools' patterns: conf's prompts are hidden with its tools.
            "patterns": {
                "match": {"keys": [KEY_PATTERNS]},
                "servers": ["*"],
                "tools": {"deny": ["conf--*"]},
                "resources": {"deny": patterns_resources_deny},
            },
            "everything": {"match": {"keys": [KEY_ALL]}, "servers": ["*"]},
            "*": {"servers": []},
        }
    }


@pytest.fixture
def gateway(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config = tmp_path / "config"
    servers = {
        "conf": {
            "type": "stdio",
            "command": sys.executable,
            "args": [str(CONFORMANCE_SERVER), "--watch-interval", "0.3"],
        },
        "cat": {"type": "stdio", "command": sys.executable, "args": [CATALOG_SERVER, "--name", "cat"]},
        # Never starts: its tools are known only by its prefix; the gateway names it to callers who may see it.
        "gone": {"type": "stdio", "command": sys.executable, "args": ["-c", "raise SystemExit(3)"]},
    }
    write_config(config, servers)
    (config / "clients.json").write_text(json.dumps(_clients([WATCHED, "test://template/*"])))
    sup: RunningSupervisor = supervisor_factory(config, {"ALLOWED_KEYS": f"{KEY_CAT},{KEY_PATTERNS},{KEY_ALL}"})
    sup.credential = {"X-Api-Key": KEY_ALL}  # /health/backends shows each key its own view
    sup.wait_linked({"conf", "cat"})
    return sup


async def _refused(call: Awaitable[Any]) -> int:
    with pytest.raises(MCPError) as refused:
        await call
    return refused.value.error.code


async def _views(client: ClientSession) -> dict[str, set[str]]:
    return {
        "tools": {t.name for t in (await client.list_tools()).tools},
        "prompts": {p.name for p in (await client.list_prompts()).prompts},
        "resources": {str(r.uri) for r in (await client.list_resources()).resources},
        "templates": {t.uri_template for t in (await client.list_resource_templates()).resource_templates},
    }


async def test_a_client_limited_to_one_server_sees_and_reaches_only_it(gateway: RunningSupervisor) -> None:
    async with mcp_client(gateway.url, {"X-Api-Key": KEY_CAT}) as client:
        views = await _views(client)
        assert views["tools"] and all(name.startswith("cat--") for name in views["tools"])
        assert views["prompts"] == {"cat--greet"}
        assert views["resources"] == {"test://cat/static", "test://shared/readme"}
        assert views["templates"] == {"test://cat/items/{item_id}"}  # not conf's template

        # What it sees works.
        assert (await client.read_resource("test://cat/items/7")).contents[0].text == "item 7 of cat"  # type: ignore[union-attr]
        done = await client.complete(
            PromptReference(type="ref/prompt", name="cat--greet"), {"name": "person", "value": "al"}
        )
        assert done.completion.values == ["alice", "albert"]

        # What it does not see does not exist for it.
        assert await _refused(client.call_tool("conf--test_simple_text", {})) == -32602
        assert await _refused(client.get_prompt("conf--test_simple_prompt")) == -32602
        assert await _refused(client.read_resource("test://static-text")) == -32002
        assert await _refused(client.read_resource("test://template/1/data")) == -32002
        assert await _refused(client.subscribe_resource(WATCHED)) == -32002
        assert await _refused(client.unsubscribe_resource(WATCHED)) == -32002
        prompt_ref = PromptReference(type="ref/prompt", name="conf--test_prompt_with_arguments")
        assert await _refused(client.complete(prompt_ref, {"name": "arg1", "value": ""})) == -32602
        template_ref = ResourceTemplateReference(type="ref/resource", uri=CONF_TEMPLATE)
        assert await _refused(client.complete(template_ref, {"name": "id", "value": ""})) == -32002
        # A backend that is down is named only to those who may see it: to this client its tools are unknown.
        assert await _refused(client.call_tool("gone--echo", {"text": "x"})) == -32602
    assert "subscribed to" not in gateway.log_tail(400)  # conf's backend never saw the refused subscription

    async with mcp_client(gateway.url, {"X-Api-Key": KEY_ALL}) as everything:
        with pytest.raises(MCPError) as down:
            await everything.call_tool("gone--echo", {"text": "x"})
        assert down.value.error.code != -32602 and "gone" in down.value.error.message  # named: it may see it


async def test_patterns_limit_prompts_resources_templates_and_completions(gateway: RunningSupervisor) -> None:
    async with mcp_client(gateway.url, {"X-Api-Key": KEY_PATTERNS}) as client:
        views = await _views(client)
        assert not any(name.startswith("conf--") for name in views["tools"] | views["prompts"])
        assert "cat--greet" in views["prompts"]
        assert WATCHED not in views["resources"] and "test://static-text" in views["resources"]
        assert views["templates"] == {"test://cat/items/{item_id}"}

        assert (await client.read_resource("test://static-text")).contents  # conf's resources are not denied
        assert await _refused(client.read_resource(WATCHED)) == -32002
        assert await _refused(client.subscribe_resource(WATCHED)) == -32002
        prompt_ref = PromptReference(type="ref/prompt", name="conf--test_prompt_with_arguments")
        assert await _refused(client.complete(prompt_ref, {"name": "arg1", "value": ""})) == -32602
        assert (
            await _refused(client.get_prompt("conf--test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})) == -32602
        )
        template_ref = ResourceTemplateReference(type="ref/resource", uri=CONF_TEMPLATE)
        assert await _refused(client.complete(template_ref, {"name": "id", "value": ""})) == -32002


async def test_updates_stop_when_the_view_loses_the_resource(gateway: RunningSupervisor) -> None:
    """Two sessions subscribe to the watched resource; then clients.json takes it from one of them. From its
    list_changed on, that one gets no update, while the other keeps getting them."""
    seen_all: list[str] = []
    seen_patterns: list[str] = []
    updated = "notifications/resources/updated"
    (gateway.config_dir / "clients.json").write_text(json.dumps(_clients(["test://template/*"])))
    async with mcp_client(gateway.url, {"X-Api-Key": KEY_ALL}, seen_all) as everything:

        async def patterns_sees_watched() -> bool:
            async with mcp_client(gateway.url, {"X-Api-Key": KEY_PATTERNS}) as probe:
                return WATCHED in {str(r.uri) for r in (await probe.list_resources()).resources}

        await async_wait_until(patterns_sees_watched, 15, interval=0.2, what="the watched resource to be visible")
        async with mcp_client(gateway.url, {"X-Api-Key": KEY_PATTERNS}, seen_patterns) as patterns:
            await everything.subscribe_resource(WATCHED)
            await patterns.subscribe_resource(WATCHED)
            await async_wait_until(lambda: updated in seen_patterns, 15, what="an update while it may see it")

            # A list_changed from before the change (a backend's catalog refresh at start-up) is not the one.
            mark = len(seen_patterns)
            (gateway.config_dir / "clients.json").write_text(json.dumps(_clients([WATCHED])))
            changed = "notifications/resources/list_changed"
            await async_wait_until(lambda: changed in seen_patterns[mark:], 15, what="list_changed")
            after = len(seen_all)
            # The watched resource changes every 0.3 s: three more updates to the other session.
            await async_wait_until(lambda: seen_all[after:].count(updated) >= 3, 15, what="three more updates")
            assert updated not in seen_patterns[seen_patterns.index(changed, mark) :], seen_patterns


async def test_a_profile_limits_the_stdio_client(tmp_path: Path) -> None:
    """`mcp-supervisor stdio` has no credential: clients.json matches its client with `"match": {"stdio": true}`,
    and a changed file reaches it with list_changed, as over HTTP."""
    config = tmp_path / "config"
    write_config(config, {"local": stdio_fixture_entry("local"), "other": stdio_fixture_entry("other")})

    def desktop(servers: list[str]) -> dict[str, Any]:
        entry = {"match": {"stdio": True}, "servers": servers, "tools": {"deny": ["local--add"]}}
        return {"clients": {"desktop": entry, "*": {"servers": []}}}

    (config / "clients.json").write_text(json.dumps(desktop(["local"])))
    seen: list[str] = []

    async def record(message: Any) -> None:
        if isinstance(getattr(message, "method", None), str):
            seen.append(message.method)

    params = StdioServerParameters(
        command=SUPERVISOR_CMD,
        args=["stdio", "--config-dir", str(config)],
        env={"MCP_SUPERVISOR_STATE_DIR": str(tmp_path / "state")},
    )
    with open(tmp_path / "stderr.log", "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, message_handler=record) as client,
        ):
            await client.initialize()
            status = subprocess.run(
                [SUPERVISOR_CMD, "status", "--json", "--config-dir", str(config)],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
            snapshot = json.loads(status.stdout)
            tree = {snapshot["gateway"]["pid"], *(b["pid"] for b in snapshot["backends"])}
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {"local--echo", "local--slow", "local--whoami"}, names
            assert await _refused(client.call_tool("local--add", {"a": 1, "b": 2})) == -32602
            assert await _refused(client.call_tool("other--echo", {"text": "x"})) == -32602

            mark = len(seen)  # a list_changed from before the change is not the one
            (config / "clients.json").write_text(json.dumps(desktop(["local", "other"])))
            await async_wait_until(lambda: "notifications/tools/list_changed" in seen[mark:], 15, what="list_changed")

            async def widened() -> set[str]:
                names = {tool.name for tool in (await client.list_tools()).tools}
                return names if "other--echo" in names else set()

            names = await async_wait_until(widened, 15, what="the other backend's tools in the widened view")
            assert "local--add" not in names
            assert (await client.call_tool("other--echo", {"text": "x"})).is_error is not True
    await async_wait_until(lambda: not alive(tree), 20, what="the stdio tree to exit")
