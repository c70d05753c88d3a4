"""Aggregation of resources, templates, prompts and completions; namePrefix; opaque pagination cursors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import MCPError
from mcp_types import PaginatedRequestParams, PromptReference

from tests.e2e.conftest import ROOT, RunningSupervisor, write_config
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CATALOG_SERVER = str(ROOT / "tests" / "fixtures" / "catalog_server.py")


def catalog_entry(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "stdio", "command": sys.executable, "args": [CATALOG_SERVER, "--name", name], **extra}


@pytest.fixture
def two_catalogs(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    # "one" is fronted transparently (namePrefix ""), "two" keeps the default prefix.
    # "two" signals through marker files in tmp_path, which the sandbox must let it write.
    two = catalog_entry("two", sandbox={"writePaths": [str(tmp_path)]})
    write_config(config_dir, {"one": catalog_entry("one", namePrefix=""), "two": two})
    sup: RunningSupervisor = supervisor_factory(config_dir, {"PAGE_SIZE": "2"})
    sup.wait_linked({"one", "two"})
    return sup


async def test_resources_templates_prompts_and_completion(two_catalogs: RunningSupervisor) -> None:
    async with mcp_client(two_catalogs.url) as client:
        resources = []
        cursor = None
        while True:  # PAGE_SIZE=2: the gateway's own cursors page through the aggregate
            listed = await client.list_resources(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            assert len(listed.resources) <= 2
            resources.extend(str(r.uri) for r in listed.resources)
            cursor = listed.next_cursor
            if cursor is None:
                break
        # URIs are kept; the shared URI collides and only the first backend (by key) serves it.
        assert sorted(resources) == ["test://one/static", "test://shared/readme", "test://two/static"]
        shared = await client.read_resource("test://shared/readme")
        assert shared.contents[0].text == "shared readme of one"  # type: ignore[union-attr]
        static = await client.read_resource("test://two/static")
        assert static.contents[0].text == "static text of two"  # type: ignore[union-attr]

        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert templates == {"test://one/items/{item_id}", "test://two/items/{item_id}"}
        item = await client.read_resource("test://two/items/42")  # routed by template match
        assert item.contents[0].text == "item 42 of two"  # type: ignore[union-attr]
        with pytest.raises(MCPError) as missing:
            await client.read_resource("test://nobody/x")
        assert missing.value.error.code == -32002

        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert prompts == {"greet", "two--greet"}
        greeting = await client.get_prompt("two--greet", {"person": "ada"})
        assert "two says hello to ada" in greeting.messages[0].content.text  # type: ignore[union-attr]
        assert "one says hello" in (await client.get_prompt("greet", {"person": "x"})).messages[0].content.text  # type: ignore[union-attr]

        completion = await client.complete(
            PromptReference(type="ref/prompt", name="two--greet"), {"name": "person", "value": "al"}
        )
        assert completion.completion.values == ["alice", "albert"]

        await client.set_logging_level("debug")  # fanned out; answered once every backend has


async def test_capabilities_are_the_union(two_catalogs: RunningSupervisor) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        reply = await http.post(
            two_catalogs.url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            },
            headers={"Accept": "application/json, text/event-stream"},
        )
        result = reply.json()["result"]
        assert result["protocolVersion"] == "2025-06-18"
        capabilities = result["capabilities"]
        assert capabilities["tools"]["listChanged"] and capabilities["prompts"]["listChanged"]
        assert "completions" in capabilities  # the catalog servers offer completions


async def test_invalid_cursor_is_invalid_params(two_catalogs: RunningSupervisor) -> None:
    async with mcp_client(two_catalogs.url) as client:
        for cursor in ("garbage", "bWNwczE6OTk5OTk"):  # not ours; ours but past the end
            with pytest.raises(MCPError) as info:
                await client.list_tools(params=PaginatedRequestParams(cursor=cursor))
            assert info.value.error.code == -32602


async def test_progress_logging_and_cancellation(two_catalogs: RunningSupervisor, tmp_path: Path) -> None:
    logs: list[str] = []

    async with mcp_client(two_catalogs.url, notifications=logs) as client:
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total, message))

        await client.set_logging_level("info")
        result = await client.call_tool("two--count", {"n": 3}, progress_callback=on_progress)
        assert result.content[0].text == "counted 3"  # type: ignore[union-attr]
        # Progress arrived for this request, with the client's own token restored (the SDK matched it).
        assert [p[0] for p in progress] == [1, 2, 3] and progress[-1][2] == "step 3"
        await async_wait_until(lambda: "notifications/message" in logs, 10, what="the backend's log line")

        marker = tmp_path / "wait"
        async with anyio.create_task_group() as group:
            group.start_soon(client.call_tool, "two--wait_for_cancel", {"marker": str(marker)})
            await async_wait_until(lambda: marker.with_suffix(".started").exists(), 10, what="the call to start")
            group.cancel_scope.cancel()  # the SDK sends notifications/cancelled for the abandoned request
        await async_wait_until(
            lambda: marker.with_suffix(".cancelled").exists(), 10, what="the backend to see the cancellation"
        )
        # The session is fine afterwards.
        assert (await client.call_tool("two--count", {"n": 1})).content[0].text == "counted 1"  # type: ignore[union-attr]
