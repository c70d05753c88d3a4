"""The bench's processes (direct backends, the supervisor under test), waits, memory samples, and the load
generator run as a child (`loadgen.py`). Handed to auth_cost.py and scale.py as their harness.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
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
SUPERVISOR = str(Path(sys.executable).parent / "mcp-supervisor")  # run.py's --supervisor may replace it
MB = 1024 * 1024
T = TypeVar("T")

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
        except BenchFailure:
            raise  # the predicate's own verdict (e.g. the supervisor exited): waiting longer cannot change it
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


def rss(process: psutil.Process) -> int:
    try:
        return int(process.memory_info().rss)
    except psutil.Error:
        return 0


def memory(process: psutil.Process) -> dict[str, float]:
    info = process.memory_full_info()
    return {"rss_mb": round(info.rss / MB, 1), "uss_mb": round(info.uss / MB, 1)}


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
                # Beside its log, not in this checkout: a build measured with --supervisor that predates `-P` puts
                # its working directory on sys.path and would import this checkout's package.
                cwd=str(log_path.parent),
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
            # The backend itself, not the sandbox's bubblewrap processes around it.
            # The backend itself, not the sandbox's processes around it (bubblewrap, its pid namespace's init):
            # the largest of the worker's descendants.
            below = [p for p in worker.children(recursive=True) if p.name() != "bwrap"]
            if below:
                found[f"backend[{item['key']}]"] = max(below, key=rss)
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


def idle_memory(tree: dict[str, psutil.Process]) -> dict[str, dict[str, float]]:
    result = {}
    for label, process in tree.items():
        with contextlib.suppress(psutil.Error):
            result[label] = memory(process)
    return result


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
