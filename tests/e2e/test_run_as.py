"""Issue 22: `"sandbox": {"runAs": ...}` in mcp_server.json drops a backend to another uid (the launcher's step,
once only reachable from code). As root a backend owns every root-owned file it can see; runAs makes the mode
bits count again. A runAs that cannot be honoured stops that backend with the reason, never runs it as root.

The backend is the system's python3 running a copy of the tiny fixture under /tmp: the uid it drops to must be
able to read what it runs (a checkout in a 0700 directory is not).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from mcp_supervisor.system.probe import probe_host
from tests.e2e.conftest import ROOT, SUPERVISOR_CMD, write_config
from tests.helpers import backend_pids, wait_until

HOST = probe_host()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.geteuid() != 0 or HOST.bwrap is None or not HOST.bwrap.userns or not os.path.exists("/usr/bin/python3"),
        reason="needs root, bubblewrap with user namespaces, and /usr/bin/python3",
    ),
]


@pytest.fixture
def public_copy() -> Iterator[Path]:
    """The tiny fixture server where uid 65534 can read it."""
    base = Path(f"/tmp/run-as-{uuid.uuid4().hex[:8]}")
    base.mkdir(mode=0o755)
    try:
        shutil.copy(ROOT / "tests" / "fixtures" / "tiny_server.py", base / "tiny_server.py")
        os.chmod(base / "tiny_server.py", 0o644)
        yield base / "tiny_server.py"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_run_as_from_the_config_drops_the_backend_to_that_uid(
    tmp_path: Path, supervisor_factory: Any, public_copy: Path
) -> None:
    def entry(run_as: str) -> dict[str, Any]:
        return {"command": "/usr/bin/python3", "args": [str(public_copy)], "sandbox": {"runAs": run_as}}

    config_dir = tmp_path / "config"
    write_config(config_dir, {"dropped": entry("65534:65534"), "unknown": entry("no-such-user-here")})
    # Its HOME must be reachable by it: a state dir under pytest's 0700 tmp is not (that backend would be FATAL).
    state = public_copy.parent / "state"
    state.mkdir()
    sup = supervisor_factory(config_dir, {"MCP_SUPERVISOR_STATE_DIR": str(state)})
    backends = sup.wait_linked({"dropped"})
    worker = backends["dropped"]["pid"]
    pids = wait_until(lambda: backend_pids(worker), 10, what="the backend's processes")
    uids = {psutil.Process(pid).uids().real for pid in pids}
    assert uids == {65534}, uids
    done = subprocess.run(
        [SUPERVISOR_CMD, "status", "--json", "--config-dir", str(config_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    status = {entry["key"]: entry for entry in json.loads(done.stdout)["backends"]}
    privileges = status["dropped"]["sandbox"]["enforced"]["privileges"]
    assert "runs as uid 65534" in privileges, status["dropped"]["sandbox"]
    assert "uid 0" not in status["dropped"]["sandbox"]["not_enforced"].get("privileges", ""), status["dropped"]
    unknown = wait_until(lambda: (b := sup.backends()["unknown"])["state"] == "FATAL" and b, 20, what="FATAL")
    assert "names no user 'no-such-user-here'" in (unknown.get("last_error") or ""), unknown
    assert (state / "dropped").stat().st_uid == 65534  # its HOME is its own
