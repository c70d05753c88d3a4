"""InstallManager and its routes: real `/bin/sh` commands, events on a real EventHub, a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psutil
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_supervisor.admin.events import AdminEvent, EventHub
from mcp_supervisor.admin.install_routes import install_routes
from mcp_supervisor.admin.install_sandbox import InstallSandbox
from mcp_supervisor.admin.installs import InstallConflict, InstallError, InstallManager
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.system.sandbox import probe_host
from tests.helpers import async_wait_until
from tests.integration.serving import serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Rig:
    installs: InstallManager
    tools: Path
    events: list[AdminEvent] = field(default_factory=list)
    finished: list[tuple[str, int]] = field(default_factory=list)

    def of(self, key: str, name: str | None = None) -> list[AdminEvent]:
        return [(n, d) for n, d in self.events if d.get("serverKey") == key and (name is None or n == name)]

    async def completed(self, key: str, timeout: float = 15) -> dict[str, Any]:
        events = await async_wait_until(lambda: self.of(key, "install_complete"), timeout, what=f"{key} to finish")
        return events[0][1]


@asynccontextmanager
async def rig(
    tmp_path: Path, withheld: frozenset[str] = frozenset(), sandbox: InstallSandbox | None = None
) -> AsyncIterator[Rig]:
    """An InstallManager; unsandboxed unless `sandbox` is given (tests/e2e/test_install_sandbox.py covers the
    sandbox against a real tree)."""
    hub = EventHub()
    tools = tmp_path / "tools"
    tools.mkdir()
    result = Rig(InstallManager(hub, tools, withheld=lambda: withheld, sandbox=sandbox), tools)
    result.installs.on_finished = lambda key, code: result.finished.append((key, code))

    async def collect() -> None:
        async for event in hub.subscribe():
            result.events.append(event)

    collector = asyncio.create_task(collect())
    await async_wait_until(lambda: hub.subscribers == 1, 5, what="the event collector")
    try:
        yield result
    finally:
        await result.installs.close()
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector


def stdio(*commands: str, **extra: Any) -> dict[str, Any]:
    return {"command": "tool-server", "installCommands": list(commands), **extra}


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def test_two_commands_stream_their_lines_in_order(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        commands = ("printf 'one\\ntwo\\n'; pwd", "echo three; echo oops >&2; mkdir alpha")
        message = r.installs.start("alpha", stdio(*commands))
        assert "alpha" in message
        done = await r.completed("alpha")
        assert done == {"serverKey": "alpha", "message": "install finished", "exitCode": 0}
        stdout = [d["output"] for _, d in r.of("alpha", "install_stdout")]
        assert stdout == ["one", "two", str(r.tools.resolve()), "three"]  # in order; cwd = the target's parent
        assert [d["output"] for _, d in r.of("alpha", "install_stderr")] == ["oops"]
        infos = [d["message"] for _, d in r.of("alpha", "install_info")]
        assert infos == ["Running: printf 'one\\ntwo\\n'; pwd", "Running: echo three; echo oops >&2; mkdir alpha"]
        names = [n for n, _ in r.of("alpha")]
        assert names.index("install_info") < names.index("install_stdout") and names[-1] == "install_complete"
        assert "install_error" not in names
        assert (r.tools / "alpha").is_dir()
        assert r.finished == [("alpha", 0)]
        [listed] = r.installs.list()
        assert listed["serverKey"] == "alpha" and listed["running"] is False and listed["exitCode"] == 0
        assert listed["output"][:2] == ["one", "two"] and listed["finishedAt"] >= listed["startedAt"]


async def test_first_failure_stops_the_install_and_keeps_its_exit_code(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.installs.start("beta", stdio("echo first; exit 3", "touch second-ran"))
        done = await r.completed("beta")
        assert done["exitCode"] == 3
        [(_, error)] = r.of("beta", "install_error")
        assert error["code"] == 3 and "exit 3" in error["error"]
        assert not (r.tools / "second-ran").exists()
        assert len(r.of("beta", "install_info")) == 1
        assert r.finished == [("beta", 3)]
        assert r.installs.list()[0]["exitCode"] == 3


async def test_existing_target_is_skipped(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        (r.tools / "gamma").mkdir()
        message = r.installs.start("gamma", stdio("touch ran"))
        assert "already installed" in message
        done = await r.completed("gamma")
        assert done == {"serverKey": "gamma", "message": "already installed", "exitCode": 0}
        assert [n for n, _ in r.of("gamma")] == ["install_info", "install_complete"]
        assert not (r.tools / "ran").exists()


async def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.installs.start("delta", stdio('echo "sh=$$"; sleep 30 & echo "sleep=$!"; wait'))

        def pids() -> dict[str, int]:
            lines = [d["output"] for _, d in r.of("delta", "install_stdout")]
            return {k: int(v) for k, v in (line.split("=") for line in lines)} if len(lines) == 2 else {}

        started = await async_wait_until(pids, 10, what="the install's pids")
        assert psutil.Process(started["sleep"]).is_running()
        assert r.installs.list()[0]["running"] is True
        # Two cancels at once (a double click): one kill, one cancelled error, both report success.
        assert list(await asyncio.gather(r.installs.cancel("delta"), r.installs.cancel("delta"))) == [True, True]
        assert gone(started["sh"])
        await async_wait_until(lambda: gone(started["sleep"]), 5, what="the sleep to be killed")
        [(_, error)] = r.of("delta", "install_error")
        assert error["code"] == "cancelled"
        done = await r.completed("delta")
        assert done["exitCode"] != 0
        assert r.installs.list()[0]["running"] is False
        assert await r.installs.cancel("delta") is False  # nothing runs any more


async def test_paths_outside_the_tools_folder_are_rejected(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        outside = tmp_path / "outside"
        outside.mkdir()
        (r.tools / "escape").symlink_to(outside)
        with pytest.raises(InstallError, match=re.escape("../../etc")):
            r.installs.start("../../etc", stdio("true"))
        for directory in ("../outside/x", str(outside / "x"), "escape/x", "escape", ".", "/etc"):
            with pytest.raises(InstallError, match="not inside the tools folder"):
                r.installs.target_dir("key", {"installDirectory": directory})
        with pytest.raises(InstallError, match="not inside the tools folder"):
            r.installs.start("escape", stdio("true"))  # <tools>/<key> is itself a symlink that escapes
        assert r.installs.target_dir("k", {"installDirectory": "sub/dir"}) == (r.tools / "sub" / "dir").resolve()
        assert r.installs.target_dir("k", {}) == (r.tools / "k").resolve()
        assert r.events == [] and r.installs.list() == []


async def test_conflicts_and_invalid_entries(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with pytest.raises(InstallError, match="not a stdio server"):
            r.installs.start("remote", {"url": "http://example.invalid/mcp", "installCommands": ["true"]})
        with pytest.raises(InstallError, match="installCommands"):
            r.installs.start("bare", {"command": "x"})
        r.installs.start("slow", stdio("sleep 30"))
        with pytest.raises(InstallConflict, match="already running"):
            r.installs.start("slow", stdio("sleep 30"))
        assert await r.installs.cancel("slow") is True
        assert (await r.completed("slow"))["exitCode"] != 0
        r.installs.start("instant", stdio("touch never"))
        assert await r.installs.cancel("instant") is True  # before the install's first step
        assert (await r.completed("instant"))["exitCode"] != 0
        assert [n for n, _ in r.of("instant")] == ["install_error", "install_complete"]
        assert not (r.tools / "never").exists() and r.installs.list()[-1]["running"] is False


async def test_routes(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        entries = {"web": stdio("sleep 30"), "remote": {"url": "http://example.invalid/sse"}}
        app = Starlette(routes=[Mount("/admin", routes=install_routes(r.installs, entries.get))])
        async with serving(app) as base, httpx2.AsyncClient(base_url=f"{base}/admin", timeout=10) as client:
            missing = await client.post("/server/install/nope")
            assert missing.status_code == 404 and "nope" in missing.json()["error"]
            assert (await client.post("/server/install/remote")).status_code == 400
            started = await client.post("/server/install/web")
            assert started.status_code == 202 and started.json()["success"] is True
            again = await client.post("/server/install/web")
            assert again.status_code == 409 and "already running" in again.json()["error"]
            listed = (await client.get("/installs")).json()["installs"]
            assert [(i["serverKey"], i["running"]) for i in listed] == [("web", True)]
            cancelled = await client.post("/server/install/web/cancel")
            assert cancelled.status_code == 200 and cancelled.json()["success"] is True
            assert (await client.post("/server/install/web/cancel")).status_code == 409
            assert (await client.get("/installs")).json()["installs"][0]["running"] is False
        assert (await r.completed("web"))["exitCode"] != 0


async def test_install_commands_inherit_no_secret_of_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install commands are third-party code: neither the gateway's secrets nor a remote backend's OAuth
    client secret (the variable its `oauth.clientSecretEnv` names) reach them."""
    monkeypatch.setenv("ALLOWED_KEYS", "gateway-key")
    monkeypatch.setenv("DOCS_CLIENT_SECRET", "oauth-secret")
    monkeypatch.setenv("HARMLESS", "shared")
    async with rig(tmp_path, withheld=frozenset({"DOCS_CLIENT_SECRET"})) as r:
        r.installs.start("envcheck", stdio('echo "${ALLOWED_KEYS:-none} ${DOCS_CLIENT_SECRET:-none} $HARMLESS"'))
        await r.completed("envcheck")
        assert [d["output"] for _, d in r.of("envcheck", "install_stdout")] == ["none none shared"]


needs_bwrap = pytest.mark.skipif(probe_host().bwrap is None, reason="bubblewrap cannot run here")


@needs_bwrap
async def test_sandboxed_install_streams_and_cancel_kills_its_namespace(tmp_path: Path) -> None:
    """Under bubblewrap: output streams as unsandboxed, the commands see the target's parent as their cwd, and a
    cancel kills everything in the sandbox and drops the staging directory."""
    settings = Settings(config_dir=tmp_path / "config", state_dir=tmp_path / "state", tools_folder=tmp_path / "tools")
    sandbox = InstallSandbox(settings, tmp_path / "runtime", tmp_path / "logs", dict)
    async with rig(tmp_path, sandbox=sandbox) as r:
        r.installs.start("first", stdio("pwd; echo one; echo two >&2; mkdir first; echo made > first/file"))
        assert (await r.completed("first"))["exitCode"] == 0
        assert [d["output"] for _, d in r.of("first", "install_stdout")] == [str(r.tools.resolve()), "one"]
        assert [d["output"] for _, d in r.of("first", "install_stderr")] == ["two"]
        assert any("Sandbox: bwrap" in d["message"] for _, d in r.of("first", "install_info"))
        assert (r.tools / "first" / "file").read_text() == "made\n"
        r.installs.start("forever", stdio("echo started; sleep 300 & wait"))
        await async_wait_until(lambda: r.of("forever", "install_stdout"), 15, what="the install to start")
        sandboxed = [p for p in psutil.Process().children(recursive=True) if "bwrap" in p.name()]
        assert sandboxed, "no bubblewrap process runs the install"
        inside = {q.pid for p in sandboxed for q in p.children(recursive=True)}
        assert await r.installs.cancel("forever") is True
        await async_wait_until(lambda: all(gone(pid) for pid in inside | {p.pid for p in sandboxed}), 10, what="gone")
        assert sorted(p.name for p in r.tools.iterdir()) == ["first"]  # no staging, no target left behind


@pytest.mark.skipif(probe_host().landlock_abi < 1, reason="Landlock is not available on this kernel")
async def test_landlock_only_install_writes_its_target_only_and_a_failure_removes_it(tmp_path: Path) -> None:
    # Outside /tmp: without a mount namespace, /tmp is the host's and stays writable (docs/sandbox.md).
    base = Path(tempfile.mkdtemp(prefix="installs-", dir="/var/tmp"))
    settings = Settings(config_dir=base / "config", state_dir=base / "state", tools_folder=base / "tools")
    sandbox = InstallSandbox(settings, base / "runtime", base / "logs", dict)
    sandbox._launcher.host = dataclasses.replace(probe_host(), bwrap=None, bwrap_problem="disabled for this test")
    try:
        await _landlock_installs(base, sandbox, settings)
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def _landlock_installs(base: Path, sandbox: InstallSandbox, settings: Settings) -> None:
    async with rig(base, sandbox=sandbox) as r:
        # The target exists (empty) before the commands run: `mkdir -p` and `git clone URL <key>` work in it.
        r.installs.start("lone", stdio("echo x > lone/file; echo y > sibling.txt || echo refused; echo $HOME"))
        assert (await r.completed("lone"))["exitCode"] == 0
        out = [d["output"] for _, d in r.of("lone", "install_stdout")]
        assert out == ["refused", str(settings.state_dir / "lone")], out
        assert (r.tools / "lone" / "file").read_text() == "x\n" and not (r.tools / "sibling.txt").exists()
        r.installs.start("failing", stdio("echo half > failing/file; exit 5"))
        assert (await r.completed("failing"))["exitCode"] == 5
        assert sorted(p.name for p in r.tools.iterdir()) == ["lone"]
