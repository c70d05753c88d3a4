"""The CLI as an operator meets it: check-config's account of overrides, --help, status (table, pipe, JSON),
logs from another directory. Real `mcp-supervisor` processes; a supervisor where a command needs one."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, SUPERVISOR_CMD, write_config

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
