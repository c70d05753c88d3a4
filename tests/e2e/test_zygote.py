"""Issue 17 end to end: workers forked by the zygote, a zygote crash, and the fallback to spawning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.conftest import ROOT, SUPERVISOR_CMD, RunningSupervisor, write_config
from tests.helpers import mcp_client, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TINY_SERVER = ROOT / "tests" / "fixtures" / "tiny_server.py"


def tiny(name: str) -> dict[str, Any]:
    return {"type": "stdio", "command": sys.executable, "args": [str(TINY_SERVER), "--name", name]}


def status(sup: RunningSupervisor) -> dict[str, Any]:
    result = subprocess.run(
        [SUPERVISOR_CMD, "status", "--json", "--config-dir", str(sup.config_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k != "MCP_SUPERVISOR_CONFIG_DIR"},
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def start(supervisor_factory: Any, tmp_path: Path, keys: list[str], **env: str) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {key: tiny(key) for key in keys})
    sup: RunningSupervisor = supervisor_factory(config_dir, env or None)
    sup.wait_linked(set(keys))
    return sup


def zygote_pid(text: str) -> int:
    assert text.startswith("fork (zygote pid "), text
    return int(text.split("zygote pid ")[1].split(",")[0])


async def test_workers_are_forked_by_the_zygote_reparented_in_their_own_sessions(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    sup = start(supervisor_factory, tmp_path, ["one", "two"])
    snapshot = status(sup)
    zygote = zygote_pid(snapshot["worker_spawn"])
    assert psutil.Process(zygote).ppid() == sup.process.pid
    zygote_sockets = {
        target
        for fd in os.listdir(f"/proc/{zygote}/fd")
        if (target := os.readlink(f"/proc/{zygote}/fd/{fd}")).startswith("socket:")
    }
    assert zygote_sockets
    for backend in snapshot["backends"]:
        pid = backend["pid"]
        assert backend["start_method"] == "fork", backend
        # Reparented to the supervisor (the subreaper), not a child of the zygote; leader of its own session.
        assert psutil.Process(pid).ppid() == sup.process.pid, backend
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid, backend
        assert "worker[" in " ".join(psutil.Process(pid).cmdline()), backend
        # Nothing of the zygote's fds (its socket to the supervisor), and the handoff memfd read and closed.
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert not any("memfd:mcp-supervisor-handoff" in target for target in fds.values()), fds
        assert not zygote_sockets & set(fds.values()), (fds, zygote_sockets)
    table = subprocess.run(
        [SUPERVISOR_CMD, "status", "--config-dir", str(sup.config_dir)], capture_output=True, text=True, timeout=30
    )
    assert "workers: fork (zygote pid" in table.stdout, table.stdout
    async with mcp_client(sup.url) as client:
        for key in ("one", "two"):
            result = await client.call_tool(f"{key}--echo", {"text": "hi"})
            assert result.content[0].text == f"{key}: hi"  # type: ignore[union-attr]


async def test_zygote_crash_is_restarted_and_workers_keep_serving(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start(supervisor_factory, tmp_path, ["one", "two"])
    before = status(sup)
    zygote = zygote_pid(before["worker_spawn"])
    workers = {b["key"]: b["pid"] for b in before["backends"]}
    os.kill(zygote, signal.SIGKILL)

    def restarted() -> int | None:
        text = status(sup)["worker_spawn"]
        if text.startswith("fork (") and zygote_pid(text) != zygote:
            return zygote_pid(text)
        return None

    new_zygote = wait_until(restarted, 15, what="a new zygote")
    assert "1 restart(s)" in status(sup)["worker_spawn"]
    assert psutil.Process(new_zygote).ppid() == sup.process.pid
    after = status(sup)
    assert {b["key"]: b["pid"] for b in after["backends"]} == workers  # the workers were not touched
    async with mcp_client(sup.url) as client:
        result = await client.call_tool("one--echo", {"text": "still"})
        assert result.content[0].text == "one: still"  # type: ignore[union-attr]
    # New workers come from the new zygote.
    restart = subprocess.run(
        [SUPERVISOR_CMD, "restart", "two", "--config-dir", str(sup.config_dir)], capture_output=True, text=True
    )
    assert restart.returncode == 0, restart.stdout + restart.stderr
    sup.wait_linked({"two"})
    two = next(b for b in status(sup)["backends"] if b["key"] == "two")
    assert two["pid"] != workers["two"] and two["start_method"] == "fork", two
    async with mcp_client(sup.url) as client:
        result = await client.call_tool("two--echo", {"text": "back"})
        assert result.content[0].text == "two: back"  # type: ignore[union-attr]


async def test_threads_in_the_zygote_fall_back_to_spawning_and_status_says_why(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    # A sitecustomize that starts a thread at interpreter start (as tracing agents do): forking is unsafe.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import threading, time\nthreading.Thread(target=lambda: time.sleep(3600), daemon=True).start()\n"
    )
    pythonpath = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    sup = start(supervisor_factory, tmp_path, ["one"], PYTHONPATH=pythonpath)
    snapshot = status(sup)
    assert snapshot["worker_spawn"].startswith("spawn: "), snapshot["worker_spawn"]
    assert "threads" in snapshot["worker_spawn"], snapshot["worker_spawn"]
    assert [b["start_method"] for b in snapshot["backends"]] == ["spawn"]
    async with mcp_client(sup.url) as client:
        result = await client.call_tool("one--echo", {"text": "spawned"})
        assert result.content[0].text == "one: spawned"  # type: ignore[union-attr]


async def test_worker_spawn_setting_turns_forking_off(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start(supervisor_factory, tmp_path, ["one"], WORKER_SPAWN="spawn")
    snapshot = status(sup)
    assert snapshot["worker_spawn"] == "spawn: WORKER_SPAWN=spawn"
    assert [b["start_method"] for b in snapshot["backends"]] == ["spawn"]


async def test_a_slow_zygote_is_waited_for_and_a_hung_one_is_replaced(tmp_path: Path, supervisor_factory: Any) -> None:
    """Fork answers are read by the loop, never waited for on it: a zygote slow to answer (SIGSTOPped for 3 s, as
    a loaded machine delays its forked intermediates) delays its workers and kills nothing; one that answers
    nothing for FORK_TIMEOUT_S (10 s) is replaced, and the workers it owed are spawned instead."""
    sup = start(supervisor_factory, tmp_path, ["one"])
    zygote = zygote_pid(status(sup)["worker_spawn"])
    os.kill(zygote, signal.SIGSTOP)
    try:
        write_config(sup.config_dir, {key: tiny(key) for key in ("one", "two", "three")})
        waiting = wait_until(
            lambda: {b["key"]: b for b in status(sup)["backends"] if b["key"] in ("two", "three")} or None,
            15,
            what="the reload's new backends",
        )
        time.sleep(3)
        assert all(b["state"] == "STARTING" and b["pid"] is None for b in waiting.values()), waiting
    finally:
        os.kill(zygote, signal.SIGCONT)
    sup.wait_linked({"one", "two", "three"})
    snapshot = status(sup)
    assert snapshot["worker_spawn"] == f"fork (zygote pid {zygote}, 0 restart(s))", snapshot["worker_spawn"]
    assert all(b["start_method"] == "fork" and b["restarts"] == 0 for b in snapshot["backends"]), snapshot

    os.kill(zygote, signal.SIGSTOP)  # hung for good: killed after FORK_TIMEOUT_S
    began = time.monotonic()
    write_config(sup.config_dir, {key: tiny(key) for key in ("one", "two", "three", "four")})
    sup.wait_linked({"four"}, timeout=40)
    four = next(b for b in status(sup)["backends"] if b["key"] == "four")
    print(f"\nfour RUNNING {time.monotonic() - began:.1f} s after the reload, with the zygote hung")
    assert four["start_method"] == "spawn", four
    assert "no answer to a fork request" in sup.log_path.read_text(), sup.log_tail()
    assert not psutil.pid_exists(zygote) or psutil.Process(zygote).status() == psutil.STATUS_ZOMBIE

    def replaced() -> bool:
        text = status(sup)["worker_spawn"]
        return text.startswith("fork (") and zygote_pid(text) != zygote

    wait_until(replaced, 15, what="a new zygote")
    others = {b["key"]: b for b in status(sup)["backends"]}
    assert all(others[key]["restarts"] == 0 for key in ("one", "two", "three")), others
