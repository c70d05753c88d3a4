"""The sandbox's outer stage run by the worker in the backend's forked child (`stdio_connection.spawn`) instead of
the exec'd launcher: the same steps take effect, a failing step executes nothing, and a process with more than
one thread execs the launcher as before.

Each case runs `spawn` in a fresh interpreter (the test runner itself may have threads), with real processes, on
each event loop (MCP_SUPERVISOR_EVENT_LOOP): uvloop runs a `preexec_fn` before libuv sets up the child.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from mcp_supervisor.system.probe import probe_host
from mcp_supervisor.system.sandbox import SandboxPolicy, plan_sandbox

HOST = probe_host()
RUNNER = textwrap.dedent(
    """
    import asyncio, json, sys, threading
    from mcp_supervisor import event_loop
    from mcp_supervisor.protocol.spawn import Launch
    from mcp_supervisor.worker.stdio_connection import single_threaded, spawn

    async def main():
        launch = Launch(**json.loads(sys.argv[1]))
        if sys.argv[2] == "threaded":  # a thread that outlives the spawn, as ZeroMQ's I/O threads would
            threading.Thread(target=threading.Event().wait, daemon=True).start()
        print(json.dumps({"single": single_threaded()}), flush=True)
        try:
            process = await spawn(launch)
        except Exception as exc:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
            return
        process.stdin.close()
        out = await asyncio.wait_for(process.stdout.read(), 20)
        print(json.dumps({"code": await process.wait(), "out": out.decode()}), flush=True)

    event_loop.run(main(), sys.argv[3])
    """
)


LOOP = "asyncio"  # set per test by the fixture below


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def _on_each_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "LOOP", request.param)


def run_spawn(launch: dict[str, object], threaded: bool = False) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(launch), "threaded" if threaded else "single", LOOP],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0] == {"single": not threaded}, done.stderr
    return {**lines[1], "stderr": done.stderr}


def launcher_argv(stage: list[str], program: list[str]) -> list[str]:
    return [HOST.python, "-I", "-S", HOST.launcher, *stage, "--", *program]


def test_the_stage_runs_in_the_child_and_the_launcher_is_not_executed() -> None:
    stage = ["--rlimit", "RLIMIT_NOFILE=77:77"]
    program = ["/bin/sh", "-c", "ulimit -n"]
    # argv says 66: it is what a process that cannot run the stage itself executes (the launcher's way).
    launch = {"argv": launcher_argv(["--rlimit", "RLIMIT_NOFILE=66:66"], program), "env": {}}
    in_child = run_spawn({**launch, "stage": stage, "program": program})
    assert in_child["code"] == 0 and in_child["out"] == "77\n"
    by_launcher = run_spawn({**launch, "stage": stage, "program": program}, threaded=True)
    assert by_launcher["code"] == 0 and by_launcher["out"] == "66\n"
    no_stage = run_spawn(launch)  # a launch planned without a stage: argv as it is
    assert no_stage["out"] == "66\n"


def test_a_failing_step_executes_nothing_and_says_why(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    program = ["/bin/sh", "-c", f"touch {marker}"]
    stage = ["--cgroup", str(tmp_path / "no-such-cgroup" / "cgroup.procs"), "--rlimit", "RLIMIT_CORE=0:0"]
    result = run_spawn({"argv": launcher_argv(stage, program), "env": {}, "stage": stage, "program": program})
    assert "could not join the cgroup" in str(result["error"]) and "BackendError" in str(result["error"])
    assert not marker.exists()


@pytest.mark.skipif(HOST.bwrap is None or HOST.landlock_abi < 6, reason="needs bubblewrap and Landlock ABI 6")
def test_a_planned_bubblewrap_sandbox_gets_its_landlock_scope_in_the_child(tmp_path: Path) -> None:
    """The plan for a backend sharing the host's network (no slirp4netns): bubblewrap, plus the Landlock scope the
    outer stage applies. The host's abstract unix socket must stay out of reach, as with the launcher."""
    name = f"mcp-supervisor-test-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(1)
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        f"try:\n    s.connect('\\0{name}')\n    print('connected')\n"
        "except OSError as exc:\n    print('refused', exc.errno)\n"
        "print(open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0])\n"
    )
    state = tmp_path / "state"
    state.mkdir()
    plan = plan_sandbox(
        sys.executable,
        ["-c", probe],
        None,
        {"PATH": os.environ["PATH"]},
        SandboxPolicy(),
        "auto",
        dataclasses.replace(HOST, slirp4netns="", slirp_problem="left out by the test"),
        state_dir=str(state),
        hidden_paths=[],
    )
    assert plan.method == "bwrap" and plan.stage is not None and plan.stage.scope
    launch = {"argv": plan.argv, "env": plan.env, "cwd": plan.cwd, "stage": plan.stage.to_args()}
    try:
        in_child = run_spawn({**launch, "program": plan.program})
        unsandboxed = run_spawn({"argv": [sys.executable, "-c", probe], "env": {}})
    finally:
        listener.close()
    assert unsandboxed["out"].split() == ["connected", "0"]  # type: ignore[union-attr]
    assert in_child["out"].split()[0] == "refused" and in_child["out"].split()[-1] == "1", in_child  # type: ignore[union-attr]
