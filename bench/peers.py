"""The "peers" section of `make bench` (issue 27): the Python gateways a user would pick instead, side by side with
this one, on the same echo backend, in the same run.

- FastMCP's proxy (`fastmcp` on PyPI: `FastMCP.as_proxy`, `create_proxy` since fastmcp 3) over the echo backend on
  stdio, served over Streamable HTTP;
- sparfenyuk's `mcp-proxy` (`mcp-proxy --port P -- python echo_server.py`), the echo backend on stdio;
- IBM's ContextForge (`mcp-contextforge-gateway`, the `mcpgateway` command, SQLite, no Redis): it takes remote
  backends only, so the echo server runs over Streamable HTTP behind it, registered through its admin API with
  a JWT made by its own `create_jwt_token`. Its per-user rate limit (100 calls a minute by default) is turned
  off (`RATE_LIMITING_ENABLED=false`), else no load run gets through; everything else is its default.

Each is installed by the bench into a scratch virtual environment of its own, outside the repository
(`--peers-dir`, default `~/.cache/mcp-supervisor-bench/peers/<name>`; reused while the stamp of its package spec
matches), never into the project's. Each peer is measured with the raw client over `/mcp` (handshake era: none of
them serves 2026-07-28): S=1 p50, S=64 calls/s, the CPU seconds per 1000 calls of the proxy and of the backend, and
the proxy's peak RSS. A peer that cannot be installed or started is reported with the error, not fatal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
UV = ROOT / ".tools" / "uv" / "bin" / "uv"
DEFAULT_DIR = Path.home() / ".cache" / "mcp-supervisor-bench" / "peers"
PEERS = {"fastmcp": "fastmcp", "mcp-proxy": "mcp-proxy", "contextforge": "mcp-contextforge-gateway"}
SESSIONS = (1, 64)
# Calls per load run at most, per peer: ContextForge serves ~10 calls/s on 2 cores (its per-call database work),
# so N=2000 would take minutes per run.
MAX_CALLS = {"contextforge": 300}

FASTMCP_PROXY = """
import sys
from fastmcp import FastMCP

config = {"mcpServers": {"echo": {"command": sys.argv[2], "args": [sys.argv[3]]}}}
if hasattr(FastMCP, "as_proxy"):
    proxy = FastMCP.as_proxy(config, name="bench-proxy")
else:  # fastmcp >= 3: as_proxy became create_proxy
    from fastmcp.server import create_proxy

    proxy = create_proxy(config, name="bench-proxy")
proxy.run(transport="http", host="127.0.0.1", port=int(sys.argv[1]), show_banner=False, log_level="warning")
"""


class PeerFailure(Exception):
    """A peer could not be installed, started or measured; the message says how."""


def install(root: Path, name: str, package: str) -> Path:
    """The python of `name`'s scratch environment, with `package` (latest from PyPI) installed in it."""
    env = root / name
    python = env / "bin" / "python"
    stamp = env / ".bench-installed"
    if python.exists() and stamp.exists() and stamp.read_text() == package:
        return python
    shutil.rmtree(env, ignore_errors=True)
    env.parent.mkdir(parents=True, exist_ok=True)
    if UV.exists():
        commands = [
            [str(UV), "venv", "--quiet", "--python", sys.executable, str(env)],
            [str(UV), "pip", "install", "--quiet", "--python", str(python), package],
        ]
    else:
        commands = [[sys.executable, "-m", "venv", str(env)], [str(python), "-m", "pip", "install", "-q", package]]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise PeerFailure(f"installing {package} failed: {' '.join(command)}: {done.stderr.strip()[-800:]}")
    stamp.write_text(package)
    return python


def version(python: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}), m.version('mcp'))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    parts = done.stdout.split()
    return f"{package} {parts[0]} (mcp {parts[1]})" if len(parts) == 2 else package


class Running:
    """One started peer: where its clients go, with which tool name and headers, and its processes."""

    def __init__(self, url: str, tool: str, headers: list[str], proxy: psutil.Process) -> None:
        self.url, self.tool, self.headers, self.proxy = url, tool, headers, proxy
        self.backend: psutil.Process | None = None

    def watch(self) -> dict[str, psutil.Process]:
        watched = {"proxy": self.proxy}
        if self.backend is not None:
            watched["backend"] = self.backend
        return watched


def _echo_child(proxy: psutil.Process) -> psutil.Process | None:
    for child in proxy.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any("echo_server.py" in part for part in child.cmdline()):
                return child
    return None


def _wait_port(bench: ModuleType, port: int, process: Any, log_path: Path, timeout: float) -> None:
    def up() -> bool:
        if process.poll() is not None:
            raise PeerFailure(f"exited with {process.returncode}: {log_path.read_text(errors='replace')[-1500:]}")
        return bool(bench.port_open(port))

    try:
        bench.wait_for(up, timeout, f"port {port}", interval=0.1)
    except bench.BenchFailure as exc:
        raise PeerFailure(f"{exc}: {log_path.read_text(errors='replace')[-1500:]}") from None


def start_fastmcp(bench: ModuleType, procs: Any, workdir: Path, python: Path) -> Running:
    script = workdir / "fastmcp_proxy.py"
    script.write_text(FASTMCP_PROXY)
    port = bench.free_port()
    log_path = workdir / "peer-fastmcp.log"
    process = procs.spawn([str(python), str(script), str(port), bench.PYTHON, str(bench.ECHO_SERVER)], log_path)
    _wait_port(bench, port, process, log_path, 90)
    return Running(f"http://127.0.0.1:{port}/mcp", "echo", [], psutil.Process(process.pid))


def start_mcp_proxy(bench: ModuleType, procs: Any, workdir: Path, python: Path) -> Running:
    port = bench.free_port()
    log_path = workdir / "peer-mcp-proxy.log"
    command = [str(python.parent / "mcp-proxy"), "--host", "127.0.0.1", "--port", str(port), "--pass-environment"]
    process = procs.spawn([*command, "--", bench.PYTHON, str(bench.ECHO_SERVER)], log_path)
    _wait_port(bench, port, process, log_path, 90)
    return Running(f"http://127.0.0.1:{port}/mcp", "echo", [], psutil.Process(process.pid))


def _contextforge_env(workdir: Path, port: int, secret: str) -> dict[str, str]:
    home = workdir / "contextforge"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "MCG_HOST": "127.0.0.1",
        "MCG_PORT": str(port),
        "DATABASE_URL": f"sqlite:///{home / 'mcp.db'}",
        "CACHE_TYPE": "memory",
        "JWT_SECRET_KEY": secret,
        "AUTH_ENCRYPTION_SECRET": secret,
        "PLATFORM_ADMIN_PASSWORD": "Bench-" + secret[:16],
        "BASIC_AUTH_USER": "bench",
        "BASIC_AUTH_PASSWORD": "Bench-" + secret[:16],
        "MCPGATEWAY_ADMIN_API_ENABLED": "true",
        "MCPGATEWAY_UI_ENABLED": "false",
        "SSRF_ALLOW_LOCALHOST": "true",  # the echo backend is on loopback
        "RATE_LIMITING_ENABLED": "false",  # 100 calls a minute per user by default
        "LOG_LEVEL": "WARNING",
    }


def start_contextforge(bench: ModuleType, procs: Any, workdir: Path, python: Path) -> Running:
    backend = bench.DirectBackend(procs, workdir, "mcp")  # remote backends only: the echo over Streamable HTTP
    port = bench.free_port()
    secret = secrets.token_hex(32)
    env = _contextforge_env(workdir, port, secret)
    log_path = workdir / "peer-contextforge.log"
    process = procs.spawn([str(python.parent / "mcpgateway")], log_path, env)
    _wait_port(bench, port, process, log_path, 180)
    made = subprocess.run(
        [
            str(python),
            "-m",
            "mcpgateway.utils.create_jwt_token",
            *("-u", "admin@example.com", "--admin"),
            *("--secret", secret, "--exp", "600"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    token = made.stdout.strip().splitlines()[-1] if made.stdout.strip() else ""
    if not token:
        raise PeerFailure(f"no token from create_jwt_token: {made.stderr[-800:]}")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    base = f"http://127.0.0.1:{port}"
    registration = {"name": "echo", "url": backend.url, "transport": "STREAMABLEHTTP"}
    request = bench.urllib.request.Request(
        f"{base}/gateways", data=bench.json.dumps(registration).encode(), headers=auth, method="POST"
    )
    try:
        with bench._OPENER.open(request, timeout=60) as response:
            response.read()
        tools = bench.get_json(f"{base}/tools", timeout=30, headers=auth)
    except Exception as exc:
        raise PeerFailure(f"registering the echo backend failed: {exc!r}") from None
    names = [tool.get("name") for tool in tools if str(tool.get("originalName")) == "echo"]
    if not names:
        raise PeerFailure(f"ContextForge lists no echo tool: {tools!r:.500}")
    running = Running(
        f"{base}/mcp", str(names[0]), ["--header", f"Authorization: Bearer {token}"], psutil.Process(process.pid)
    )
    running.backend = psutil.Process(backend.process.pid)
    return running


STARTERS = {"fastmcp": start_fastmcp, "mcp-proxy": start_mcp_proxy, "contextforge": start_contextforge}


def measure(bench: ModuleType, running: Running, sessions: int, calls: int) -> dict[str, Any]:
    args = ["run", "--url", running.url, "--mode", "raw", "-S", str(sessions), "-N", str(calls), "--tool", running.tool]
    with bench.PeakSampler(running.watch()) as sampler:
        result: dict[str, Any] = bench.loadgen([*args, *running.headers], bench.load_timeout(calls, sessions))
    result["processes"] = sampler.result()
    for figures in result["processes"].values():
        figures["cpu_s_per_1k"] = round(figures["cpu_s"] * 1000 / max(1, result["calls"]), 3)
    return result


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    processes = runs[0]["processes"]
    return {
        "calls": sum(run["calls"] for run in runs),
        "errors": sum(run["errors"] for run in runs),
        "mismatches": sum(run["mismatches"] for run in runs),
        "error_samples": list(dict.fromkeys(s for run in runs for s in run["error_samples"]))[:3],
        "p50_ms": round(statistics.median(run["latency_ms"]["p50"] for run in runs), 3),
        "calls_per_s": round(statistics.median(run["calls_per_s"] for run in runs), 1),
        "processes": {
            label: {
                "peak_rss_mb": max(run["processes"][label]["peak_rss_mb"] for run in runs),
                "cpu_s_per_1k": round(statistics.median(run["processes"][label]["cpu_s_per_1k"] for run in runs), 3),
            }
            for label in processes
        },
    }


def run_peer(bench: ModuleType, procs: Any, workdir: Path, config: argparse.Namespace, name: str) -> dict[str, Any]:
    root = Path(config.peers_dir)
    bench.log(f"peers: {name}: installing {PEERS[name]} into {root / name} (reused when there)")
    python = install(root, name, PEERS[name])
    entry: dict[str, Any] = {"version": version(python, PEERS[name])}
    before = set(procs.popens)
    running = STARTERS[name](bench, procs, workdir, python)
    try:
        warm = bench.loadgen(
            ["run", "--url", running.url, "-S", "1", "-N", "5", "--tool", running.tool, *running.headers], 120
        )
        if warm["errors"] or warm["mismatches"]:
            raise PeerFailure(f"warm-up calls failed: {warm['error_samples'][:2]}")
        if running.backend is None:
            running.backend = _echo_child(running.proxy)
        for sessions in SESSIONS:
            calls = min(config.calls, MAX_CALLS.get(name, config.calls))
            runs = [measure(bench, running, sessions, calls) for _ in range(config.repeat)]
            entry[f"S{sessions}"] = _summary(runs)
            row = entry[f"S{sessions}"]
            bench.log(
                f"peers: {name} S={sessions} p50 {row['p50_ms']:.2f} ms {row['calls_per_s']:.0f} calls/s "
                f"errors {row['errors']} proxy {row['processes']['proxy']['cpu_s_per_1k']:.3f} CPU-s/1000"
            )
    finally:
        for process in [p for p in procs.popens if p not in before]:
            procs.stop(process)
    return entry


def run_peers(
    bench: ModuleType, procs: Any, workdir: Path, config: argparse.Namespace, results: dict[str, Any]
) -> None:
    peers: dict[str, Any] = {}
    for name in [value for value in config.peers.split(",") if value]:
        started = time.monotonic()
        try:
            peers[name] = run_peer(bench, procs, workdir, config, name)
        except (PeerFailure, bench.BenchFailure, subprocess.TimeoutExpired, OSError, psutil.Error) as exc:
            bench.log(f"peers: {name} could not be measured: {exc}")
            peers[name] = {"failed": str(exc)}
        peers[name]["seconds"] = round(time.monotonic() - started, 1)
    results["peers"] = peers


def _ours(results: dict[str, Any], sessions: int, side: str) -> dict[str, Any] | None:
    for pair in results.get("load", []):
        if (pair["transport"], pair["mode"], pair["sessions"]) == ("mcp", "raw", sessions):
            return dict(pair[side])
    return None


def report(results: dict[str, Any]) -> list[str]:
    peers = results.get("peers")
    if not peers:
        return []
    lines = [
        "",
        "Peers (raw client over /mcp, handshake era; same echo backend; CPU-s per 1000 calls, peak RSS MB; "
        f"ContextForge at most {MAX_CALLS['contextforge']} calls per run):",
    ]
    header = (
        f"  {'':<58} {'S=1 p50 ms':>10} {'S=64 calls/s':>12} {'proxy CPU':>10} {'backend CPU':>11} {'proxy RSS':>9}"
    )
    lines.append(header)
    for label, side, proxy_key in (
        ("direct (the echo backend alone)", "direct", "backend"),
        ("mcp-supervisor", "gateway", "gateway"),
    ):
        one, many = _ours(results, 1, side), _ours(results, 64, side)
        if one is None or many is None:
            continue
        procs = many["processes"]
        proxy_cpu = procs[proxy_key]["cpu_s_per_1k"] + (procs["worker"]["cpu_s_per_1k"] if side == "gateway" else 0.0)
        backend_cpu = procs["backend"]["cpu_s_per_1k"] if side == "gateway" else 0.0
        rss = procs[proxy_key]["peak_rss_mb"]
        lines.append(
            f"  {label + (' (gateway + worker)' if side == 'gateway' else ''):<58} {one['latency_ms']['p50']:>10.2f} "
            f"{many['calls_per_s']:>12.0f} {proxy_cpu:>10.3f} {backend_cpu:>11.3f} {rss:>9.1f}"
        )
    for name, entry in peers.items():
        if "failed" in entry:
            lines.append(f"  {name:<58} could not be measured: {entry['failed'][:300]}")
            continue
        one, many = entry["S1"], entry["S64"]
        procs = many["processes"]
        backend = procs.get("backend", {}).get("cpu_s_per_1k")
        errors = one["errors"] + many["errors"] + one["mismatches"] + many["mismatches"]
        lines.append(
            f"  {entry['version']:<58} {one['p50_ms']:>10.2f} {many['calls_per_s']:>12.0f} "
            f"{procs['proxy']['cpu_s_per_1k']:>10.3f} {'-' if backend is None else f'{backend:.3f}':>11} "
            f"{procs['proxy']['peak_rss_mb']:>9.1f}"
            + (f"  ({errors} failed calls: {one['error_samples'] or many['error_samples']})" if errors else "")
        )
    return lines
