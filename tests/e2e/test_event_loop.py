"""MCP_SUPERVISOR_EVENT_LOOP end to end: the gateway and the workers run on uvloop unless asked otherwise, the
supervisor on asyncio either way, and a backend started on uvloop holds nothing of its worker's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.conftest import ROOT, SUPERVISOR_CMD, RunningSupervisor, write_config
from tests.e2e.test_stdio_end_of_input import run_stdio_script
from tests.helpers import mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TINY_SERVER = ROOT / "tests" / "fixtures" / "tiny_server.py"
UVLOOP_MODULE = "uvloop/loop."  # the path of its extension module, as /proc/<pid>/maps shows it
NOISE = ("Event loop is closed", "Exception ignored", "Traceback", "was never awaited", "Task was destroyed")


def maps_uvloop(pid: int) -> bool:
    return UVLOOP_MODULE in Path(f"/proc/{pid}/maps").read_text()


def titled(sup: RunningSupervisor, title: str) -> int:
    for process in sup.tree():
        try:
            if " ".join(process.cmdline()).startswith(title):
                return process.pid
        except psutil.Error:
            continue
    raise AssertionError(f"no process titled {title!r} in {sup.titles()}")


def fd_targets(pid: int) -> dict[int, str]:
    targets = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:  # closed meanwhile
            continue
    return targets


def foreign_fds(worker: int) -> dict[int, dict[int, str]]:
    """The pipes and sockets each process under `worker` holds that are the worker's too (its stdio aside, and
    what is passed on purpose): what close_fds keeps from a child on asyncio's loop, and what libuv hands on
    unless they are close-on-exec."""
    workers = set(fd_targets(worker).values())
    found: dict[int, dict[int, str]] = {}
    for child in psutil.Process(worker).children(recursive=True):
        if child.name() == "slirp4netns":
            continue  # the backend's network: passed the worker's exit pipe on purpose (system/netns.py)
        targets = fd_targets(child.pid)
        stdio = {targets.get(fd) for fd in (0, 1, 2)}
        shared = {
            fd: target
            for fd, target in targets.items()
            if fd > 2 and target.startswith(("pipe:", "socket:")) and target in workers and target not in stdio
        }
        if shared:
            found[child.pid] = shared
    return found


@pytest.mark.parametrize(
    ("event_loop", "spawn"), [("uvloop", "fork"), ("asyncio", "fork"), ("uvloop", "spawn"), ("", "fork")]
)
async def test_gateway_and_workers_run_on_the_chosen_loop(
    tmp_path: Path, supervisor_factory: Any, event_loop: str, spawn: str
) -> None:
    """On the old code the gateway and the worker mapped no uvloop ('uvloop' case: assert False)."""
    config_dir = tmp_path / "config"
    entry = {"type": "stdio", "command": sys.executable, "args": [str(TINY_SERVER), "--name", "one"]}
    write_config(config_dir, {"one": entry})
    env = {"WORKER_SPAWN": spawn, "MCP_SUPERVISOR_EVENT_LOOP": event_loop}
    sup: RunningSupervisor = supervisor_factory(config_dir, env)
    sup.wait_linked({"one"})
    async with mcp_client(sup.url) as client:
        result = await client.call_tool("one--echo", {"text": "over the loop"})
    assert "over the loop" in str(result.content)

    on_uvloop = event_loop in ("uvloop", "")  # unset: the default
    gateway, worker = titled(sup, "mcp-supervisor: gateway"), titled(sup, "mcp-supervisor: worker[one]")
    assert maps_uvloop(gateway) is on_uvloop
    assert maps_uvloop(worker) is on_uvloop
    assert not maps_uvloop(sup.process.pid)  # the supervisor stays on asyncio's loop
    found = foreign_fds(worker)
    assert found == {}, {pid: (psutil.Process(pid).cmdline(), fds) for pid, fds in found.items()}

    assert sup.stop() == 0
    log = sup.log_path.read_text(errors="replace")
    assert not [line for line in log.splitlines() if any(noise in line for noise in NOISE)], sup.log_tail()


def test_an_unknown_loop_refuses_to_start(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {})
    done = subprocess.run(
        [SUPERVISOR_CMD, "start", "--config-dir", str(config_dir), "--port", "0"],
        env={**os.environ, "MCP_SUPERVISOR_EVENT_LOOP": "tokio"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "MCP_SUPERVISOR_EVENT_LOOP='tokio' must be one of uvloop, asyncio" in done.stderr


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("stdin", ["file", "devnull"])
def test_stdio_front_end_reads_a_file_or_dev_null(tmp_path: Path, event_loop: str, stdin: str) -> None:
    """`mcp-supervisor stdio < requests.jsonl`: epoll refuses a regular file and /dev/null. On the old code the
    gateway on uvloop died of abort() (libuv) and on asyncio's loop of a ValueError (file) or waited forever
    (/dev/null); here the requests are answered and the tree exits 0 at the end of its input."""
    initialize = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "file", "version": "1"}}
    lines: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},
    ]
    env = {"MCP_SUPERVISOR_EVENT_LOOP": event_loop}
    done, replies = run_stdio_script(tmp_path, {}, lines, env, stdin=None if stdin == "file" else os.devnull)
    if stdin == "file":
        assert replies[1]["result"]["serverInfo"] and replies[2] == {"jsonrpc": "2.0", "id": 2, "result": {}}
    else:
        assert replies == {}
    assert b"Traceback" not in done.stderr and b"Aborted" not in done.stderr
