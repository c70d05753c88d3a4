"""Coming back after outages: a remote backend that was unreachable, a FATAL backend, a restarted gateway, a
config directory deleted and recreated. Each was final (or briefly wrong) before issue 14."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import (
    FIXTURE_SERVER,
    SUPERVISOR_CMD,
    RunningSupervisor,
    stdio_fixture_entry,
    write_config,
)
from tests.helpers import free_port, mcp_client, port_open, stop_process, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

FAST_RETRIES = {"backoffBase": 0.2, "backoffMax": 1, "maxRestarts": 2, "restartWindow": 60}


def state_of(sup: RunningSupervisor, key: str) -> dict[str, Any]:
    return sup.backends().get(key, {})


@pytest.fixture
def late_http_server() -> Iterator[tuple[int, Any]]:
    """A port nothing listens on yet, and a function that starts the SDK fixture server on it."""
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        process = subprocess.Popen(
            [sys.executable, str(FIXTURE_SERVER), "--http", str(port), "--name", "remote"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        wait_until(lambda: port_open(port), 30, what="the late HTTP backend")

    yield port, start
    for process in started:
        stop_process(process)


async def test_an_unreachable_remote_backend_backs_off_and_comes_back(
    tmp_path: Path, supervisor_factory: Any, late_http_server: tuple[int, Any]
) -> None:
    """It went FATAL after ~15 s unreachable and stayed FATAL once its server was back."""
    port, start_server = late_http_server
    config_dir = tmp_path / "config"
    remote = {"type": "http", "url": f"http://127.0.0.1:{port}/mcp", "supervision": FAST_RETRIES}
    write_config(config_dir, {"local": stdio_fixture_entry("local"), "remote": remote})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"local"})
    # More failures than maxRestarts allows a stdio backend: still retrying, in BACKOFF, the error shown.
    waiting = wait_until(
        lambda: (s := state_of(sup, "remote")).get("restarts", 0) >= 4 and s["state"] == "BACKOFF" and s,
        30,
        what="the remote backend to fail a few times",
    )
    print(f"\nunreachable: {waiting['state']} after {waiting['restarts']} restarts: {waiting['last_error']}")
    assert waiting["last_error"] and waiting["next_attempt_at"], waiting
    assert state_of(sup, "remote")["state"] != "FATAL"
    start_server()
    sup.wait_linked({"remote"}, timeout=30)
    async with mcp_client(sup.url) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "remote--echo" in names, names


async def test_fatal_is_retried_after_a_cool_down(tmp_path: Path, supervisor_factory: Any) -> None:
    """FATAL was final: only `restart KEY` revived a backend, even once its cause was gone."""
    poison = tmp_path / "poison"
    poison.touch()
    config_dir = tmp_path / "config"
    broken = stdio_fixture_entry(
        "broken",
        args=[str(FIXTURE_SERVER), "--name", "broken", "--crash-if", str(poison)],
        supervision={**FAST_RETRIES, "fatalCooldown": 3},
    )
    write_config(config_dir, {"broken": broken})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    fatal = wait_until(
        lambda: (s := state_of(sup, "broken")).get("state") == "FATAL" and s, 30, what="the backend to be FATAL"
    )
    assert fatal["next_attempt_at"] and fatal["next_attempt_at"] > time.time() - 1, fatal
    status = subprocess.run(
        [SUPERVISOR_CMD, "status", "--config-dir", str(config_dir)], capture_output=True, text=True, timeout=30
    )
    assert "next try in" in status.stdout, status.stdout
    poison.unlink()
    began = time.monotonic()
    sup.wait_linked({"broken"}, timeout=30)
    print(f"\nFATAL, then RUNNING again {time.monotonic() - began:.1f} s after its cause was removed")


async def test_right_after_a_gateway_restart_requests_see_the_whole_catalog(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    """For a few hundred ms after a gateway restart, clients got tools/list with 0 tools and "Unknown tool"."""
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local"), "other": stdio_fixture_entry("other")})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"local", "other"})
    with httpx2.Client(timeout=10) as http:
        gateway = http.get(f"{sup.base}/health/backends").json()["gateway"]["pid"]
    os.kill(gateway, signal.SIGKILL)
    wait_until(lambda: not port_open(sup.port), 10, interval=0.01, what="the old gateway to go")
    wait_until(lambda: port_open(sup.port), 30, interval=0.01, what="the new gateway to listen")
    async with mcp_client(sup.url) as client:  # at once: no wait for the workers to link
        names = {tool.name for tool in (await client.list_tools()).tools}
        called = await client.call_tool("other--echo", {"text": "right away"})
    assert {"local--echo", "other--echo"} <= names, names
    assert not called.is_error and called.content[0].text == "other: right away"  # type: ignore[union-attr]


async def test_the_watcher_survives_its_directory_being_replaced(tmp_path: Path, supervisor_factory: Any) -> None:
    """Deleting and recreating the config directory killed the watcher for good."""
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"local"})
    saved = {name: (config_dir / name).read_bytes() for name in ("mcp_server.json", "tool_config.json")}
    log_copy = sup.log_path.read_bytes()
    shutil.rmtree(config_dir)
    # The supervisor saw it go (and keeps the running config): the watch on that directory is over.
    missing = wait_until(
        lambda: (
            (error := httpx2.get(f"{sup.base}/health/backends", timeout=5).json()["config_error"])
            and "does not exist" in error
            and error
        ),
        30,
        what="the supervisor to notice the missing config",
    )
    print(f"\nconfig dir removed: {missing}")
    config_dir.mkdir()
    sup.log_path.write_bytes(log_copy)  # the supervisor's log lived in that directory: keep it readable
    for name, data in saved.items():
        (config_dir / name).write_bytes(data)
    servers = json.loads(saved["mcp_server.json"])
    servers["mcpServers"]["added"] = stdio_fixture_entry("added")
    (config_dir / "mcp_server.json").write_text(json.dumps(servers))
    sup.wait_linked({"local", "added"}, timeout=30)
