"""npx backends start from the shared package cache (supervisor/package_cache.py), against the real npm registry.

The package is a real MCP server pinned to an exact version (`@modelcontextprotocol/server-memory`, ~50 MB with
its dependencies). One fetch serves every backend that runs it; a backend without network starts from the cache;
a warm start, every backend's network off, downloads nothing. A hostile backend sees no shared cache to write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SUPERVISOR_CMD, RunningSupervisor, write_config
from tests.helpers import mcp_client, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
HOSTILE_SERVER = ROOT / "tests" / "fixtures" / "hostile_server.py"
MEMORY_SPEC = "@modelcontextprotocol/server-memory@2026.8.31"
TINY_SPEC = "semver@7.6.3"  # 60 kB, no dependencies: what the hostile backend's cache holds


def npx() -> str:
    found = shutil.which("npx")
    if found is None:
        pytest.fail("npx is not installed (it comes with Node.js).", pytrace=False)
    return found


def memory_entry(network: bool) -> dict[str, Any]:
    return {
        "type": "stdio",
        "command": npx(),
        "args": ["-y", MEMORY_SPEC],
        "env": {"MEMORY_FILE_PATH": "/tmp/memory.jsonl"},  # its default file is in its read-only package
        "sandbox": {"network": network},
    }


def state_dir(config_dir: Path) -> Path:
    return config_dir.parent / f"{config_dir.name}-state"  # as tests/e2e/conftest.py sets it


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root with its sha256 (symlinks by their target)."""
    digest = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            digest[str(path)] = "-> " + os.readlink(path)
        elif path.is_file():
            digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


async def create_and_read(url: str, key: str) -> str:
    async with mcp_client(url) as client:
        entity = {"name": key, "entityType": "test", "observations": [f"{key} started from the package cache"]}
        created = await client.call_tool(f"{key}--create_entities", {"entities": [entity]})
        assert not created.is_error, created
        graph = await client.call_tool(f"{key}--read_graph", {})
        return "".join(getattr(block, "text", "") for block in graph.content)


async def test_one_fetch_serves_every_npx_backend_and_a_warm_start_downloads_nothing(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    config_dir = tmp_path / "config"
    # Cold: "online" fetches the package; "offline" has no network at all and starts from what it fetched.
    write_config(config_dir, {"online": memory_entry(True), "offline": memory_entry(False)})
    started = time.monotonic()
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"online", "offline"}, timeout=180)
    cold = time.monotonic() - started
    assert "offline started from the package cache" in await create_and_read(sup.url, "offline")
    log = sup.log_path.read_text()
    fetches = re.findall(r"Fetched npx -y \S+ in ([\d.]+) s", log)
    assert len(fetches) == 1, log[-4000:]  # one fetch for both backends
    entries = list((state_dir(config_dir) / ".package-cache" / "npm").iterdir())
    assert len(entries) == 1 and (entries[0] / "_npx").is_dir(), entries
    sup.stop()

    # Warm: both backends without network, a new supervisor: nothing to fetch, nothing downloaded.
    write_config(config_dir, {"online": memory_entry(False), "offline": memory_entry(False)})
    mark = len(sup.log_path.read_text())
    started = time.monotonic()
    sup = supervisor_factory(config_dir)
    sup.wait_linked({"online", "offline"}, timeout=60)
    warm = time.monotonic() - started
    assert "online started from the package cache" in await create_and_read(sup.url, "online")
    assert "Fetching" not in sup.log_path.read_text()[mark:]
    print(f"\ncold start of two backends: {cold:.1f} s (fetch {fetches[0]} s); warm start: {warm:.1f} s")


def hostile_npx(directory: Path) -> dict[str, Any]:
    """An npx whose package is hostile: fetches (`--call`) go to the real npx, and what runs as the backend is
    the hostile fixture, with the npx backend's environment (its copy of the cache)."""
    directory.mkdir()
    script = directory / "npx"
    script.write_text(
        "#!/bin/sh\n"
        f'for arg; do [ "$arg" = --call ] && exec {npx()} "$@"; done\n'
        f"exec {sys.executable} {HOSTILE_SERVER}\n"
    )
    script.chmod(0o755)
    readable = [str(ROOT), sys.prefix, sys.base_prefix, os.path.realpath(sys.executable)]
    return {"type": "stdio", "command": str(script), "args": ["-y", TINY_SPEC], "sandbox": {"readPaths": readable}}


async def test_a_hostile_npx_backend_cannot_write_the_shared_cache(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"hostile": hostile_npx(tmp_path / "bin")})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"hostile"}, timeout=120)
    shared = state_dir(config_dir) / ".package-cache"
    (entry_dir,) = list((shared / "npm").iterdir())
    before = tree_digest(shared)
    assert any("/_npx/" in path for path in before), sorted(before)[:5]
    own_copy = state_dir(config_dir) / "hostile" / ".npm"
    targets = [entry_dir / "_cacache" / "poison", entry_dir / "_npx" / "poison", shared / "poison"]
    async with mcp_client(sup.url) as client:
        for target in targets:
            result = await client.call_tool("hostile--write", {"path": str(target)})
            verdict = json.loads(result.content[0].text)  # type: ignore[union-attr]
            assert not verdict["ok"], verdict
        seen = await client.call_tool("hostile--read", {"paths": [str(shared), str(own_copy)]})
        results = json.loads(seen.content[0].text)["results"]  # type: ignore[union-attr]
        assert not results[str(shared)]["ok"], results  # the shared cache is not even visible
        assert "_npx" in results[str(own_copy)]["listing"], results  # its own copy is
        planted = await client.call_tool("hostile--write", {"path": str(own_copy / "planted")})
        assert json.loads(planted.content[0].text)["ok"], planted  # type: ignore[union-attr]
    assert tree_digest(shared) == before
    assert (own_copy / "planted").exists()
    # A restart starts from a fresh copy: what the backend planted in its own is gone.
    generation = sup.backends()["hostile"]["generation"]
    restart = [SUPERVISOR_CMD, "restart", "hostile", "--config-dir", str(config_dir)]
    assert subprocess.run(restart, capture_output=True, timeout=60).returncode == 0
    wait_until(
        lambda: sup.backends()["hostile"]["generation"] > generation and sup.backends()["hostile"]["linked"],
        60,
        what="the hostile backend restarted",
    )
    assert not (own_copy / "planted").exists()
