"""The CLI as an operator meets it: check-config's account of overrides, --help, status (table, pipe, JSON),
logs from another directory. Real `mcp-supervisor` processes; a supervisor where a command needs one."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, SUPERVISOR_CMD, stdio_fixture_entry, write_config

pytestmark = pytest.mark.e2e


def cli(*args: str, cwd: Path = ROOT, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SUPERVISOR_CMD, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False, **kwargs
    )


def test_check_config_says_whether_a_display_name_renames_or_becomes_the_title(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    tools = {
        "time--get_current_time": {"displayName": "My Custom Tool Name"},  # the seed README's own example
        "time--convert_time": {"exposedName": "convert"},
    }
    write_config(config_dir, {"time": {"command": "mcp-server-time"}}, tools)
    done = cli("check-config", "--config-dir", str(config_dir))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    title = next(line for line in lines if "time--get_current_time" in line)
    assert "'My Custom Tool Name'" in title and "becomes the tool's title" in title, done.stdout
    assert "the name stays 'time--get_current_time'" in title, done.stdout
    renamed = next(line for line in lines if "time--convert_time" in line)
    assert "exposed as 'convert' (renamed)" in renamed, done.stdout


def test_start_on_a_port_in_use_exits_at_once_with_code_2_and_says_so(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = cli(
            "start",
            "--config-dir",
            str(config_dir),
            "--port",
            str(port),
            env={**os.environ, "MCP_SUPERVISOR_STATE_DIR": str(tmp_path / "state")},
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr, done.stderr[-3000:]
    assert "Restarting gateway" not in done.stderr, done.stderr[-3000:]
    assert elapsed < 10, f"took {elapsed:.1f} s"
