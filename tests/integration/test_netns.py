"""A planned sandbox with its own network, started with `netns.exec_planned` (as install commands and anything
else but the worker start a plan), on this host's real bubblewrap and slirp4netns."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import msgspec
import psutil
import pytest

from mcp_supervisor.errors import BackendError
from mcp_supervisor.system.netns import exec_planned
from mcp_supervisor.system.probe import probe_host
from mcp_supervisor.system.sandbox import plan_sandbox
from mcp_supervisor.system.sandbox_policy import NetworkPolicy, SandboxPolicy

HOST = probe_host()
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(HOST.bwrap is None or not HOST.slirp4netns, reason=HOST.slirp_problem or HOST.bwrap_problem),
]
PROBE = (
    "import socket, sys\n"
    "print(open('/etc/resolv.conf').read().split()[1])\n"
    "for port in sys.argv[1:]:\n"
    "    try:\n"
    "        socket.create_connection(('127.0.0.1', int(port)), timeout=3).close(); print('connected')\n"
    "    except OSError as exc:\n"
    "        print('refused', exc.errno)\n"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run_planned(tmp_path: Path, policy: SandboxPolicy, *ports: int) -> list[str]:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    plan = plan_sandbox(
        sys.executable, ["-c", PROBE, *map(str, ports)], None, dict(os.environ), policy, "auto", HOST,
        state_dir=str(state), hidden_paths=[],
    )  # fmt: skip
    process, network = await exec_planned(
        plan.argv, plan.network, env=plan.env, cwd=plan.cwd, stdout=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if network is not None:
            network.close()
    return out.decode().split("\n")


async def test_own_network_names_slirps_dns_and_refuses_the_hosts_loopback(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        lines = await run_planned(tmp_path, SandboxPolicy(), port)
        named = await run_planned(tmp_path, SandboxPolicy(network=NetworkPolicy(host_ports=(port,))), port)
    assert lines[0] == "10.0.2.3" and lines[1].startswith("refused"), lines
    assert named[1] == "connected", named


async def test_a_failed_wiring_kills_bwrap_and_says_why(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    plan = plan_sandbox(
        "/bin/true", [], None, dict(os.environ), SandboxPolicy(), "auto", HOST, state_dir=str(state), hidden_paths=[]
    )
    assert plan.network is not None
    broken = msgspec.structs.replace(plan.network, slirp4netns=str(tmp_path / "no-slirp4netns"))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(BackendError, match="network namespace could not be set up"):
        await exec_planned(plan.argv, broken, env=plan.env, cwd=plan.cwd, stdin=asyncio.subprocess.PIPE)
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()]
    assert not [p for p in left if p.status() != psutil.STATUS_ZOMBIE], left
