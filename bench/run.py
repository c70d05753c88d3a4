"""`make bench`: mcp-supervisor measured side by side with a direct connection to the same backend, on loopback.

In one go:
- load: direct (the echo backend over Streamable HTTP, or over legacy SSE, one process) vs the gateway
  (`mcp-supervisor start`, the same backend behind a worker over stdio), for S in {1, 16, 64} sessions over `/mcp`
  and `/sse`, with the lean raw client and with the official SDK client (both in the handshake era); and the
  2026-07-28 era: S in {1, 64} over `/mcp` with the SDK client pinned to it (`Client(url, mode="2026-07-28")`, the
  `modern` client), against the same direct SDK server (which serves both eras) and the gateway. Peak RSS of the
  gateway, the worker and the backend during each run (sampled by a background thread);
- start-up time of 20 stdio backends to all RUNNING and linked, and the idle RSS/USS of the gateway and workers;
- `tools/list` latency with 50 backends x 20 tools (1000 tools);
- what a credential costs: S=1 `tools/call` p50 direct, through the gateway with a static key, and with an
  OAuth JWT validated against a local issuer (`bench/auth_cost.py`);
- idle RSS of the gateway and its worker, and the gateway's RSS holding 1000 idle client sessions
  (500 initialized `/mcp` sessions with their GET streams + 500 open `/sse` streams).

It prints a table with the ratios gateway/direct and writes everything to `bench/results/<timestamp>.json`.
Every process it starts is stopped at the end (process groups, then any survivor of the supervisor's tree), and
every wait is a bounded poll. The exit status is 1 when a run had errors or mismatched replies (the product
answered wrongly), or when a measurement could not be made; a missed performance target is reported, not fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
ECHO_SERVER = BENCH / "echo_server.py"
# A stdio MCP server without the SDK (starts in milliseconds): start-up with it shows the supervisor's own cost.
LEAN_SERVER = ROOT / "tests" / "fixtures" / "tiny_server.py"
LOADGEN = BENCH / "loadgen.py"
PYTHON = sys.executable
SUPERVISOR = str(Path(sys.executable).parent / "mcp-supervisor")
MB = 1024 * 1024
T = TypeVar("T")

# The targets (issue 7), checked at the end.
TARGET_S1_P50_DELTA_MS = 1.0
TARGET_S64_THROUGHPUT_RATIO = 1.0
TARGET_IDLE_GATEWAY_RSS_MB = 80.0
TARGET_IDLE_WORKER_USS_MB = 40.0
TARGET_STARTUP_S = 5.0
TARGET_TOOLS_LIST_P50_MS = 5.0
TARGET_HELD_SESSIONS_RSS_MB = 200.0
# Issue 12: the sandbox may cost at most +20 % on start-up, and nothing measurable per call (run-to-run noise
# of S=1 p50 on this machine class is about 0.1 ms).
TARGET_SANDBOX_STARTUP_EXTRA = 0.20
TARGET_SANDBOX_P50_NOISE_MS = 0.15

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


class BenchFailure(Exception):
    """A measurement that could not be made (a process did not start, a wait ran out)."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll until `predicate` returns something truthy; BenchFailure after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # what is polled may not exist yet
            last_error = exc
        if time.monotonic() >= deadline:
            raise BenchFailure(f"timed out after {timeout:g} s waiting for {what} (last error: {last_error!r})")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def get_json(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> Any:
    with _OPENER.open(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
        return json.loads(response.read())


def _rss(process: psutil.Process) -> int:
    try:
        return int(process.memory_info().rss)
    except psutil.Error:
        return 0


def memory(process: psutil.Process) -> dict[str, float]:
    info = process.memory_full_info()
    return {"rss_mb": round(info.rss / MB, 1), "uss_mb": round(info.uss / MB, 1)}


# --------------------------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Everything the benchmark starts, to be stopped at the end whatever happens."""

    def __init__(self, marker: str) -> None:
        self.marker = marker  # MCP_BENCH_WORKDIR in the environment of every process we start
        self.popens: list[subprocess.Popen[bytes]] = []
        # Per process we started: the pids of its tree we saw (pid -> create_time, so a recycled pid is never
        # killed). Workers and backends live in sessions of their own, out of reach of killpg.
        self.trees: dict[int, dict[int, float]] = {}

    def spawn(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**(os.environ if env is None else env), "MCP_BENCH_WORKDIR": self.marker},
                cwd=str(ROOT),
                start_new_session=True,  # its own process group: killpg reaches what it spawns in it
            )
        self.popens.append(process)
        self.remember(process.pid)
        return process

    def remember(self, root: int) -> None:
        seen = self.trees.setdefault(root, {})
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(root)
            seen[root] = process.create_time()
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    seen[child.pid] = child.create_time()

    def stop(self, process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
        self.remember(process.pid)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"pid {process.pid} did not stop within {grace:g} s: SIGKILL to its group")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        survivors = self.sweep(process.pid)
        if survivors:
            log(f"killed what survived pid {process.pid}: {survivors}")

    def sweep(self, root: int) -> list[int]:
        """SIGKILL whatever of `root`'s tree we saw and still runs."""
        killed = []
        for pid, created in self.trees.get(root, {}).items():
            try:
                process = psutil.Process(pid)
                if process.create_time() != created or process.status() == psutil.STATUS_ZOMBIE:
                    continue
                process.kill()
                killed.append(pid)
            except psutil.Error:
                continue
        return killed

    def stop_all(self) -> None:
        for process in reversed(self.popens):
            with contextlib.suppress(Exception):
                self.stop(process, grace=15.0)


class DirectBackend:
    """The echo backend on its own, over Streamable HTTP or legacy SSE."""

    def __init__(self, procs: Processes, workdir: Path, transport: str, json_response: bool = False) -> None:
        self.transport = transport
        self.port = free_port()
        flag = "--http" if transport == "mcp" else "--sse"
        self.log_path = workdir / f"direct-{transport}.log"
        extra = ["--json-response"] if json_response and transport == "mcp" else []
        self.process = procs.spawn([PYTHON, str(ECHO_SERVER), flag, str(self.port), *extra], self.log_path)
        wait_for(lambda: port_open(self.port) or self.process.poll() is not None, 30, f"the direct {transport} echo")
        if self.process.poll() is not None:
            raise BenchFailure(f"the direct echo server exited:\n{self.log_path.read_text(errors='replace')}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.transport}"

    def processes(self) -> dict[str, psutil.Process]:
        return {"backend": psutil.Process(self.process.pid)}


class Descendants:
    """The backend(s) below a worker, as one process for the sampler: CPU seconds of all of them (a dual-era
    backend serves handshake-era clients through a second process of its own, started on the first such
    session), RSS of the largest. Enough of psutil.Process's interface for PeakSampler."""

    def __init__(self, worker: psutil.Process) -> None:
        self.worker = worker

    def _below(self) -> list[psutil.Process]:
        return [p for p in self.worker.children(recursive=True) if p.name() != "bwrap"]

    def cpu_times(self) -> Any:
        user = system = 0.0
        for process in self._below():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                user, system = user + times.user, system + times.system
        return argparse.Namespace(user=user, system=system)

    def memory_info(self) -> Any:
        return argparse.Namespace(rss=max((_rss(p) for p in self._below()), default=0))


class Supervisor:
    """`mcp-supervisor start` on a fresh config directory of stdio echo backends."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        name: str,
        backends: int,
        extra_tools: int = 0,
        server: Path = ECHO_SERVER,
        env: dict[str, str] | None = None,
        entry: dict[str, Any] | None = None,
    ) -> None:
        self.procs = procs
        self.extra_env = env or {}
        self.config_dir = workdir / name
        self.config_dir.mkdir(parents=True)
        self.keys = ["echo"] if backends == 1 else [f"echo{index:02d}" for index in range(backends)]
        args = [str(server)] + (["--tools", str(extra_tools)] if extra_tools else [])
        servers = {key: {"type": "stdio", "command": PYTHON, "args": args, **(entry or {})} for key in self.keys}
        (self.config_dir / "mcp_server.json").write_text(json.dumps({"mcpServers": servers}, indent=2))
        (self.config_dir / "tool_config.json").write_text(json.dumps({"tools": {}}))
        self.port = free_port()
        self.log_path = self.config_dir / "supervisor.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "MCP_SUPERVISOR_RUNTIME_DIR": str(self.config_dir / "run"),
            "MCP_SUPERVISOR_STATE_DIR": str(self.config_dir / "state"),
        }
        for inherited in ("ALLOWED_KEYS", "ALLOWED_TOKENS", "PORT", "HOST", "MCP_SUPERVISOR_CONFIG_DIR"):
            env.pop(inherited, None)  # not the caller's: a run sets its own (extra_env) or none
        env.update(self.extra_env)
        self.spawned_at = time.perf_counter()
        self.process = self.procs.spawn(
            [SUPERVISOR, "start", "--config-dir", str(self.config_dir), "--port", str(self.port)], self.log_path, env
        )

    def health(self) -> dict[str, Any]:
        # Backend details need a credential when client auth is on (a run that sets ALLOWED_KEYS).
        key = self.extra_env.get("ALLOWED_KEYS", "").split(",")[0].strip()
        headers = {"X-Api-Key": key} if key else {}
        return get_json(f"{self.base}/health/backends", timeout=2.0, headers=headers)  # type: ignore[no-any-return]

    def wait_running(self, timeout: float) -> float:
        """Seconds from spawning the supervisor until every backend is RUNNING and linked."""
        assert self.process is not None
        keys = set(self.keys)

        def all_running() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise BenchFailure(f"the supervisor exited with {self.process.returncode}:\n{self.log_tail()}")
            backends = {item["key"]: item for item in self.health()["backends"]}
            return all(backends.get(k, {}).get("state") == "RUNNING" and backends[k].get("linked") for k in keys)

        try:
            wait_for(all_running, timeout, f"{len(keys)} backend(s) RUNNING and linked", interval=0.01)
        except BenchFailure as exc:
            raise BenchFailure(f"{exc}\n--- supervisor log ---\n{self.log_tail()}") from None
        elapsed = time.perf_counter() - self.spawned_at
        self.procs.remember(self.process.pid)
        return elapsed

    def tree(self) -> dict[str, psutil.Process]:
        """gateway, worker[KEY] and backend[KEY] processes, from /health/backends' pids and the process tree."""
        health = self.health()
        found = {"gateway": psutil.Process(health["gateway"]["pid"])}
        for item in health["backends"]:
            worker = psutil.Process(item["pid"])
            found[f"worker[{item['key']}]"] = worker
            # The backend itself, not the sandbox's processes around it (bubblewrap, its pid namespace's init):
            # the largest of the worker's descendants.
            below = [p for p in worker.children(recursive=True) if p.name() != "bwrap"]
            if below:
                found[f"backend[{item['key']}]"] = max(below, key=_rss)
        assert self.process is not None
        self.procs.remember(self.process.pid)
        return found

    def sessions(self) -> int:
        return int(get_json(f"{self.base}/health")["sessions"])

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None:
            self.procs.stop(self.process)


# --------------------------------------------------------------------------------------------------------------
# Sampling


class PeakSampler(threading.Thread):
    """Samples the RSS of the given processes every `interval` seconds; peak RSS and CPU seconds per label."""

    def __init__(self, processes: dict[str, psutil.Process], interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.processes = processes
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self.cpu_start: dict[str, float] = {}
        self.cpu_end: dict[str, float] = {}
        self.done = threading.Event()

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    def run(self) -> None:
        while True:
            for label, process in self.processes.items():
                with contextlib.suppress(psutil.Error):
                    self.peaks[label] = max(self.peaks.get(label, 0), process.memory_info().rss)
            if self.done.wait(self.interval):
                return

    def __enter__(self) -> PeakSampler:
        for label, process in self.processes.items():
            with contextlib.suppress(psutil.Error):
                self.cpu_start[label] = self._cpu(process)
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self.join(5)
        for label, process in self.processes.items():
            with contextlib.suppress(psutil.Error):
                self.cpu_end[label] = self._cpu(process)

    def result(self) -> dict[str, dict[str, float]]:
        return {
            label: {
                "peak_rss_mb": round(self.peaks.get(label, 0) / MB, 1),
                "cpu_s": round(self.cpu_end.get(label, 0.0) - self.cpu_start.get(label, 0.0), 2),
            }
            for label in self.processes
        }


# --------------------------------------------------------------------------------------------------------------
# Load generator runs (a separate process each: its CPU and memory never mix with the sampler's)


def loadgen(args: list[str], timeout: float) -> dict[str, Any]:
    command = [PYTHON, str(LOADGEN), *args, "--json"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT), start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)
        raise BenchFailure(f"the load generator did not finish within {timeout:g} s: {' '.join(args)}") from None
    if process.returncode != 0:
        raise BenchFailure(f"the load generator failed ({process.returncode}): {err.decode(errors='replace')[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def load_timeout(calls: int, sessions: int) -> float:
    return 120.0 + calls * 0.05 + sessions * 1.0


def measure_load(
    url: str, transport: str, mode: str, sessions: int, calls: int, tool: str, watch: dict[str, psutil.Process]
) -> dict[str, Any]:
    args = ["run", "--url", url, "--transport", transport, "--mode", mode, "-S", str(sessions), "-N", str(calls)]
    with PeakSampler(watch) as sampler:
        result = loadgen([*args, "--tool", tool], load_timeout(calls, sessions))
    result["processes"] = sampler.result()
    for figures in result["processes"].values():  # what an operator pays: CPU seconds per 1000 calls
        figures["cpu_s_per_1k"] = round(figures["cpu_s"] * 1000 / max(1, result["calls"]), 3)
    return result


def hold_idle_sessions(supervisor: Supervisor, mcp_sessions: int, sse_sessions: int, timeout: float) -> dict[str, Any]:
    """Open idle sessions with the raw client in a helper process; measure the gateway while they are held."""
    tree = supervisor.tree()
    gateway = tree["gateway"]
    before = memory(gateway)
    before_sessions = supervisor.sessions()
    command = [
        PYTHON,
        str(LOADGEN),
        "hold",
        "--base",
        supervisor.base,
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


def log_errors(path: Path) -> dict[str, Any]:
    """ERROR/Traceback lines of a log, counted by their text with numbers blanked, with samples."""
    counts: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        if " ERROR " in line or "Traceback" in line or " CRITICAL " in line:
            text = line.split(" ERROR ", 1)[-1] if " ERROR " in line else line
            key = "".join("N" if char.isdigit() else char for char in text)[:200]
            counts[key] = counts.get(key, 0) + 1
    return {"count": sum(counts.values()), "kinds": dict(sorted(counts.items(), key=lambda item: -item[1])[:10])}


def idle_memory(tree: dict[str, psutil.Process]) -> dict[str, dict[str, float]]:
    result = {}
    for label, process in tree.items():
        with contextlib.suppress(psutil.Error):
            result[label] = memory(process)
    return result


# --------------------------------------------------------------------------------------------------------------
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


def run_load_matrix(procs: Processes, workdir: Path, config: argparse.Namespace, results: dict[str, Any]) -> Supervisor:
    """Direct and gateway side by side, each (transport, S, mode) run direct then gateway right after."""
    log("starting the direct echo backends (Streamable HTTP, SSE) and the gateway with one stdio echo backend")
    direct = {t: DirectBackend(procs, workdir, t, config.direct_json_response) for t in config.transports}
    gateway = Supervisor(procs, workdir, "gateway-1", backends=1)
    gateway.start()
    gateway.wait_running(60)
    wait_for(lambda: len(gateway.tree()) == 3, 10, "the gateway's process tree")
    results["idle"]["direct_backend"] = {t: memory(psutil.Process(d.process.pid)) for t, d in direct.items()}
    results["idle"]["gateway_1_backend_fresh"] = idle_memory(gateway.tree())
    tree = gateway.tree()
    gateway_watch = {
        "gateway": tree["gateway"],
        "worker": tree["worker[echo]"],
        "backend": Descendants(tree["worker[echo]"]),
    }
    if any(ERAS[mode] == "handshake" for _, _, mode in load_rows(config)):
        # A dual-era backend serves handshake-era sessions through a second process, started on the first such
        # session: started here, so that its start-up (its SDK's imports) is not in the first row's CPU.
        url = f"{gateway.base}/{config.transports[0]}"
        loadgen(["run", "--url", url, "--mode", "raw", "-N", "2", "--tool", "echo--echo"], 120)

    for transport, sessions, mode in load_rows(config):
        pair: dict[str, Any] = {"transport": transport, "sessions": sessions, "mode": mode, "era": ERAS[mode]}
        runs: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
        for _ in range(config.repeat):  # direct and gateway alternate, so drift hits both alike
            for side in ("direct", "gateway"):
                if side == "direct":
                    url, tool, watch = direct[transport].url, "echo", direct[transport].processes()
                else:
                    url, tool, watch = f"{gateway.base}/{transport}", "echo--echo", gateway_watch
                result = measure_load(url, transport, mode, sessions, config.calls, tool, watch)
                runs[side].append(result)
                latency = result["latency_ms"]
                log(
                    f"{side:>7} /{transport} {mode:>6} S={sessions:<3} p50 {latency['p50']:.2f} ms "
                    f"{result['calls_per_s']:.0f} calls/s errors {result['errors']} "
                    f"mismatches {result['mismatches']}"
                )
                for sample in result["error_samples"]:
                    log(f"    {sample}")
        for side, side_runs in runs.items():
            pair[side] = combine(side_runs)
        pair["ratio"] = ratios(pair["direct"], pair["gateway"])
        results["load"].append(pair)
    for backend in direct.values():
        procs.stop(backend.process)
    results["idle"]["gateway_1_backend_after_load"] = idle_memory(gateway.tree())
    return gateway


# The protocol era each client mode speaks: `raw` and `sdk` open a session with `initialize` (2025-11-25 over /mcp,
# 2024-11-05 over /sse); `modern` is the SDK client pinned to 2026-07-28 (no handshake, no session).
ERAS = {"raw": "handshake", "sdk": "handshake", "modern": "2026-07-28"}
MODERN_MODES = {mode for mode, era in ERAS.items() if era != "handshake"}


def load_rows(config: argparse.Namespace) -> list[tuple[str, int, str]]:
    """(transport, S, client mode) of every load row, in order: the handshake-era rows (every transport x S x mode),
    then the 2026-07-28 rows (over /mcp, at the S values of --modern-sessions)."""
    rows = [
        (transport, sessions, mode)
        for transport in config.transports
        for sessions in config.sessions
        for mode in config.modes
        if mode not in MODERN_MODES
    ]
    if "mcp" in config.transports:
        rows += [
            ("mcp", sessions, mode)
            for mode in config.modes
            if mode in MODERN_MODES
            for sessions in config.modern_sessions
        ]
    return rows


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of repeated runs: medians of the figures, sums of the counts, the peak of the peaks."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    combined = {key: first[key] for key in ("mode", "transport", "url", "sessions")}
    combined["calls"] = sum(run["calls"] for run in runs)
    for key in ("ok", "errors", "mismatches", "sessions_failed", "reconnects"):
        combined[key] = sum(run[key] for run in runs)
    combined["error_samples"] = list(dict.fromkeys(sample for run in runs for sample in run["error_samples"]))[:8]
    for key in ("setup_s", "wall_s", "calls_per_s", "loadgen_cpu_pct"):
        combined[key] = round(statistics.median(run[key] for run in runs), 4)
    combined["latency_ms"] = {
        key: round(statistics.median(run["latency_ms"][key] for run in runs), 3) for key in first["latency_ms"]
    }
    combined["processes"] = {
        label: {
            "peak_rss_mb": max(run["processes"][label]["peak_rss_mb"] for run in runs),
            "cpu_s": round(statistics.median(run["processes"][label]["cpu_s"] for run in runs), 2),
            "cpu_s_per_1k": round(statistics.median(run["processes"][label]["cpu_s_per_1k"] for run in runs), 3),
        }
        for label in first["processes"]
    }
    combined["repeats"] = runs
    return combined


def ratios(direct: dict[str, Any], gateway: dict[str, Any]) -> dict[str, float | None]:
    """Gateway/direct; None where a side made no successful call (it has no latency to compare)."""
    d50, g50 = direct["latency_ms"]["p50"], gateway["latency_ms"]["p50"]
    d_rate, g_rate = direct["calls_per_s"], gateway["calls_per_s"]
    measured = bool(direct["ok"] and gateway["ok"])
    return {
        "p50_ratio": round(g50 / d50, 3) if measured and d50 else None,
        "p50_delta_ms": round(g50 - d50, 3) if measured else None,
        "throughput_ratio": round(g_rate / d_rate, 3) if d_rate else None,
    }


def stdio_handshake() -> bytes:
    """What a client sends a stdio backend to see it serve: initialize, initialized, tools/list."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    messages = (
        initialize,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    )
    return b"".join(json.dumps(message).encode() + b"\n" for message in messages)


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
        listed = loadgen(["list", "--url", url, "-N", str(calls), "--expect-tools", str(expected)], 120 + calls)
        tree = supervisor.tree()
        listed.update(
            {
                "backends": backends,
                "tools_per_backend": 2 + extra,
                "expected_tools": expected,
                "seconds_to_all_running": round(elapsed, 3),
                "idle_gateway": idle_memory({"gateway": tree["gateway"]}).get("gateway"),
            }
        )
        results["tools_list"] = listed
        latency = listed["latency_ms"]
        log(f"tools/list: p50 {latency['p50']:.2f} ms p99 {latency['p99']:.2f} ms, {listed['tools']} tools")
    finally:
        supervisor.stop()


# --------------------------------------------------------------------------------------------------------------
# Report


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []

    def add(name: str, measured: Any, holds: bool | None, detail: str = "") -> None:
        targets.append({"target": name, "measured": measured, "holds": holds, "detail": detail})

    for pair in results["load"]:
        mode, transport, sessions = pair["mode"], pair["transport"], pair["sessions"]
        where = f"/{transport} {mode} client, {pair.get('era', ERAS.get(mode, '?'))} era"
        if sessions == 1 and transport == "mcp":
            delta = pair["ratio"]["p50_delta_ms"]
            gateway = pair["gateway"]
            add(
                f"S=1 p50 <= direct + {TARGET_S1_P50_DELTA_MS} ms ({where})",
                f"{delta:+.2f} ms" if delta is not None else f"no successful call ({gateway['errors']} errors)",
                delta is not None and delta <= TARGET_S1_P50_DELTA_MS,
                f"direct {pair['direct']['latency_ms']['p50']:.2f} ms, gateway {gateway['latency_ms']['p50']:.2f} ms",
            )
        # the throughput target at the largest S of each client mode (64 by default; the eras have their own S lists)
        if sessions == max(r["sessions"] for r in results["load"] if r["mode"] == mode):
            gateway = pair["gateway"]
            ratio = pair["ratio"]["throughput_ratio"]
            clean = gateway["errors"] == 0 and gateway["mismatches"] == 0 and gateway["sessions_failed"] == 0
            add(
                f"S={sessions} calls/s >= {TARGET_S64_THROUGHPUT_RATIO}x direct, 0 errors, all matched ({where})",
                f"{_f(ratio)}x, {gateway['errors']} errors, {gateway['mismatches']} mismatches",
                bool(ratio is not None and ratio >= TARGET_S64_THROUGHPUT_RATIO and clean),
                f"direct {pair['direct']['calls_per_s']:.0f}/s, gateway {gateway['calls_per_s']:.0f}/s",
            )
    idle = results["idle"].get("gateway_1_backend_fresh", {})
    if idle:
        gateway = idle["gateway"]
        add(
            f"idle gateway RSS <= {TARGET_IDLE_GATEWAY_RSS_MB:g} MB (1 backend)",
            f"{gateway['rss_mb']} MB RSS ({gateway['uss_mb']} MB USS)",
            gateway["rss_mb"] <= TARGET_IDLE_GATEWAY_RSS_MB,
        )
    startup = results.get("startup")
    if startup:
        gateway = startup["idle_gateway"]
        add(
            f"idle gateway RSS <= {TARGET_IDLE_GATEWAY_RSS_MB:g} MB ({startup['backends']} backends)",
            f"{gateway['rss_mb']} MB RSS ({gateway['uss_mb']} MB USS)",
            gateway["rss_mb"] <= TARGET_IDLE_GATEWAY_RSS_MB,
        )
        add(
            f"idle worker USS <= {TARGET_IDLE_WORKER_USS_MB:g} MB (max of {startup['backends']})",
            f"{startup['idle_worker_max_uss_mb']} MB USS (RSS {startup['idle_worker_max_rss_mb']} MB)",
            startup["idle_worker_max_uss_mb"] <= TARGET_IDLE_WORKER_USS_MB,
        )
        add(
            f"{startup['backends']} backends RUNNING <= {TARGET_STARTUP_S:g} s",
            f"{startup['seconds_to_all_running']:.2f} s",
            startup["seconds_to_all_running"] <= TARGET_STARTUP_S,
        )
    cost = results.get("sandbox_cost")
    if cost:
        add(
            f"sandbox start-up of {cost['backends']} lean backends <= +{TARGET_SANDBOX_STARTUP_EXTRA:.0%}",
            f"{cost['startup_ratio']:.2f}x ({cost['auto']['startup_s']:.2f} s vs {cost['off']['startup_s']:.2f} s off)",
            cost["startup_ratio"] <= 1 + TARGET_SANDBOX_STARTUP_EXTRA,
        )
        add(
            f"sandbox S=1 p50 cost <= {TARGET_SANDBOX_P50_NOISE_MS} ms (no measurable cost per call)",
            f"{cost['p50_delta_ms']:+.2f} ms",
            abs(cost["p50_delta_ms"]) <= TARGET_SANDBOX_P50_NOISE_MS,
            f"off {cost['off']['p50_ms']:.2f} ms, auto {cost['auto']['p50_ms']:.2f} ms; method {cost['methods_seen']}",
        )
    listed = results.get("tools_list")
    if listed:
        add(
            f"tools/list with {listed['expected_tools']} tools p50 <= {TARGET_TOOLS_LIST_P50_MS:g} ms",
            f"{listed['latency_ms']['p50']:.2f} ms",
            listed["latency_ms"]["p50"] <= TARGET_TOOLS_LIST_P50_MS and listed["errors"] == 0,
        )
    held = results.get("held_sessions")
    if held:
        total = held["opened"]["held_mcp"] + held["opened"]["held_sse"]
        add(
            f"{total} idle client sessions with gateway RSS < {TARGET_HELD_SESSIONS_RSS_MB:g} MB",
            f"{held['gateway_held']['rss_mb']} MB RSS",
            held["gateway_held"]["rss_mb"] < TARGET_HELD_SESSIONS_RSS_MB and held["opened"]["failed"] == 0,
            f"before {held['gateway_before']['rss_mb']} MB, after release {held['gateway_after_release']['rss_mb']} MB",
        )
    import auth_cost
    import hop_cost
    import scale

    targets.extend(auth_cost.targets(results))
    targets.extend(hop_cost.targets(results))
    targets.extend(scale.targets(results))
    return targets


def report(results: dict[str, Any]) -> str:
    lines: list[str] = []
    m = results["machine"]
    lines.append(
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, mcp {m['packages'].get('mcp', '?')}; load average at start "
        f"{m['load_average_at_start']}, at end {m.get('load_average_at_end')}"
    )
    cfg = results["config"]
    lines.append(
        f"Load: N={cfg['calls']} echo calls per run, spread over S sessions; p50/p90/p99 in ms"
        + (f"; medians of {cfg['repeat']} runs, direct and gateway alternating" if cfg.get("repeat", 1) > 1 else "")
    )
    lines.append(
        "Ratios are gateway/direct: 'p50 x' = gateway p50 / direct p50, 'p50 +ms' = the absolute difference, "
        "'calls/s x' = gateway calls/s / direct calls/s"
    )
    lines.append(
        "Clients: raw and sdk speak the handshake era (initialize, then Mcp-Session-Id); modern is the SDK client "
        'pinned to 2026-07-28 (Client(url, mode="2026-07-28"): no handshake, no session)'
    )
    lines.append("")
    header = (
        f"{'transport':<9} {'client':<6} {'S':>3} | {'direct p50/p90/p99':>20} {'calls/s':>7} | "
        f"{'gateway p50/p90/p99':>20} {'calls/s':>7} | {'p50 x':>6} {'p50 +ms':>7} {'calls/s x':>9} | "
        f"{'err/mism d':>10} {'err/mism g':>10} | {'peak RSS MB: direct be | gw / worker / be':>38} | "
        f"{'CPU-s/1000 calls: direct be | gw / worker / be':>46}"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for pair in results["load"]:
        d, g, r = pair["direct"], pair["gateway"], pair["ratio"]
        dl, gl = d["latency_ms"], g["latency_ms"]
        dp, gp = d["processes"], g["processes"]
        lines.append(
            f"{'/' + pair['transport']:<9} {pair['mode']:<6} {pair['sessions']:>3} | "
            f"{dl['p50']:>6.2f}/{dl['p90']:>6.2f}/{dl['p99']:>6.1f} {d['calls_per_s']:>7.0f} | "
            f"{gl['p50']:>6.2f}/{gl['p90']:>6.2f}/{gl['p99']:>6.1f} {g['calls_per_s']:>7.0f} | "
            f"{_f(r['p50_ratio']):>6} {_delta(r['p50_delta_ms']):>7} {_f(r['throughput_ratio']):>9} | "
            f"{d['errors']:>4}/{d['mismatches']:<5} {g['errors']:>4}/{g['mismatches']:<5} | "
            f"{dp['backend']['peak_rss_mb']:>9.1f} | {gp['gateway']['peak_rss_mb']:>6.1f} / "
            f"{gp['worker']['peak_rss_mb']:>5.1f} / {gp['backend']['peak_rss_mb']:>5.1f} | "
            f"{dp['backend']['cpu_s_per_1k']:>18.3f} | {gp['gateway']['cpu_s_per_1k']:>5.3f} / "
            f"{gp['worker']['cpu_s_per_1k']:>6.3f} / {gp['backend']['cpu_s_per_1k']:>5.3f}"
        )
    failed_rows = [
        (side, pair)
        for pair in results["load"]
        for side in ("direct", "gateway")
        if pair[side]["errors"] or pair[side]["mismatches"] or pair[side]["sessions_failed"]
    ]
    if failed_rows:
        lines.append("")
        lines.append(
            "Rows with failed calls (counted as errors above; a side without a successful call has no latency):"
        )
        for side, pair in failed_rows:
            run = pair[side]
            first = run["error_samples"][0] if run["error_samples"] else "no sample"
            lines.append(
                f"  {side} /{pair['transport']} {pair['mode']} S={pair['sessions']}: {run['errors']} errors and "
                f"{run['mismatches']} mismatches of {run['calls']} calls, {run['sessions_failed']} of "
                f"{run['sessions'] * len(run.get('repeats') or [run])} sessions failed; first: {first}"
            )
    lines.append("")
    lines.append("Load generator CPU (% of one core, direct / gateway), and CPU seconds of the gateway's processes:")
    for pair in results["load"]:
        gp = pair["gateway"]["processes"]
        lines.append(
            f"  /{pair['transport']} {pair['mode']:<6} S={pair['sessions']:<3} loadgen "
            f"{pair['direct']['loadgen_cpu_pct']:>4.0f}% / {pair['gateway']['loadgen_cpu_pct']:>4.0f}%   "
            f"CPU s: direct backend {pair['direct']['processes']['backend']['cpu_s']:.2f} | gateway "
            f"{gp['gateway']['cpu_s']:.2f}, worker {gp['worker']['cpu_s']:.2f}, backend {gp['backend']['cpu_s']:.2f}"
        )
    raw_vs_sdk = results.get("raw_vs_sdk_direct")
    if raw_vs_sdk:
        lines.append("")
        lines.append("Raw client vs SDK client, direct (calls/s raw / sdk = speed-up; p50 raw vs sdk):")
        for row in raw_vs_sdk:
            lines.append(
                f"  /{row['transport']} S={row['sessions']:<3} {row['raw_calls_per_s']:.0f} / "
                f"{row['sdk_calls_per_s']:.0f} = {row['speedup']:.2f}x; p50 {row['raw_p50_ms']:.2f} vs "
                f"{row['sdk_p50_ms']:.2f} ms"
            )
    lines.append("")
    lines.append("Idle memory (RSS / USS MB):")
    for name, section in results["idle"].items():
        parts = ", ".join(f"{label} {value['rss_mb']}/{value['uss_mb']}" for label, value in section.items())
        lines.append(f"  {name}: {parts}")
    startup = results.get("startup")
    if startup:
        lines.append(
            f"Start-up: {startup['backends']} stdio backends RUNNING+linked in "
            f"{startup['seconds_to_all_running']:.2f} s (bare backends without the supervisor: 1 in "
            f"{startup['bare_backends_seconds']['1']:.2f} s, {startup['backends']} in "
            f"{startup['bare_backends_seconds'][str(startup['backends'])]:.2f} s);"
            f" idle gateway {startup['idle_gateway']['rss_mb']} MB RSS / {startup['idle_gateway']['uss_mb']} MB USS;"
            f" workers max {startup['idle_worker_max_rss_mb']} MB RSS / {startup['idle_worker_max_uss_mb']} MB USS;"
            f" supervisor {startup['idle_supervisor']['rss_mb']} MB RSS; backends max"
            f" {startup['idle_backend_max_rss_mb']} MB RSS"
        )
        lean = startup.get("lean_backend")
        if lean:
            lines.append(
                f"Start-up with a lean stdio backend (no SDK, {LEAN_SERVER.name}): {startup['backends']} RUNNING+linked"
                f" in {lean['seconds_to_all_running']:.2f} s ({startup['backends']} bare lean backends:"
                f" {lean['bare_backends_seconds']:.2f} s): the supervisor's, gateway's and workers' own start-up"
            )
    cost = results.get("sandbox_cost")
    if cost:
        lines.append(
            f"Sandbox ({', '.join(cost['methods_seen'])}) vs SANDBOX=off: {cost['backends']} lean backends RUNNING in "
            f"{cost['auto']['startup_s']:.2f} vs {cost['off']['startup_s']:.2f} s ({cost['startup_ratio']:.2f}x); "
            f"S=1 /mcp raw p50 {cost['auto']['p50_ms']:.2f} vs {cost['off']['p50_ms']:.2f} ms "
            f"({cost['p50_delta_ms']:+.2f} ms)"
        )
    listed = results.get("tools_list")
    if listed:
        latency = listed["latency_ms"]
        lines.append(
            f"tools/list: {listed['backends']} backends x {listed['tools_per_backend']} tools = "
            f"{'/'.join(str(count) for count in listed['tools'])} tools "
            f"in {listed['pages']} page(s), {listed['ok']} calls: p50 {latency['p50']:.2f} / p90 {latency['p90']:.2f} "
            f"/ p99 {latency['p99']:.2f} ms, errors {listed['errors']}, mismatches {listed['mismatches']}; "
            f"{listed['backends']} backends RUNNING in {listed['seconds_to_all_running']:.2f} s; "
            f"gateway idle {listed['idle_gateway']['rss_mb']} MB RSS"
        )
    held = results.get("held_sessions")
    if held:
        opened = held["opened"]
        lines.append(
            f"Idle client sessions: {opened['held_mcp']} /mcp + {opened['held_sse']} /sse held "
            f"({opened['failed']} failed, opened in {opened['open_s']:.1f} s; gateway counted "
            f"{held['gateway_sessions_counted']}): gateway RSS {held['gateway_before']['rss_mb']} -> "
            f"{held['gateway_held']['rss_mb']} MB (USS {held['gateway_held']['uss_mb']} MB), "
            f"{held['per_session_kb']} KB/session; after release {held['gateway_after_release']['rss_mb']} MB"
        )
    lines.append("")
    lines.append("Targets (issue 7; the 2026-07-28 rows: issue 13):")
    for target in results["targets"]:
        verdict = {True: "HOLDS", False: "MISSED", None: "n/a"}[target["holds"]]
        detail = f"  [{target['detail']}]" if target["detail"] else ""
        lines.append(f"  {verdict:<6} {target['target']}: {target['measured']}{detail}")
    logged = {name: found for name, found in results.get("log_errors", {}).items() if found["count"]}
    if logged:
        lines.append("")
        lines.append("ERROR lines in the logs (product side; numbers blanked):")
        for name, found in logged.items():
            for text, count in found["kinds"].items():
                lines.append(f"  {name}: {count} x {text}")
    import auth_cost
    import peers
    import scale

    lines.extend(auth_cost.report(results))
    lines.extend(peers.report(results))
    lines.extend(scale.report(results))
    if results["failures"]:
        lines.append("")
        lines.append("FAILURES:")
        lines.extend(f"  {failure}" for failure in results["failures"])
    return "\n".join(lines)


def raw_vs_sdk(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    by_key = {(p["transport"], p["sessions"], p["mode"]): p for p in results["load"]}
    for (transport, sessions, mode), pair in by_key.items():
        if mode != "raw" or (transport, sessions, "sdk") not in by_key:
            continue
        raw, sdk = pair["direct"], by_key[(transport, sessions, "sdk")]["direct"]
        rows.append(
            {
                "transport": transport,
                "sessions": sessions,
                "raw_calls_per_s": raw["calls_per_s"],
                "sdk_calls_per_s": sdk["calls_per_s"],
                "speedup": round(raw["calls_per_s"] / sdk["calls_per_s"], 2) if sdk["calls_per_s"] else 0.0,
                "raw_p50_ms": raw["latency_ms"]["p50"],
                "sdk_p50_ms": sdk["latency_ms"]["p50"],
            }
        )
    return rows


def correctness_failures(results: dict[str, Any]) -> list[str]:
    failures = []
    for pair in results["load"]:
        for side in ("direct", "gateway"):
            run = pair[side]
            if run["errors"] or run["mismatches"] or run["sessions_failed"]:
                failures.append(
                    f"{side} /{pair['transport']} {pair['mode']} S={pair['sessions']}: {run['errors']} errors, "
                    f"{run['mismatches']} mismatches, {run['sessions_failed']} sessions failed; "
                    f"{run['error_samples'][:3]}"
                )
    listed = results.get("tools_list")
    if listed and (listed["errors"] or listed["mismatches"]):
        failures.append(f"tools/list: {listed['errors']} errors, {listed['mismatches']} mismatches")
    held = results.get("held_sessions")
    if held and held["opened"]["failed"]:
        failures.append(
            f"idle sessions: {held['opened']['failed']} failed to open: {held['opened']['failure_samples']}"
        )
    return failures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-N", "--calls", type=int, default=2000, help="echo calls per load run (default 2000)")
    parser.add_argument("--quick", action="store_true", help="N=200, 50 tools/list calls, 100+100 idle sessions")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per (transport, S, client), direct and gateway alternating; medians"
    )
    parser.add_argument("--sessions", default="1,16,64", help="comma-separated S values (default 1,16,64)")
    parser.add_argument(
        "--modes",
        default="raw,sdk,modern",
        help="client modes: raw, sdk (handshake era, every transport and S), modern (the SDK client pinned to "
        "2026-07-28, /mcp only, at --modern-sessions); default all three",
    )
    parser.add_argument(
        "--modern-sessions", default="1,64", help="S values of the modern (2026-07-28) rows (default 1,64)"
    )
    parser.add_argument("--transports", default="mcp,sse", help="mcp, sse (default both)")
    parser.add_argument("--startup-backends", type=int, default=20)
    parser.add_argument("--list-backends", type=int, default=50)
    parser.add_argument("--list-tools", type=int, default=20, help="tools per backend (echo, sleep + trivial ones)")
    parser.add_argument("--list-calls", type=int, default=200)
    parser.add_argument("--idle-mcp", type=int, default=500, help="idle /mcp sessions to hold")
    parser.add_argument("--idle-sse", type=int, default=500, help="idle /sse streams to hold")
    parser.add_argument(
        "--direct-json-response",
        action="store_true",
        help="the direct Streamable HTTP backend answers plain JSON (SDK json_response) instead of SSE-framed",
    )
    parser.add_argument("--results-dir", default=str(BENCH / "results"))
    parser.add_argument("--work-dir", help="config directories and logs (default: a temporary directory, removed)")
    parser.add_argument("--scale-sizes", default="20,100", help="scale section: lean backend counts (default 20,100)")
    parser.add_argument("--scale-repeat", type=int, default=2, help="scale runs per size, bare and ours alternating")
    parser.add_argument("--scale-idle-seconds", type=float, default=20.0, help="idle CPU window (default 20 s)")
    parser.add_argument("--scale-max", type=int, default=500, help="lean backends measured once (0: skip)")
    parser.add_argument("--scale-list-max", type=int, default=100, help="tools/list + reload up to this many")
    parser.add_argument(
        "--peers",
        default="fastmcp,mcp-proxy,contextforge",
        help="peer gateways measured beside this one (bench/peers.py; each installed from PyPI into a scratch venv)",
    )
    parser.add_argument("--peers-dir", default=None, help="where the peers' scratch venvs live (bench/peers.py)")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated: load, peers, startup, sandbox, auth, tools-list, idle-sessions, scale",
    )
    config = parser.parse_args(argv)
    if config.quick:
        config.calls = min(config.calls, 200)
        config.list_calls = min(config.list_calls, 50)
        config.idle_mcp = min(config.idle_mcp, 100)
        config.idle_sse = min(config.idle_sse, 100)
        config.scale_sizes, config.scale_repeat, config.scale_max = "20,100", 1, 0
        config.scale_idle_seconds = min(config.scale_idle_seconds, 10.0)
    config.sessions = [int(value) for value in config.sessions.split(",") if value]
    config.modes = [value for value in config.modes.split(",") if value]
    unknown = sorted(set(config.modes) - set(ERAS))
    if unknown:
        parser.error(f"unknown client modes {unknown}: choose from {sorted(ERAS)}")
    config.modern_sessions = [int(value) for value in config.modern_sessions.split(",") if value]
    config.transports = [value for value in config.transports.split(",") if value]
    config.skip = {value for value in config.skip.split(",") if value}
    return config


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    started = time.time()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results_dir = Path(config.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # the gateway inherits it: 1000 idle sessions are 1000+ sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results: dict[str, Any] = {
        "timestamp": stamp,
        "machine": machine(),
        "config": {
            "calls": config.calls,
            "repeat": config.repeat,
            "sessions": config.sessions,
            "modes": config.modes,
            "modern_sessions": config.modern_sessions,
            "transports": config.transports,
            "startup_backends": config.startup_backends,
            "list_backends": config.list_backends,
            "list_tools_per_backend": config.list_tools,
            "list_calls": config.list_calls,
            "idle_sessions": {"mcp": config.idle_mcp, "sse": config.idle_sse},
            "direct_backend": "bench/echo_server.py --http / --sse"
            + (" (--json-response)" if config.direct_json_response else " (SDK default: SSE-framed answers)"),
            "gateway_backend": "bench/echo_server.py over stdio behind one worker",
        },
        "load": [],
        "idle": {},
        "failures": [],
        "log_errors": {},
    }
    own_workdir = config.work_dir is None
    workdir = Path(tempfile.mkdtemp(prefix="mcp-bench-")) if own_workdir else Path(config.work_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Processes(str(workdir))
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if "load" not in config.skip:
            gateway = run_load_matrix(procs, workdir, config, results)
            if "idle-sessions" not in config.skip:
                log(f"holding {config.idle_mcp} /mcp + {config.idle_sse} /sse idle sessions on the gateway")
                results["held_sessions"] = hold_idle_sessions(gateway, config.idle_mcp, config.idle_sse, 120.0)
            gateway.stop()
        if "peers" not in config.skip:
            import peers

            config.peers_dir = config.peers_dir or str(peers.DEFAULT_DIR)
            peers.run_peers(sys.modules[__name__], procs, workdir, config, results)
        if "load" in config.skip and "idle-sessions" not in config.skip:
            gateway = Supervisor(procs, workdir, "gateway-1", backends=1)
            gateway.start()
            gateway.wait_running(60)
            results["idle"]["gateway_1_backend_fresh"] = idle_memory(gateway.tree())
            results["held_sessions"] = hold_idle_sessions(gateway, config.idle_mcp, config.idle_sse, 120.0)
            gateway.stop()
        if "startup" not in config.skip:
            run_startup(procs, workdir, config.startup_backends, results)
        if "sandbox" not in config.skip:
            run_sandbox_cost(procs, workdir, config, results)
        if "auth" not in config.skip:
            import auth_cost

            auth_cost.run_auth_cost(sys.modules[__name__], procs, workdir, config, results)
        if "tools-list" not in config.skip:
            run_tools_list(procs, workdir, config.list_backends, config.list_tools, config.list_calls, results)
        if "scale" not in config.skip:
            import scale

            scale.run_scale(sys.modules[__name__], procs, workdir, config, results)
    except Exception as exc:
        detail = str(exc) if isinstance(exc, BenchFailure) else traceback.format_exc()
        results["failures"].append(f"measurement failed: {detail}")
        log(f"FAILED: {detail}")
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous_handler)
        logs_dir = results_dir / f"{stamp}-logs"
        with contextlib.suppress(OSError):
            for path in [*workdir.glob("*/supervisor.log"), *workdir.glob("direct-*.log"), *workdir.glob("peer-*.log")]:
                logs_dir.mkdir(exist_ok=True)
                shutil.copy(path, logs_dir / "__".join(path.relative_to(workdir).parts))
                results["log_errors"][path.parent.name if path.name == "supervisor.log" else path.stem] = log_errors(
                    path
                )
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    results["raw_vs_sdk_direct"] = raw_vs_sdk(results)
    results["failures"].extend(correctness_failures(results))
    results["targets"] = evaluate_targets(results)
    results["duration_s"] = round(time.time() - started, 1)
    results["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    out = results_dir / f"{stamp}.json"
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    print(f"\nJSON: {out} (took {results['duration_s']:.0f} s; supervisor logs in {results_dir / (stamp + '-logs')})")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
