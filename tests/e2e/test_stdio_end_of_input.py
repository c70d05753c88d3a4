"""The stdio client closes its input: every request it sent still gets its answer, as from a server run directly
(the SDK's stdio server lets its in-flight handlers finish after end of input, then exits).

`mcp-supervisor stdio < requests.jsonl` is the plainest case: the input ends at once, while the calls it holds
are still running. The front end gave what was in flight 5 s and then went away, and a call that took longer (or
an `initialize` still in the start-up wait, 10 s by default) was never answered."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SUPERVISOR_CMD, stdio_fixture_entry, write_config

pytestmark = pytest.mark.e2e

INITIALIZE = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "script", "version": "1"}}


def run_stdio_script(
    tmp_path: Path,
    servers: dict[str, Any],
    lines: list[dict[str, Any]],
    env: dict[str, str],
    stdin: str | None = None,
) -> tuple[subprocess.CompletedProcess[bytes], dict[Any, dict[str, Any]]]:
    """`mcp-supervisor stdio < requests.jsonl` (or < `stdin`) to its end: the finished run and its replies by id."""
    config_dir = tmp_path / "config"
    write_config(config_dir, servers)
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(line) + "\n" for line in lines))
    full_env = {**os.environ, "MCP_SUPERVISOR_STATE_DIR": str(tmp_path / "state"), **env}
    with open(stdin or requests, "rb") as source:
        done = subprocess.run(
            [SUPERVISOR_CMD, "stdio", "--config-dir", str(config_dir)],
            stdin=source,
            capture_output=True,
            env=full_env,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done, {reply["id"]: reply for reply in map(json.loads, done.stdout.splitlines()) if "id" in reply}


def run_stdio(tmp_path: Path, lines: list[dict[str, Any]], env: dict[str, str]) -> dict[Any, dict[str, Any]]:
    return run_stdio_script(tmp_path, {"local": stdio_fixture_entry("local", startTimeout=120)}, lines, env)[1]


def test_calls_in_flight_at_the_end_of_input_are_answered(tmp_path: Path) -> None:
    call = {"name": "local--slow", "arguments": {"seconds": 7}}
    lines: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call},
        {"jsonrpc": "2.0", "id": 3, "method": "ping"},
    ]
    # The start-up wait covers the backend's start on a loaded machine; the call then sleeps 7 s.
    replies = run_stdio(tmp_path, lines, {"STARTUP_WAIT_SECONDS": "60"})
    assert sorted(replies, key=str) == [1, 2, 3], replies
    assert "slept 7" in json.dumps(replies[2].get("result")), replies[2]


def test_a_call_past_the_request_timeout_gets_the_timeout_error(tmp_path: Path) -> None:
    """Bounded: the front end waits for a request no longer than the gateway's own request timeout, whose error
    is then the answer."""
    call = {"name": "local--slow", "arguments": {"seconds": 60}}
    lines: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call},
    ]
    replies = run_stdio(tmp_path, lines, {"STARTUP_WAIT_SECONDS": "60", "REQUEST_TIMEOUT_SECONDS": "8"})
    assert sorted(replies, key=str) == [1, 2], replies
    assert "error" in replies[2] or replies[2]["result"].get("isError") is True, replies[2]
