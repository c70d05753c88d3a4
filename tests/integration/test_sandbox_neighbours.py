"""Other backends' files, for real, under both methods: bubblewrap (mounts) and Landlock alone (rules).

A backend granted an /opt-like tree must not read what is granted there to another backend, except its own
grant inside it; the planner is given the neighbour's grants as the supervisor gives them (`backend_grants`).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mcp_supervisor.system.probe import HostCapabilities
from mcp_supervisor.system.sandbox import SandboxPolicy, backend_grants, plan_sandbox, probe_host

HOST = probe_host()
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
BWRAP = HOST.bwrap is not None
LANDLOCK_ONLY = dataclasses.replace(HOST, bwrap=None, bwrap_problem="bwrap disabled for this test")
METHODS = [
    pytest.param(HOST, "bwrap", marks=pytest.mark.skipif(not BWRAP, reason="bubblewrap cannot run here")),
    pytest.param(LANDLOCK_ONLY, "landlock", marks=pytest.mark.skipif(HOST.landlock_abi < 1, reason="no Landlock here")),
]
READER = """
    import sys
    for path in sys.argv[1:]:
        try:
            print(path, "READ", open(path).read().strip())
        except OSError as exc:
            print(path, "DENIED", type(exc).__name__)
"""


@pytest.mark.parametrize(("host", "method"), METHODS)
def test_neighbours_files_are_unreadable_own_grant_inside_them_is(
    tmp_path: Path, host: HostCapabilities, method: str
) -> None:
    opt = tmp_path / "opt"
    (opt / "other").mkdir(parents=True)
    (opt / "other" / "server.py").write_text("print()\n")
    (opt / "other" / ".env").write_text("GITHUB_TOKEN=neighbour")
    (opt / "shared").mkdir()
    (opt / "shared" / "theirs.txt").write_text("THEIRS")
    (opt / "shared" / "mine.txt").write_text("MINE")
    (opt / "public.txt").write_text("PUBLIC")
    state = tmp_path / "state"
    state.mkdir()
    theirs = backend_grants(
        PY,
        [str(opt / "other" / "server.py")],
        None,
        "/usr/bin",
        SandboxPolicy(read_paths=(str(opt / "shared"),)),
        str(tmp_path / "other-state"),
    )
    targets = [opt / "other" / ".env", opt / "shared" / "theirs.txt", opt / "shared" / "mine.txt", opt / "public.txt"]
    plan = plan_sandbox(
        PY,
        ["-c", textwrap.dedent(READER), *map(str, targets)],
        None,
        {"PATH": "/usr/bin:/bin"},
        # No network: plain subprocess runs this plan, and a namespace of its own is wired by a worker (netns.py).
        SandboxPolicy(read_paths=(str(opt), str(opt / "shared" / "mine.txt")), network=False),
        "auto",
        host,
        state_dir=str(state),
        hidden_paths=[],
        neighbours=theirs,
    )
    assert plan.method == method
    done = subprocess.run(plan.argv, env=plan.env, cwd=plan.cwd, capture_output=True, text=True, timeout=60)
    seen = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert done.returncode == 0, done.stderr
    assert seen[str(opt / "public.txt")] == "READ PUBLIC"
    assert seen[str(opt / "shared" / "mine.txt")] == "READ MINE"
    assert seen[str(opt / "other" / ".env")].startswith("DENIED"), seen
    assert seen[str(opt / "shared" / "theirs.txt")].startswith("DENIED"), seen
