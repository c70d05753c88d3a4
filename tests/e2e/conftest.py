"""Fixtures that start the real `mcp-supervisor start` and real backends as subprocesses.

Every process a test starts is stopped at teardown, and the supervisor's whole tree is checked to be gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psutil
import pytest

from tests.helpers import free_port, port_open, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_SERVER = ROOT / "tests" / "fixtures" / "echo_server.py"
BIN = Path(sys.executable).parent
SUPERVISOR_CMD = str(BIN / "mcp-supervisor")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def stdio_fixture_entry(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "stdio", "command": sys.executable, "args": [str(FIXTURE_SERVER), "--name", name], **extra}


@dataclass
class RunningSupervisor:
    config_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    seen_pids: set[int] = field(default_factory=set)
    # Sent with /health/backends and /metrics: they need a credential whenever client auth is configured (the
    # first of ALLOWED_KEYS, else of ALLOWED_TOKENS). A test whose clients.json narrows that key's view sets its own.
    credential: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def backends(self) -> dict[str, dict[str, Any]]:
        response = httpx2.get(f"{self.base}/health/backends", headers=self.credential, timeout=5)
        response.raise_for_status()
        return {item["key"]: item for item in response.json()["backends"]}

    def status_entries(self) -> dict[str, dict[str, Any]]:
        """The backends as `mcp-supervisor status --json` shows them (the supervisor's own view, live)."""
        done = subprocess.run(
            [SUPERVISOR_CMD, "status", "--json", "--config-dir", str(self.config_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return {entry["key"]: entry for entry in json.loads(done.stdout)["backends"]}

    def wait_linked(self, keys: set[str], timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        def linked() -> dict[str, dict[str, Any]] | None:
            current = self.backends()
            ok = all(current.get(k, {}).get("linked") and current[k]["state"] == "RUNNING" for k in keys)
            return current if ok else None

        try:
            return wait_until(linked, timeout, what=f"backends {sorted(keys)} RUNNING")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- supervisor log ---\n{self.log_tail()}") from None

    def tree(self) -> list[psutil.Process]:
        try:
            procs = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        self.seen_pids.update(p.pid for p in procs)
        return procs

    def titles(self) -> list[str]:
        titles = []
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                titles.append(" ".join(part for part in proc.cmdline() if part))  # setproctitle pads
        return titles

    def stop(self, timeout: float = 20.0) -> int:
        self.tree()  # remember every pid, to check afterwards that none survived
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"supervisor did not stop within {timeout} s\n{self.log_tail()}") from None


def alive(pids: set[int]) -> list[int]:
    result = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                result.append(pid)
        except psutil.NoSuchProcess:
            pass
    return result


def write_config(config_dir: Path, servers: dict[str, Any], tools: dict[str, Any] | None = None) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "mcp_server.json").write_text(json.dumps({"mcpServers": servers}, indent=2))
    (config_dir / "tool_config.json").write_text(json.dumps({"tools": tools or {}}, indent=2))


def probe_credential(env: dict[str, str]) -> dict[str, str]:
    """The headers that authenticate the test's own probes to a gateway started with `env`."""
    keys = [key.strip() for key in env.get("ALLOWED_KEYS", "").split(",") if key.strip()]
    if keys:
        return {"X-Api-Key": keys[0]}
    tokens = [token.strip() for token in env.get("ALLOWED_TOKENS", "").split(",") if token.strip()]
    return {"Authorization": f"Bearer {tokens[0]}"} if tokens else {}


def start_supervisor(
    config_dir: Path, env: dict[str, str] | None = None, port: int = 0, cwd: Path = ROOT
) -> RunningSupervisor:
    port = port or free_port()
    log_path = config_dir / "supervisor.log"
    # Backends' state dirs (their HOMEs) next to the test's config dir, not in the machine's ~/.local/state.
    state_dir = str(config_dir.parent / f"{config_dir.name}-state")
    full_env = {**os.environ, "LOGGING": "info", "MCP_SUPERVISOR_STATE_DIR": state_dir, **(env or {})}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [SUPERVISOR_CMD, "start", "--config-dir", str(config_dir), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(cwd),
        )
    running = RunningSupervisor(config_dir, port, process, log_path, credential=probe_credential(full_env))
    try:
        wait_until(lambda: port_open(port) or process.poll() is not None, 30, what="gateway port")
    except AssertionError:
        running.stop()
        raise
    if process.poll() is not None:
        raise AssertionError(f"supervisor exited with {process.returncode}\n{running.log_tail()}")
    return running


@pytest.fixture
def supervisor_factory() -> Iterator[Any]:
    """Start supervisors on demand; at teardown stop them and check that no process of their trees survived."""
    started: list[RunningSupervisor] = []

    def factory(
        config_dir: Path, env: dict[str, str] | None = None, port: int = 0, cwd: Path = ROOT
    ) -> RunningSupervisor:
        running = start_supervisor(config_dir, env, port, cwd)
        started.append(running)
        return running

    yield factory
    survivors: list[int] = []
    for running in started:
        running.stop()
        try:
            wait_until(lambda r=running: not alive(r.seen_pids), 10, what="the process tree to be gone")
        except AssertionError:
            left = alive(running.seen_pids)
            survivors.extend(left)
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert not survivors, f"processes survived the supervisor's stop: {survivors}"


def _start_network_backend(mode: str, name: str, key: str) -> Iterator[tuple[int, str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(FIXTURE_SERVER), f"--{mode}", str(port), "--name", name, "--require-key", key],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open(port), 30, what=f"the {mode} fixture backend")
        yield port, key
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def http_backend() -> Iterator[tuple[int, str]]:
    """The SDK fixture server over Streamable HTTP, requiring a credential (to prove outbound apiKey)."""
    yield from _start_network_backend("http", "remote", "backend-secret")


@pytest.fixture(scope="module")
def sse_backend() -> Iterator[tuple[int, str]]:
    """The SDK fixture server over legacy HTTP+SSE, requiring a credential (to prove outbound bearerToken)."""
    yield from _start_network_backend("sse", "legacy", "sse-token")


CONFORMANCE_SERVER = ROOT / "tests" / "fixtures" / "conformance_server.py"


@pytest.fixture
def conformance_gateway(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    """The gateway in front of the conformance fixture backend, unprefixed: a backend with subscriptions,
    logging levels and progress, for tests of state a shared backend holds for many sessions."""
    config_dir = tmp_path / "config"
    # Handshake era: its tools ask the client with server->client requests and it announces resource updates on
    # its session, neither of which the 2026-07-28 era has.
    entry = {
        "type": "stdio",
        "command": sys.executable,
        "args": [str(CONFORMANCE_SERVER)],
        "namePrefix": "",
        "protocol": "legacy",
    }
    write_config(config_dir, {"conformance": entry})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"conformance"})
    return sup
