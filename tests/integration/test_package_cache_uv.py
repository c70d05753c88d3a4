"""A uvx backend from the shared package cache, against PyPI: the sandboxed installer fetches once, then the
backend runs with its network off from its own copy (uv cannot use a read-only cache: it takes a lock in it).

`pycowsay` is a 5 kB wheel with no dependencies and a console script; uvx is the one `make` installs."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import msgspec
import pytest

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.config.settings import load_settings
from mcp_supervisor.supervisor.backend_launch import BackendLauncher, stdio_environment
from mcp_supervisor.supervisor.package_cache import PackageCache
from mcp_supervisor.supervisor.package_specs import recognise
from mcp_supervisor.system import run_planned
from mcp_supervisor.system.sandbox_policy import SandboxPolicy

ROOT = Path(__file__).resolve().parents[2]
UVX = ROOT / ".tools" / "uv" / "bin" / "uvx"
SPEC = "pycowsay==0.0.0.2"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run(argv: list[str], env: dict[str, str], timeout_s: float, cwd: str | None = None) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    return process.returncode, output.decode(errors="replace")


@pytest.mark.anyio
async def test_a_uvx_backend_runs_offline_from_its_copy_of_the_shared_cache(tmp_path: Path) -> None:
    if not UVX.exists():
        pytest.fail(f"{UVX} is missing: run `make .venv/.synced` first.", pytrace=False)
    settings = load_settings({"MCP_SUPERVISOR_STATE_DIR": str(tmp_path / "state")}, tmp_path / "config")
    (tmp_path / "config").mkdir()
    launcher = BackendLauncher(settings, tmp_path / "run", tmp_path / "logs", None)
    online = ServerEntry(key="cow", type="stdio", command=str(UVX), args=[SPEC, "moo"])
    offline = msgspec.structs.replace(online, sandbox=SandboxPolicy(network=False))
    request = recognise(online, stdio_environment(online))
    assert request is not None and request.tool == "uv" and request.pinned

    async def install(argv: list[str], env: dict[str, str], home: Path) -> tuple[int | None, str]:
        plan = launcher.plan_installer(online, {"cow": online}, argv, env, home)
        assert plan.method != "none"  # the installer is sandboxed
        # As the supervisor runs it (package_step.py): a network of its own is wired by run_planned.
        argv = run_planned.command(plan.argv, plan.network) if plan.network is not None else plan.argv
        return await run(argv, plan.env, 120.0, plan.cwd)

    cache = PackageCache(settings.state_dir, run, 120.0)
    env = await cache.prepare(request, launcher.state_dir(online), install, None)
    assert env["UV_OFFLINE"] == "1" and env["UV_CACHE_DIR"] == str(settings.state_dir / "cow" / ".uv-cache")

    launch, _, plan = launcher.plan(offline, 1, {"cow": offline}, env)
    code, output = await run(list(launch.argv), dict(launch.env), 60.0, launch.cwd)
    assert code == 0 and "< moo >" in output, output
    assert plan.method == "bwrap" and "network" in plan.enforced  # it really had no network
