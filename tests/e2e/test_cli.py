"""The CLI as an operator meets it: check-config's account of overrides, --help, status (table, pipe, JSON),
logs from another directory. Real `mcp-supervisor` processes; a supervisor where a command needs one."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, SUPERVISOR_CMD, RunningSupervisor, stdio_fixture_entry, write_config

pytestmark = pytest.mark.e2e


def cli(*args: str, cwd: Path = ROOT, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.run([SUPERVISOR_CMD, *args], cwd=cwd, text=True, timeout=60, check=False, **streams)


def test_check_config_says_whether_a_display_name_renames_or_becomes_the_title(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    tools = {
        "time--get_current_time": {"displayName": "My Custom Tool Name"},  # mcp-proxy-server's own README example
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
    assert "no clients.json (everyone sees everything)" in lines[0], done.stdout


def test_check_config_validates_clients_json(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"time": {"command": "mcp-server-time"}})
    clients = config_dir / "clients.json"
    clients.write_text(json.dumps({"clients": {"desktop": {"match": {"stdio": True}}, "*": {"servers": []}}}))
    done = cli("check-config", "--config-dir", str(config_dir))
    assert done.returncode == 0 and "2 client profile(s)" in done.stdout, done.stdout + done.stderr
    clients.write_text(json.dumps({"clients": {"desktop": {"match": {"stdio": True, "keys": ["k"]}}}}))
    refused = cli("check-config", "--config-dir", str(config_dir))
    assert refused.returncode != 0 and "cannot be combined" in refused.stderr, refused.stdout + refused.stderr


def test_check_config_refuses_a_command_that_does_not_resolve(tmp_path: Path) -> None:
    """Issue 23: a typo in a command passed check-config and showed only at run time, through bubblewrap."""
    config_dir = tmp_path / "config"
    env = {**os.environ, "MCP_SUPERVISOR_STATE_DIR": str(tmp_path / "state")}
    servers = {"time": {"command": "mcp-server-tiem"}, "off": {"command": "not-installed", "active": False}}
    write_config(config_dir, servers)
    done = cli("check-config", "--config-dir", str(config_dir), env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Server 'time': the command 'mcp-server-tiem' is not found on the backend's PATH" in done.stderr, done.stderr
    assert "not-installed" not in done.stderr and "OK." not in done.stdout, done.stdout + done.stderr
    # A script inside the config dir, which the sandbox hides from every backend, would not start either.
    script = config_dir / "server.sh"
    script.write_text("#!/bin/sh\nexec true\n")
    script.chmod(0o755)
    write_config(config_dir, {"local": {"command": str(script)}})
    hidden = cli("check-config", "--config-dir", str(config_dir), env=env)
    assert hidden.returncode == 2 and "which the sandbox hides" in hidden.stderr, hidden.stdout + hidden.stderr
    # The same command spelt right (found on PATH, or next to mcp-supervisor in its venv) is OK.
    write_config(config_dir, {"time": {"command": "mcp-server-time"}})
    fixed = cli("check-config", "--config-dir", str(config_dir), env=env)
    assert fixed.returncode == 0 and "OK." in fixed.stdout, fixed.stdout + fixed.stderr


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


def test_help_lists_only_the_public_commands() -> None:
    done = cli("--help")
    assert done.returncode == 0, done.stderr
    assert "==SUPPRESS==" not in done.stdout, done.stdout
    listed = re.findall(r"^ {4}(\S+)", done.stdout, re.MULTILINE)
    assert "gateway" not in listed and "worker" not in listed and "{" not in done.stdout, done.stdout
    assert "check-config" in done.stdout and "status" in done.stdout, done.stdout


@pytest.fixture
def running(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local"), "other": stdio_fixture_entry("other")})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"local", "other"})
    return sup


def test_status_into_a_closed_pipe_ends_without_a_traceback(running: RunningSupervisor) -> None:
    """`status | head -3`: the reader is gone before status writes; a closed pipe from the start is that case
    without the race of head exiting early enough."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = cli("status", "--config-dir", str(running.config_dir), stdout=write_end)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr


# The documented schema of `status --json` (README, "status --json"): every field, always.
STATUS_FIELDS = {
    "schema",
    "config_dir",
    "config_error",
    "worker_spawn",
    "gateway",
    "backends",
    "catalog_problems",
    "tool_pinning",
}
ENTRY_FIELDS = {
    "key", "type", "state", "generation", "pid", "started_at", "uptime_seconds", "restarts", "last_exit",
    "last_error", "last_stderr", "rss_bytes", "cpu_percent", "fds", "processes", "in_flight", "refused_replies",
    "next_attempt_at", "start_method", "era", "protocol_version", "sandbox", "detail",
}  # fmt: skip
SANDBOX_FIELDS = {"mode", "method", "enforced", "not_enforced", "exposure", "exposure_factors", "measures"}


def test_status_json_has_the_documented_schema_with_every_field(running: RunningSupervisor) -> None:
    done = cli("status", "--json", "--config-dir", str(running.config_dir))
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert set(document) == STATUS_FIELDS, document
    assert document["schema"] == 1 and document["config_error"] is None, document
    assert document["config_dir"] == str(running.config_dir.resolve()), document
    assert set(document["gateway"]) == ENTRY_FIELDS, document["gateway"]
    assert [entry["key"] for entry in document["backends"]] == ["local", "other"], document
    for entry in document["backends"]:
        assert set(entry) == ENTRY_FIELDS, entry
        assert entry["state"] == "RUNNING" and entry["restarts"] == 0 and entry["refused_replies"] == 0, entry
        assert entry["sandbox"] is None or set(entry["sandbox"]) == SANDBOX_FIELDS, entry
        if entry["sandbox"] is not None:  # the score is the sum of its factors' points, 0 (confined) .. 10
            sandbox = entry["sandbox"]
            assert 0 <= sandbox["exposure"] <= 10, sandbox
            assert abs(sum(sandbox["exposure_factors"].values()) - sandbox["exposure"]) < 0.1, sandbox
        # The SDK fixture backend serves both eras: its worker speaks 2026-07-28 to it.
        assert (entry["era"], entry["protocol_version"]) == ("modern", "2026-07-28"), entry
    assert (document["gateway"]["era"], document["gateway"]["protocol_version"]) == (None, None), document


def test_logs_from_another_directory_says_no_supervisor_runs_for_it(running: RunningSupervisor, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = cli("logs", "local", cwd=elsewhere)
    assert done.returncode != 0
    assert f"no supervisor is running for {elsewhere / 'config'}" in done.stderr, done.stderr
    # With the right directory, the log is there.
    shown = cli("logs", "local", "--config-dir", str(running.config_dir), cwd=elsewhere)
    assert shown.returncode == 0 and shown.stdout.strip(), shown.stderr


def test_status_without_flags_finds_what_make_run_started(tmp_path: Path, supervisor_factory: Any) -> None:
    """Issue 23: `make run` serves .run/config, so `status` from the checkout said "No supervisor is running"."""
    config_dir = tmp_path / ".run" / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"local"})
    done = cli("status", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^local\s+stdio\s+RUNNING", done.stdout, re.MULTILINE), done.stdout
    assert "using the supervisor of .run/config" in done.stderr, done.stderr
    assert cli("logs", "local", cwd=tmp_path).returncode == 0
    # A supervisor serving ./config itself comes first, as before; so does an explicit --config-dir.
    write_config(tmp_path / "config", {"own": stdio_fixture_entry("own")})
    supervisor_factory(tmp_path / "config").wait_linked({"own"})
    own = cli("status", cwd=tmp_path)
    assert re.search(r"^own\s", own.stdout, re.MULTILINE) and "using" not in own.stderr, own.stdout + own.stderr
