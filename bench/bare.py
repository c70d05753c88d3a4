"""Bare lean stdio backends for the scale section of `make bench` (bench/scale.py): the same N backends started
without our processes, optionally each through the sandbox the supervisor plans, started as a worker starts it
(stdio_connection.spawn: the outer stage in the child, a network namespace of its own wired up); their start-up,
USS and idle CPU, and slirp4netns' memory (issue 22)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import psutil

from mcp_supervisor.protocol.spawn import Launch
from mcp_supervisor.supervisor.backend_launch import launch_of
from mcp_supervisor.worker.startup import watch_children_with_pidfds
from mcp_supervisor.worker.stdio_connection import release_network, spawn

TOOLS_PER_BACKEND = 20
SETTLE_S = 3.0


def _median(rows: list[dict[str, Any]], field: str) -> float | None:
    values = [row[field] for row in rows if row.get(field) is not None]
    return round(statistics.median(values), 3) if values else None


def _lean_argv(h: ModuleType) -> list[str]:
    return [h.PYTHON, str(h.LEAN_SERVER), "--tools", str(TOOLS_PER_BACKEND - 1)]


def sandboxed_launch(h: ModuleType, workdir: Path, network: bool = True) -> Launch | None:
    """How the supervisor would start one lean backend on this host (SANDBOX=auto), as the `Launch` a worker gets;
    None when the host offers no sandbox. Its state dir and a hidden path stand for the real ones (the same mounts,
    give or take the other backends' directories). `network=False`: the same without a network of its own."""
    from mcp_supervisor.system.sandbox import SandboxPolicy, plan_sandbox, probe_host

    state = workdir / "bare-sandbox-state"
    state.mkdir(parents=True, exist_ok=True)
    argv = _lean_argv(h)
    plan = plan_sandbox(
        argv[0],
        argv[1:],
        None,
        dict(os.environ),
        SandboxPolicy(network=network),
        "auto",
        probe_host(),
        state_dir=str(state),
        hidden_paths=[str(workdir / "hidden")],
    )
    if plan.method == "none":
        return None
    return launch_of(plan)


async def _start_bare(argv: list[str], env: dict[str, str], launch: Launch | None) -> asyncio.subprocess.Process:
    if launch is not None:  # as a worker starts it: the outer stage in the child, the network namespace wired
        return await spawn(msgspec.structs.replace(launch, env={**launch.env, **env}))
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def _slirp_memory() -> tuple[float, float, int]:
    """(USS MB, RSS MB, count) of the slirp4netns processes this process started."""
    found = [p for p in psutil.Process().children() if p.name() == "slirp4netns"]
    return sum(_mem(p)[0] for p in found), sum(p.memory_info().rss for p in found) / 2**20, len(found)


async def _bare(
    h: ModuleType,
    marker: str,
    count: int,
    idle_s: float,
    launch: Launch | None = None,
) -> dict[str, Any]:
    """N bare lean backends (through `launch`, the planned sandbox, when given): seconds to all answered, then
    their USS and idle CPU (and slirp4netns' memory), then killed."""
    argv, env = _lean_argv(h), {**os.environ, "MCP_BENCH_WORKDIR": marker}
    handshake = h.stdio_handshake()
    children: list[asyncio.subprocess.Process] = []
    watch_children_with_pidfds()  # as a worker does: no waiter thread per child, so the stage runs in the child
    started = time.perf_counter()

    async def one() -> None:
        child = await _start_bare(argv, env, launch)
        children.append(child)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(handshake)
        await child.stdin.drain()
        while True:
            line = await child.stdout.readline()
            if not line:
                raise h.BenchFailure("a bare lean backend closed its stdout during the handshake")
            if json.loads(line).get("id") == 2:
                return

    try:
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), max(60.0, count * 0.5))
        elapsed = time.perf_counter() - started
        processes = [psutil.Process(child.pid) for child in children]
        if launch is not None:  # the backends themselves, not the sandbox's processes around them
            processes = [p for root in processes for p in [root, *root.children(recursive=True)] if p.name() != "bwrap"]
            processes = [p for p in processes if "tiny_server" in " ".join(p.cmdline())]
        await asyncio.sleep(SETTLE_S)
        uss = sum(_mem(p)[0] for p in processes)
        slirp_uss, slirp_rss, slirps = _slirp_memory()
        before = _cpu(processes)
        await asyncio.sleep(idle_s)
        cpu = (_cpu(processes) - before) / idle_s * 100
        return {
            "seconds": elapsed,
            "uss_mb": uss,
            "idle_cpu_percent": cpu,
            "slirp_uss_mb": slirp_uss,
            "slirp_rss_mb": slirp_rss,
            "slirps": slirps,
        }
    finally:
        await _stop_bare(children, launch)


async def _stop_bare(children: list[asyncio.subprocess.Process], launch: Launch | None) -> None:
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            if launch is None:
                os.killpg(child.pid, signal.SIGKILL)
            else:
                child.kill()  # bubblewrap: its pid namespace goes with it
    for child in children:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(child.wait(), 10)
        release_network(child.pid)  # slirp4netns ends with its exit fd
    # In the sandbox the backend may hold its pipes a moment longer than bubblewrap lives: close the transports
    # now, or their finalizers complain about a closed loop when asyncio.run() ends.
    for child in children:
        transport = getattr(child, "_transport", None)
        if transport is not None:
            transport.close()


def _mem(process: psutil.Process) -> tuple[float, float]:
    try:
        info = process.memory_full_info()
    except psutil.Error:
        return 0.0, 0.0
    return info.uss / 1_048_576, info.pss / 1_048_576


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _network_cost(count: int, sandboxed: list[dict[str, Any]], offline: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What a backend's own network namespace costs (issue 22): start-up against the same sandbox with network
    false, and slirp4netns' memory, per backend."""
    online, without = _median(sandboxed, "seconds"), _median(offline, "seconds")
    slirps = _median(sandboxed, "slirps")
    if online is None or without is None or not slirps:
        return None
    return {
        "seconds": online,
        "offline_seconds": without,
        "startup_ms_per_backend": round((online - without) / count * 1000, 2),
        "slirp_uss_mb_per_backend": round((_median(sandboxed, "slirp_uss_mb") or 0) / slirps, 2),
        "slirp_rss_mb_per_backend": round((_median(sandboxed, "slirp_rss_mb") or 0) / slirps, 2),
        "all_offline_runs": offline,
    }
