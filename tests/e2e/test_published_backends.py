"""Published MCP servers run unchanged under the default sandbox (SANDBOX=auto, no `"sandbox"` object).

`@modelcontextprotocol/server-filesystem` (started with node) and `@modelcontextprotocol/server-memory` (started
with npx, as most users start servers), from the npm lock (`make npm-tools`). Each is driven through the gateway
by the official SDK client; the sandbox's own account (`/health/backends`) must say what it enforces. What a
backend is not granted stays out of reach: the filesystem server can read the directory it is given, and write
there only once `writePaths` grants it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningSupervisor, write_config
from tests.helpers import mcp_client, wait_until
from tests.npm_tools import INSTALL_HINT, NODE, NODE_MODULES, NPM_TOOLS_DIR

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

FILESYSTEM_JS = NODE_MODULES / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"
MEMORY_PACKAGE = NODE_MODULES / "@modelcontextprotocol" / "server-memory"


def require_tools() -> str:
    npx = shutil.which("npx")
    if not (NODE.exists() and FILESYSTEM_JS.exists() and MEMORY_PACKAGE.exists()) or npx is None:
        pytest.fail(f"server-filesystem, server-memory, node or npx is missing. {INSTALL_HINT}", pytrace=False)
    return npx


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def start_published(tmp_path: Path, supervisor_factory: Any, files_sandbox: dict[str, Any] | None) -> RunningSupervisor:
    npx = require_tools()
    files = tmp_path / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello from the host\n")
    filesystem: dict[str, Any] = {"type": "stdio", "command": str(NODE), "args": [str(FILESYSTEM_JS), str(files)]}
    if files_sandbox is not None:
        filesystem["sandbox"] = files_sandbox
    servers = {
        "files": filesystem,
        # npx finds the locked install in its working directory, without the network; its cache goes to HOME.
        "memory": {
            "type": "stdio",
            "command": npx,
            "args": ["--offline", "--yes", "mcp-server-memory"],
            "cwd": str(NPM_TOOLS_DIR),
            # Its default file sits in its (read-only) install directory; /tmp is its own.
            "env": {"MEMORY_FILE_PATH": "/tmp/memory.jsonl"},
        },
    }
    config_dir = tmp_path / "config"
    write_config(config_dir, servers)
    sup: RunningSupervisor = supervisor_factory(config_dir)
    return sup


async def test_filesystem_and_memory_servers_run_under_the_default_sandbox(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    sup = start_published(tmp_path, supervisor_factory, None)
    backends = sup.wait_linked({"files", "memory"}, timeout=60)
    for key in ("files", "memory"):
        sandbox = backends[key]["sandbox"]
        print(f"\n{key}: {sandbox}")
        assert sandbox["method"] == "bwrap", sandbox
        assert {"filesystem", "processes"} <= set(sandbox["enforced"]), sandbox
    files = tmp_path / "files"
    async with mcp_client(sup.url) as client:
        read = await client.call_tool("files--read_text_file", {"path": str(files / "hello.txt")})
        assert "hello from the host" in text_of(read), read
        # The directory it was given is readable, not writable: writes need `writePaths`.
        denied = await client.call_tool("files--write_file", {"path": str(files / "new.txt"), "content": "x"})
        assert denied.is_error and not (files / "new.txt").exists(), denied

        created = await client.call_tool(
            "memory--create_entities",
            {"entities": [{"name": "sandbox", "entityType": "test", "observations": ["runs under bwrap"]}]},
        )
        assert not created.is_error, created
        graph = await client.call_tool("memory--read_graph", {})
        assert "runs under bwrap" in text_of(graph), graph


async def test_write_paths_grant_writes(tmp_path: Path, supervisor_factory: Any) -> None:
    files = tmp_path / "files"
    sup = start_published(tmp_path, supervisor_factory, {"writePaths": [str(files)]})
    sup.wait_linked({"files"}, timeout=60)
    async with mcp_client(sup.url) as client:
        wrote = await client.call_tool("files--write_file", {"path": str(files / "new.txt"), "content": "granted"})
        assert not wrote.is_error, wrote
    assert (files / "new.txt").read_text() == "granted"


def filesystem_log(sup: RunningSupervisor) -> str:
    """What the filesystem backend wrote to stderr, as the supervisor echoes it (`files| …`)."""
    return "\n".join(line for line in sup.log_path.read_text(errors="replace").splitlines() if "files|" in line)


async def test_the_worker_answers_the_filesystem_servers_roots_request_at_once(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    """server-filesystem asks for roots right after `initialize`: its worker answers with the configured roots
    at once, instead of letting it time out after 60 s (-32001) with an error as its last stderr line."""
    require_tools()
    files, workspace = tmp_path / "files", tmp_path / "workspace"
    files.mkdir()
    workspace.mkdir()
    entry = {"type": "stdio", "command": str(NODE), "args": [str(FILESYSTEM_JS), str(files)], "roots": [str(workspace)]}
    config_dir = tmp_path / "config"
    write_config(config_dir, {"files": entry})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"files"}, timeout=60)
    wait_until(
        lambda: "Updated allowed directories from MCP roots: 1 valid directories" in filesystem_log(sup),
        10,
        what="server-filesystem to log the roots it was answered",
    )
    assert "-32001" not in filesystem_log(sup), filesystem_log(sup)
    async with mcp_client(sup.url) as client:
        allowed = text_of(await client.call_tool("files--list_allowed_directories", {}))
    assert str(workspace) in allowed and str(files) not in allowed, allowed


async def test_without_configured_roots_the_filesystem_server_gets_an_empty_list(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    sup = start_published(tmp_path, supervisor_factory, None)
    sup.wait_linked({"files"}, timeout=60)
    wait_until(
        lambda: "No valid root directories provided by client" in filesystem_log(sup),
        10,
        what="server-filesystem to log the empty roots it was answered",
    )
    assert "-32001" not in filesystem_log(sup), filesystem_log(sup)
    status = sup.backends()["files"]
    assert "Failed to request" not in (status.get("last_stderr") or ""), status
