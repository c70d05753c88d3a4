"""The measurements besides load: start-up, idle memory, held sessions, the sandbox's cost, `tools/list`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
from harness import (
    ECHO_SERVER,
    LEAN_SERVER,
    LOADGEN,
    PYTHON,
    ROOT,
    BenchFailure,
    Processes,
    Supervisor,
    idle_memory,
    loadgen,
    log,
    memory,
    stdio_handshake,
    wait_for,
)
from load_runs import measure_load


def hold_idle_sessions(supervisor: Supervisor, mcp_sessions: int, sse_sessions: int, timeout: float) -> dict[str, Any]:
    """Open idle sessions with the raw client in a helper process; measure the gateway while they are held."""
    tree = supervisor.tree()
    gateway = tree["gateway"]
    before = memory(gateway)
    before_sessions = supervisor.sessions()
    process = _session_holder(supervisor.base, mcp_sessions, sse_sessions, timeout)
    assert process.stdout is not None and process.stdin is not None and process.stderr is not None
    try:
        readable, _, _ = select.select([process.stdout], [], [], timeout + 15)
        if not readable:
            raise BenchFailure(f"holding {mcp_sessions + sse_sessions} idle sessions did not report in time")
        line = process.stdout.readline()
        if not line:
            raise BenchFailure(f"the session holder exited: {process.stderr.read().decode(errors='replace')[-2000:]}")
        opened = json.loads(line)
        # The gateway counts them (every /mcp session, every open /sse stream) before we read its memory.
        expected = before_sessions + opened["held_mcp"] + opened["held_sse"]
        counted = wait_for(lambda: supervisor.sessions() >= expected and supervisor.sessions(), 30, "sessions")
        held = memory(gateway)
        workers = {label: memory(proc) for label, proc in tree.items() if label.startswith("worker")}
        process.stdin.write(b"\n")
        process.stdin.flush()
        process.wait(60)
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    try:
        wait_for(lambda: supervisor.sessions() <= before_sessions, 30, "the held sessions to close")
    except BenchFailure as exc:
        log(f"{exc}")
    after_sessions = supervisor.sessions()
    after = memory(gateway)
    return {
        "requested": {"mcp": mcp_sessions, "sse": sse_sessions},
        "opened": opened,
        "gateway_sessions_counted": counted,
        "gateway_before": before,
        "gateway_held": held,
        "gateway_after_release": after,
        "gateway_sessions_after_release": after_sessions,
        "workers_held": workers,
        "per_session_kb": round((held["rss_mb"] - before["rss_mb"]) * 1024 / max(1, mcp_sessions + sse_sessions), 1),
    }


def _session_holder(base: str, mcp_sessions: int, sse_sessions: int, timeout: float) -> subprocess.Popen[bytes]:
    """`loadgen.py hold` in a process group of its own: it prints one line once the sessions are held, and lets
    them go at a line on stdin."""
    command = [
        PYTHON,
        str(LOADGEN),
        "hold",
        "--base",
        base,
        "--mcp",
        str(mcp_sessions),
        "--sse",
        str(sse_sessions),
        "--hold-seconds",
        str(timeout + 30),
        "--open-timeout",
        str(timeout),
    ]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(ROOT),
        start_new_session=True,
    )
    return process


def log_errors(path: Path) -> dict[str, Any]:
    """ERROR/Traceback lines of a log, counted by their text with numbers blanked, with samples."""
    counts: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        if " ERROR " in line or "Traceback" in line or " CRITICAL " in line:
            text = line.split(" ERROR ", 1)[-1] if " ERROR " in line else line
            key = "".join("N" if char.isdigit() else char for char in text)[:200]
            counts[key] = counts.get(key, 0) + 1
    return {"count": sum(counts.values()), "kinds": dict(sorted(counts.items(), key=lambda item: -item[1])[:10])}


# The benchmark


def machine() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("mcp", "mcp-supervisor", "uvicorn", "starlette", "pyzmq", "msgspec"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[package] = version(package)
    git: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "mcp_supervisor"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        git = {"commit": head.stdout.strip(), "mcp_supervisor_modified": bool(dirty.stdout.strip())}
    return {
        "git": git,
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


async def _bare_backends(count: int, marker: str, timeout: float, server: Path = ECHO_SERVER) -> float:
    """Seconds until `count` echo backends, spawned at once without the supervisor, have answered
    initialize and tools/list over stdio: the floor the supervisor's start-up time is to be compared with."""
    env = {**os.environ, "MCP_BENCH_WORKDIR": marker}
    handshake = stdio_handshake()
    started = time.perf_counter()
    children: list[asyncio.subprocess.Process] = []

    async def one() -> None:
        child = await asyncio.create_subprocess_exec(
            PYTHON,
            str(server),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        children.append(child)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(handshake)  # the server reads them in order, after its imports
        await child.stdin.drain()
        while True:
            line = await child.stdout.readline()
            if not line:
                raise BenchFailure("a bare echo backend closed its stdout during the handshake")
            if json.loads(line).get("id") == 2:
                return

    try:
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout)
        return time.perf_counter() - started
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(child.wait(), 10)


def run_startup(procs: Processes, workdir: Path, backends: int, results: dict[str, Any]) -> None:
    log(f"start-up baseline: 1 and {backends} bare echo backends (no supervisor) to initialize + tools/list")
    bare_one = asyncio.run(_bare_backends(1, procs.marker, 60.0))
    bare_all = asyncio.run(_bare_backends(backends, procs.marker, max(60.0, backends * 6.0)))
    log(f"start-up baseline: 1 bare backend {bare_one:.2f} s, {backends} bare backends {bare_all:.2f} s")
    log(f"start-up: {backends} stdio echo backends")
    supervisor = Supervisor(procs, workdir, f"startup-{backends}", backends=backends)
    supervisor.start()
    try:
        elapsed = supervisor.wait_running(max(60.0, backends * 6.0))
        log(f"start-up: all {backends} RUNNING and linked after {elapsed:.2f} s")
        time.sleep(1.0)  # let start-up garbage settle before reading idle memory
        tree = supervisor.tree()
        idle = idle_memory(tree)
        workers = {label: value for label, value in idle.items() if label.startswith("worker")}
        backend_rss = [value["rss_mb"] for label, value in idle.items() if label.startswith("backend")]
        results["startup"] = {
            "backends": backends,
            "seconds_to_all_running": round(elapsed, 3),
            "bare_backends_seconds": {"1": round(bare_one, 3), str(backends): round(bare_all, 3)},
            "idle_gateway": idle.get("gateway"),
            "idle_supervisor": memory(psutil.Process(supervisor.process.pid)) if supervisor.process else None,
            "idle_workers": workers,
            "idle_worker_max_rss_mb": max((value["rss_mb"] for value in workers.values()), default=None),
            "idle_worker_max_uss_mb": max((value["uss_mb"] for value in workers.values()), default=None),
            "idle_backend_max_rss_mb": max(backend_rss, default=None),
        }
    finally:
        supervisor.stop()
    # The same with a lean stdio backend (no SDK): what the supervisor, gateway and workers cost by themselves.
    log(f"start-up: {backends} lean stdio backends (no SDK)")
    lean_bare = asyncio.run(_bare_backends(backends, procs.marker, max(60.0, backends * 6.0), LEAN_SERVER))
    lean = Supervisor(procs, workdir, f"startup-lean-{backends}", backends=backends, server=LEAN_SERVER)
    lean.start()
    try:
        lean_elapsed = lean.wait_running(max(60.0, backends * 6.0))
    finally:
        lean.stop()
    log(f"start-up: all {backends} lean backends RUNNING and linked after {lean_elapsed:.2f} s (bare {lean_bare:.2f})")
    results["startup"]["lean_backend"] = {
        "seconds_to_all_running": round(lean_elapsed, 3),
        "bare_backends_seconds": round(lean_bare, 3),
    }


def run_sandbox_cost(procs: Processes, workdir: Path, config: argparse.Namespace, results: dict[str, Any]) -> None:
    """The sandbox's cost, SANDBOX=off against the default (auto: bubblewrap, cgroups where the host has them),
    alternating: start-up of N lean stdio backends to RUNNING, and S=1 p50 over /mcp with the raw client."""
    backends = config.startup_backends
    rows: dict[str, dict[str, list[float]]] = {mode: {"startup_s": [], "p50_ms": []} for mode in ("off", "auto")}
    methods: set[str] = set()
    for run in range(config.repeat):
        for mode in ("off", "auto"):
            lean = Supervisor(
                procs, workdir, f"sandbox-{mode}-{run}", backends=backends, server=LEAN_SERVER, env={"SANDBOX": mode}
            )
            lean.start()
            try:
                rows[mode]["startup_s"].append(lean.wait_running(max(60.0, backends * 6.0)))
            finally:
                lean.stop()
            one = Supervisor(procs, workdir, f"sandbox-load-{mode}-{run}", backends=1, env={"SANDBOX": mode})
            one.start()
            try:
                one.wait_running(60)
                methods.update(str((b.get("sandbox") or {}).get("method")) for b in one.health()["backends"])
                tree = one.tree()
                watch = {"gateway": tree["gateway"], "worker": tree["worker[echo]"], "backend": tree["backend[echo]"]}
                result = measure_load(f"{one.base}/mcp", "mcp", "raw", 1, config.calls, "echo--echo", watch)
                if result["errors"] or result["mismatches"]:
                    raise BenchFailure(f"sandbox {mode}: {result['errors']} errors, {result['mismatches']} mismatches")
                rows[mode]["p50_ms"].append(result["latency_ms"]["p50"])
            finally:
                one.stop()
            log(
                f"sandbox {mode:>4}: {backends} lean backends RUNNING in {rows[mode]['startup_s'][-1]:.2f} s, "
                f"S=1 /mcp raw p50 {rows[mode]['p50_ms'][-1]:.2f} ms"
            )
    off = {name: statistics.median(values) for name, values in rows["off"].items()}
    auto = {name: statistics.median(values) for name, values in rows["auto"].items()}
    results["sandbox_cost"] = {
        "backends": backends,
        "methods_seen": sorted(methods),
        "off": {name: round(value, 3) for name, value in off.items()},
        "auto": {name: round(value, 3) for name, value in auto.items()},
        "startup_ratio": round(auto["startup_s"] / off["startup_s"], 3),
        "p50_delta_ms": round(auto["p50_ms"] - off["p50_ms"], 3),
    }


def run_tools_list(
    procs: Processes, workdir: Path, backends: int, tools_per_backend: int, calls: int, results: dict[str, Any]
) -> None:
    extra = max(0, tools_per_backend - 2)  # echo and sleep, plus trivial ones
    expected = backends * (2 + extra)
    log(f"tools/list: {backends} backends x {2 + extra} tools = {expected} tools")
    supervisor = Supervisor(procs, workdir, f"tools-{backends}x{2 + extra}", backends=backends, extra_tools=extra)
    supervisor.start()
    try:
        elapsed = supervisor.wait_running(max(60.0, backends * 6.0))
        log(f"tools/list: all {backends} RUNNING and linked after {elapsed:.2f} s")
        url = f"{supervisor.base}/mcp"
        tree = supervisor.tree()
        # The gateway's own CPU per list: steadier than the latency on a shared machine (no client, no scheduler).
        cpu_before = sum(tree["gateway"].cpu_times()[:2])
        listed = loadgen(["list", "--url", url, "-N", str(calls), "--expect-tools", str(expected)], 120 + calls)
        gateway_cpu_ms = 1000 * (sum(tree["gateway"].cpu_times()[:2]) - cpu_before) / (calls + 1)
        listed.update(
            {
                "gateway_cpu_ms_per_list": round(gateway_cpu_ms, 3),
                "backends": backends,
                "tools_per_backend": 2 + extra,
                "expected_tools": expected,
                "seconds_to_all_running": round(elapsed, 3),
                "idle_gateway": idle_memory({"gateway": tree["gateway"]}).get("gateway"),
            }
        )
        results["tools_list"] = listed
        latency = listed["latency_ms"]
        log(
            f"tools/list: p50 {latency['p50']:.2f} ms p99 {latency['p99']:.2f} ms, {listed['tools']} tools, "
            f"gateway CPU {gateway_cpu_ms:.3f} ms per list"
        )
    finally:
        supervisor.stop()
