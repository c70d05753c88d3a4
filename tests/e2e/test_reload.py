"""Hot reload on the real process tree: only what changed restarts; tool_config restarts nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SUPERVISOR_CMD, RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def pids(sup: RunningSupervisor) -> dict[str, int]:
    return {key: status["pid"] for key, status in sup.backends().items() if "pid" in status}


def save(path: Path, document: dict[str, Any]) -> None:
    """Save the way editors do: write a temporary file, then rename it over the original."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2))
    os.replace(temporary, path)


def servers_file(config_dir: Path) -> dict[str, Any]:
    return dict(json.loads((config_dir / "mcp_server.json").read_text()))


def cli(config_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SUPERVISOR_CMD, *args, "--config-dir", str(config_dir)], capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def two_backends(tmp_path: Path, supervisor_factory: Any) -> tuple[RunningSupervisor, Path]:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"a": stdio_fixture_entry("a"), "b": stdio_fixture_entry("b")})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"a", "b"})
    return sup, config_dir


async def test_add_remove_change_touch_only_that_worker(two_backends: tuple[RunningSupervisor, Path]) -> None:
    sup, config_dir = two_backends
    before = pids(sup)

    document = servers_file(config_dir)
    document["mcpServers"]["c"] = stdio_fixture_entry("c")
    save(config_dir / "mcp_server.json", document)
    sup.wait_linked({"a", "b", "c"})
    after_add = pids(sup)
    assert {k: after_add[k] for k in ("a", "b")} == before

    del document["mcpServers"]["c"]
    save(config_dir / "mcp_server.json", document)
    await async_wait_until(lambda: "c" not in sup.backends(), 15, what="c to be removed")
    assert pids(sup) == before

    document["mcpServers"]["b"] = stdio_fixture_entry("b", env={"CHANGED": "1"})
    save(config_dir / "mcp_server.json", document)
    await async_wait_until(lambda: sup.backends()["b"].get("pid") not in (None, before["b"]), 15, what="b replaced")
    sup.wait_linked({"a", "b"})
    assert pids(sup)["a"] == before["a"]
    assert sup.backends()["b"]["generation"] == 2
    async with mcp_client(sup.url) as client:
        assert {t.name for t in (await client.list_tools()).tools} >= {"a--echo", "b--echo"}
        assert "c--echo" not in {t.name for t in (await client.list_tools()).tools}


async def test_tool_config_edit_restarts_nothing_and_notifies(two_backends: tuple[RunningSupervisor, Path]) -> None:
    sup, config_dir = two_backends
    before = pids(sup)
    seen: list[str] = []
    async with mcp_client(sup.url, notifications=seen) as client:
        assert "a--echo" in {t.name for t in (await client.list_tools()).tools}
        save(
            config_dir / "tool_config.json",
            {"tools": {"a--echo": {"displayName": "shout"}, "b--add": {"enabled": False}}},
        )
        await async_wait_until(lambda: "notifications/tools/list_changed" in seen, 10, what="tools/list_changed")
        names = {t.name for t in (await client.list_tools()).tools}
        assert "shout" in names and "a--echo" not in names and "b--add" not in names
        assert (await client.call_tool("shout", {"text": "x"})).content[0].text == "a: x"  # type: ignore[union-attr]
    assert pids(sup) == before


async def test_broken_file_keeps_running_config_and_status_shows_it(
    two_backends: tuple[RunningSupervisor, Path],
) -> None:
    sup, config_dir = two_backends
    before = pids(sup)
    (config_dir / "mcp_server.json").write_text('{"mcpServers": {"a": ')  # truncated mid-write
    (config_dir / "tool_config.json").write_text('{"tools": []}')

    def status_error() -> str:
        result = cli(config_dir, "status", "--json")
        return str(json.loads(result.stdout)["config_error"] or "")  # null when both files applied

    error = await async_wait_until(
        lambda: "mcp_server.json" in status_error() and "tool_config.json" in status_error(),
        10,
        what="status to report both broken files",
    )
    assert error
    table = cli(config_dir, "status").stdout
    assert "config error" in table and "not valid JSON" in table
    assert pids(sup) == before
    async with mcp_client(sup.url) as client:
        assert (await client.call_tool("a--echo", {"text": "still"})).content[0].text == "a: still"  # type: ignore[union-attr]

    # Fixing the file clears the error and applies it.
    write_config(config_dir, {"a": stdio_fixture_entry("a"), "b": stdio_fixture_entry("b")})
    await async_wait_until(lambda: status_error() == "", 10, what="the error to clear")
    assert pids(sup) == before


async def test_reload_command_and_configmap_symlink_swap(tmp_path: Path, supervisor_factory: Any) -> None:
    """Kubernetes mounts a ConfigMap as symlinks into a `..data` directory symlink that it swaps atomically."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()

    def publish(version: str, servers: dict[str, Any]) -> None:
        data = config_dir / f"..{version}"
        data.mkdir()
        (data / "mcp_server.json").write_text(json.dumps({"mcpServers": servers}))
        (data / "tool_config.json").write_text(json.dumps({"tools": {}}))
        (config_dir / "..data_tmp").symlink_to(data.name)
        os.replace(config_dir / "..data_tmp", config_dir / "..data")

    publish("v1", {"a": stdio_fixture_entry("a")})
    for name in ("mcp_server.json", "tool_config.json"):
        (config_dir / name).symlink_to(f"..data/{name}")
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"a"})
    first = pids(sup)

    publish("v2", {"a": stdio_fixture_entry("a"), "z": stdio_fixture_entry("z")})
    sup.wait_linked({"a", "z"})
    assert pids(sup)["a"] == first["a"]

    # The explicit command reports what it did (nothing changed now).
    result = cli(config_dir, "reload")
    assert result.returncode == 0 and "0 added, 0 removed, 0 changed" in result.stdout
