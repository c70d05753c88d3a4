"""Issue 12 end to end: backends are untrusted. A hostile stdio backend (`tests/fixtures/hostile_server.py`)
attacks the real process tree, one attack per test; each test asserts that the attack fails, from the attack's
own report (facts, not logs), and that the other backends keep serving with 0 errors meanwhile.

Every wait is a bounded poll; every process a test starts (helpers included) is killed in a `finally`. Reports
and the sandbox status are printed, so `pytest -s` shows what each attack achieved.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
import pytest
from mcp import ClientSession

from tests.e2e.conftest import (
    FIXTURE_SERVER,
    ROOT,
    SUPERVISOR_CMD,
    RunningSupervisor,
    alive,
    write_config,
)
from tests.e2e.status_polls import POLL_S, wait_newer
from tests.helpers import async_wait_until, mcp_client, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

HOSTILE_SERVER = ROOT / "tests" / "fixtures" / "hostile_server.py"
FORGED = "FORGED-BY-THE-ATTACKER"
MARKER = "SECRET-MARKER-123"
CALL_TIMEOUT_S = 20.0


# ---------------------------------------------------------------------------------------------------- setup


def hostile_entry(cwd: Path, sandbox: dict[str, Any] | None = None, name: str = "attacker") -> dict[str, Any]:
    cwd.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {
        "type": "stdio",
        "command": sys.executable,
        "args": [str(HOSTILE_SERVER), "--name", name],
        "cwd": str(cwd),
    }
    if sandbox is not None:
        entry["sandbox"] = sandbox
    return entry


def victim_entry(cwd: Path | None = None) -> dict[str, Any]:
    """The SDK fixture (echo, slow, whoami): a real, well-behaved backend."""
    entry: dict[str, Any] = {
        "type": "stdio",
        "command": sys.executable,
        "args": [str(FIXTURE_SERVER), "--name", "victim"],
    }
    if cwd is not None:
        cwd.mkdir(parents=True, exist_ok=True)
        entry["cwd"] = str(cwd)
    return entry


def launch(
    supervisor_factory: Any, config_dir: Path, servers: dict[str, Any] | None = None, **env: str
) -> RunningSupervisor:
    if servers is not None:
        write_config(config_dir, servers)
    sup: RunningSupervisor = supervisor_factory(config_dir, env or None)
    return sup


def runtime_dir_of(config_dir: Path) -> Path:
    """Where the CLI looks for the running supervisor of `config_dir` (the product's own function)."""
    from mcp_supervisor.protocol.endpoints import runtime_dir_for

    return runtime_dir_for(config_dir)


def cli(config_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SUPERVISOR_CMD, *args, "--config-dir", str(config_dir)], capture_output=True, text=True, timeout=60
    )


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def shown(report: Any, limit: int = 3000) -> str:
    text = json.dumps(report, indent=1, default=str)
    return text if len(text) <= limit else text[:limit] + " …"


def failure(what: str, report: Any, sup: RunningSupervisor) -> str:
    return f"{what}\n--- the attack's report ---\n{shown(report)}\n--- supervisor log ---\n{sup.log_tail(40)}"


async def attack(
    client: ClientSession,
    sup: RunningSupervisor,
    tool: str,
    arguments: dict[str, Any],
    key: str = "attacker",
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Call one attack tool; its report (the tool always answers, unless its process was killed)."""
    with anyio.fail_after(timeout):
        result = await client.call_tool(f"{key}--{tool}", arguments)
    text = text_of(result)
    assert not result.is_error, failure(f"{key}--{tool} answered with an error", text, sup)
    report: dict[str, Any] = json.loads(text)
    return report


async def try_attack(
    client: ClientSession, sup: RunningSupervisor, tool: str, arguments: dict[str, Any], timeout: float = 60.0
) -> dict[str, Any]:
    """Like `attack`, for attacks that may get the backend killed: {"report": ...} or {"call_error": ...}."""
    try:
        return {"report": await attack(client, sup, tool, arguments, timeout=timeout)}
    except Exception as exc:  # the gateway failed the call (the backend died under it), or the tool erred
        return {"call_error": f"{type(exc).__name__}: {exc}"}


def sandbox_status(sup: RunningSupervisor, *keys: str) -> dict[str, Any]:
    """Print (and return) each backend's `sandbox` object, from /health/backends and from `status --json`."""
    health = sup.backends()
    found: dict[str, Any] = {}
    status = cli(sup.config_dir, "status", "--json")
    try:
        snapshot = {b["key"]: b for b in json.loads(status.stdout)["backends"]}
    except (ValueError, KeyError):
        snapshot = {}
    for key in keys:
        found[key] = health.get(key, {}).get("sandbox")
        print(f"\nsandbox of {key} (/health/backends): {json.dumps(found[key])}")
        print(f"sandbox of {key} (status --json):     {json.dumps(snapshot.get(key, {}).get('sandbox'))}")
    if status.returncode != 0:
        print(f"status --json failed: {status.stdout}{status.stderr}")
    return found


def leaf_of(exc: BaseException) -> BaseException:
    """The one exception inside nested task-group wrappers (anyio wraps even a single failure)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@contextlib.contextmanager
def plain_errors() -> Iterator[None]:
    """Let a failed assertion inside task groups surface as itself, not as an ExceptionGroup five deep."""
    try:
        yield
    except BaseExceptionGroup as exc:
        raise leaf_of(exc) from None


@contextlib.asynccontextmanager
async def session(sup: RunningSupervisor) -> AsyncIterator[ClientSession]:
    with plain_errors():
        async with mcp_client(sup.url) as client:
            yield client


# ---------------------------------------------------------------------------------------------------- the victim


class Steady:
    """Calls the victim's echo every ~50 ms in the background; every call must succeed, each within a bound."""

    def __init__(self, client: ClientSession) -> None:
        self.client = client
        self.ok = 0
        self.failures: list[str] = []
        self.stop = anyio.Event()

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                with anyio.fail_after(CALL_TIMEOUT_S):
                    result = await self.client.call_tool("victim--echo", {"text": f"steady {n}"})
                if result.is_error or text_of(result) != f"victim: steady {n}":
                    self.failures.append(f"call {n}: unexpected answer {text_of(result)!r}")
                else:
                    self.ok += 1
            except Exception as exc:
                self.failures.append(f"call {n}: {type(exc).__name__}: {exc}")
            with anyio.move_on_after(0.05):
                await self.stop.wait()


@contextlib.asynccontextmanager
async def steady_victim(sup: RunningSupervisor) -> AsyncIterator[Steady]:
    """A client of its own calling the victim all along the block; the block ends with the calls stopped."""
    with plain_errors():
        async with mcp_client(sup.url) as client, anyio.create_task_group() as group:
            steady = Steady(client)
            group.start_soon(steady.run)
            try:
                await async_wait_until(lambda: steady.ok >= 3, 15, what="the victim's steady caller to get going")
                yield steady
            finally:
                steady.stop.set()


async def victim_serves(client: ClientSession, sup: RunningSupervisor, calls: int = 20) -> None:
    failures = []
    for n in range(calls):
        try:
            with anyio.fail_after(CALL_TIMEOUT_S):
                result = await client.call_tool("victim--echo", {"text": f"after {n}"})
            if result.is_error or text_of(result) != f"victim: after {n}":
                failures.append(f"call {n}: {text_of(result)!r}")
        except Exception as exc:
            failures.append(f"call {n}: {type(exc).__name__}: {exc}")
    assert not failures, f"{len(failures)}/{calls} calls to the victim failed: {failures[:5]}\n{sup.log_tail(40)}"


def assert_steady(steady: Steady, sup: RunningSupervisor) -> None:
    """The victim's caller saw 0 errors, and the tree itself stayed whole (no gateway crash)."""
    print(f"victim's steady caller: {steady.ok} calls ok, {len(steady.failures)} failed")
    assert "gateway exited unexpectedly" not in sup.log_path.read_text(errors="replace"), sup.log_tail(40)
    assert not steady.failures, (
        f"{len(steady.failures)} calls to the victim failed during the attack: {steady.failures[:5]}\n"
        f"{sup.log_tail(40)}"
    )


# ---------------------------------------------------------------------------------------------------- 1. forging


async def test_forged_replies_never_reach_another_backends_caller(tmp_path: Path, supervisor_factory: Any) -> None:
    # The victim here is the hostile fixture itself, benign (sleep, echo): its sleep says on stderr when it
    # starts, which the supervisor's log shows even when the sandbox gives the backend a /tmp of its own.
    sup = launch(
        supervisor_factory,
        tmp_path / "config",
        {
            "victim": hostile_entry(tmp_path / "victim", name="victim"),
            "attacker": hostile_entry(tmp_path / "attacker"),
        },
    )
    sup.wait_linked({"victim", "attacker"})
    marker = f"victim-sleep-{uuid.uuid4().hex[:8]}"
    outcome: dict[str, Any] = {}
    async with session(sup) as a, session(sup) as b, steady_victim(sup) as steady:

        async def slow_call() -> None:
            began = time.monotonic()
            try:
                with anyio.fail_after(30):
                    result = await a.call_tool("victim--sleep", {"seconds": 3, "marker": marker})
                outcome.update(text=text_of(result), is_error=result.is_error)
            except Exception as exc:
                outcome["error"] = f"{type(exc).__name__}: {exc}"
            outcome["took"] = time.monotonic() - began

        with plain_errors():
            async with anyio.create_task_group() as group:
                group.start_soon(slow_call)
                await async_wait_until(
                    lambda: "took" in outcome or marker in sup.log_path.read_text(errors="replace"),
                    15,
                    what="client A's call to reach the victim",
                )
                assert "took" not in outcome, failure(f"A's call ended before the attack: {outcome}", {}, sup)
                report = await attack(b, sup, "forge", {"spread": 200, "text": FORGED})
                await async_wait_until(lambda: "took" in outcome, 30, what="client A's call to end")
        await victim_serves(a, sup)
    metrics = httpx2.get(f"{sup.base}/metrics", timeout=5).text
    refused = [line for line in metrics.splitlines() if line.startswith("mcp_gateway_refused_messages_total")]
    print(
        f"\nforge: attacker's own id {report.get('own_id')}, forged {len(report.get('forged', []))} replies; "
        f"client A got {outcome} ; metric {refused}"
    )
    assert len(report.get("forged", [])) == 400, failure("the attacker did not get to forge", report, sup)
    assert "error" not in outcome and not outcome.get("is_error"), failure(f"A's call failed: {outcome}", report, sup)
    assert outcome["text"] != FORGED, failure(
        f"client A got the forged text after {outcome['took']:.2f} s: {outcome}", report, sup
    )
    assert json.loads(outcome["text"]) == {"slept": 3, "server": "victim"}, failure(f"A got {outcome}", report, sup)
    assert outcome["took"] >= 3.0, failure(f"the genuine 3 s reply came after {outcome['took']:.2f} s", report, sup)
    assert_steady(steady, sup)
    assert refused, f"no mcp_gateway_refused_messages_total line in /metrics:\n{metrics}"

    # The attacker's worker dropped the forgeries before the gateway saw them, and says so (heartbeats carry the
    # count to the supervisor, and on to /metrics and status).
    def attacker_refusals() -> list[str]:
        page = httpx2.get(f"{sup.base}/metrics", timeout=5).text
        return [
            line
            for line in page.splitlines()
            if line.startswith('mcp_backend_refused_replies_total{backend="attacker"}') and not line.endswith(" 0")
        ]

    counted = await async_wait_until(attacker_refusals, 10, what="the attacker's refused replies in /metrics")
    assert counted == ['mcp_backend_refused_replies_total{backend="attacker"} 400'], counted


# ---------------------------------------------------------------------------------------------------- 2. sockets


async def test_backend_cannot_drive_the_control_socket_nor_take_over_a_worker(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    config_dir = tmp_path / "config"
    runtime_dir = str(runtime_dir_of(config_dir))
    # Two attackers: one with the default sandbox, one granted the runtime dir itself in readPaths (a hidden
    # path must stay hidden whatever is granted; a read-only bind would still let it connect to the sockets).
    servers = {
        "victim": victim_entry(),
        "attacker": hostile_entry(tmp_path / "attacker"),
        "nosy": hostile_entry(tmp_path / "nosy", {"readPaths": [runtime_dir]}, name="nosy"),
    }
    sup = launch(supervisor_factory, config_dir, servers)
    before = sup.wait_linked({"victim", "attacker", "nosy"})["victim"]
    reports: dict[str, Any] = {}
    try:
        async with session(sup) as client, steady_victim(sup) as steady:
            for key in ("attacker", "nosy"):
                # Only this supervisor's runtime dir is attacked (others found on the machine belong to other
                # runs); it is tried even when the attacker could not find it, as if guessed.
                arguments = {"targets": [runtime_dir], "victim": "victim"}
                reports[key] = await attack(client, sup, "sockets", arguments, key=key, timeout=90)
            after = sup.backends()["victim"]
            await victim_serves(client, sup)
    except AssertionError:
        raise
    except Exception as exc:  # e.g. the gateway died under the attack and took the client sessions with it
        pytest.fail(failure(f"the clients' sessions broke during the attack: {exc!r}", reports, sup))
    for key, report in reports.items():
        entry = report.get("attacked", {}).get(runtime_dir, {})
        control = entry.get("control", {}).get("attempts", [])
        data = entry.get("data", {}).get("attempts", [])
        replies = [(attempt["credentials"], reply) for attempt in control for reply in attempt.get("received", [])]
        stolen = [
            (attempt["identity"], attempt["credentials"], attempt.get("received", []))
            for attempt in data
            if attempt.get("messages")
        ]
        print(
            f"\nsockets ({key}): found {report.get('found')}; skipped {len(report.get('skipped', []))} other "
            f"runtime dirs; sockets seen {entry.get('exists')}; cli.secret: "
            f"{entry.get('control', {}).get('cli_secret')}; control replies {replies}; data messages {stolen}; "
            f"zmq: {report.get('zmq_error', 'imported')}"
        )
        assert not replies, failure(f"the control socket answered {key}: {replies}", report, sup)
        assert not stolen, failure(f"{key} received data-plane messages as a worker: {stolen}", report, sup)
    assert after["state"] == "RUNNING" and after.get("linked"), failure(f"the victim is now {after}", reports, sup)
    assert (after["generation"], after["pid"]) == (before["generation"], before["pid"]), failure(
        f"the victim was replaced: {before} -> {after}", reports, sup
    )
    assert_steady(steady, sup)


# ---------------------------------------------------------------------------------------------------- 3. tree


def helpers_tagged(tag: str) -> set[int]:
    """Host pids of the helpers whose argv carries `tag` (their own pids may be in another pid namespace)."""
    found = set()
    for process in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(arg.startswith(tag) for arg in process.info["cmdline"] or []):
                found.add(process.pid)
    return set(alive(found))


async def spawn_helpers(client: ClientSession, sup: RunningSupervisor, tag: str, spawned: set[int]) -> set[int]:
    report = await attack(client, sup, "spawn_helpers", {"tag": tag, "pid_file": str(sup.config_dir / f"{tag}.pid")})
    try:
        pids: set[int] = wait_until(lambda: found if len(found := helpers_tagged(tag)) == 2 else set(), 10, what=tag)
    except AssertionError as exc:
        raise AssertionError(failure(f"the helpers did not appear: {exc}", report, sup)) from None
    spawned.update(pids)
    print(f"spawned helpers {sorted(pids)} ({tag}); report {report}")
    return pids


async def gone(pids: set[int], timeout: float, what: str, problems: list[str]) -> None:
    began = time.monotonic()
    try:
        await async_wait_until(lambda: not alive(pids), timeout, interval=POLL_S, what=what)
        print(f"{what}: in {time.monotonic() - began:.2f} s")
    except AssertionError:
        problems.append(f"{what}: still alive after {timeout} s: {describe(pids)}")


def survived(pids: set[int], what: str, problems: list[str], sup: RunningSupervisor, attacker: dict[str, Any]) -> None:
    """The helpers of the attacker's current generation are all alive, and that generation still runs."""
    dead = pids - set(alive(pids))
    if dead:
        problems.append(f"{what} killed helpers of the healthy attacker generation: {sorted(dead)} of {sorted(pids)}")
    now = sup.backends()["attacker"]
    if (now["generation"], now["pid"]) != (attacker["generation"], attacker["pid"]):
        problems.append(f"{what} replaced the attacker's worker itself: {attacker} -> {now}")


def describe(pids: set[int]) -> dict[int, str]:
    result = {}
    for pid in alive(pids):
        with contextlib.suppress(psutil.Error):
            result[pid] = " ".join(psutil.Process(pid).cmdline())[-80:]
    return result


async def test_one_workers_exit_sweeps_only_its_own_descendants(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = launch(
        supervisor_factory,
        tmp_path / "config",
        {"victim": victim_entry(), "attacker": hostile_entry(tmp_path / "attacker")},
    )
    first = sup.wait_linked({"victim", "attacker"})
    nonce = uuid.uuid4().hex[:8]
    spawned: set[int] = set()
    tree: list[psutil.Process] = []
    problems: list[str] = []
    try:
        async with session(sup) as client:
            old = await spawn_helpers(client, sup, f"hostile-{nonce}-gen-a", spawned)
            restarted = cli(sup.config_dir, "restart", "attacker")
            assert restarted.returncode == 0, restarted.stdout + restarted.stderr
            await wait_newer(sup, "attacker", first["attacker"]["generation"])
            await gone(old, 10, "the restarted generation's helpers gone", problems)

            new = await spawn_helpers(client, sup, f"hostile-{nonce}-gen-b", spawned)
            attacker = sup.backends()["attacker"]
            victim = sup.backends()["victim"]
            restarted = cli(sup.config_dir, "restart", "victim")
            assert restarted.returncode == 0, restarted.stdout + restarted.stderr
            await wait_newer(sup, "victim", victim["generation"])
            await victim_serves(client, sup)
            survived(new, "`restart victim`", problems, sup, attacker)

            victim = sup.backends()["victim"]
            os.kill(victim["pid"], signal.SIGKILL)
            await wait_newer(sup, "victim", victim["generation"])
            await victim_serves(client, sup)
            survived(new, "a SIGKILL of the victim's worker", problems, sup, attacker)
        helpers_before_kill = set(alive(spawned))
        tree = sup.tree()
        workers = {status["pid"] for status in sup.backends().values() if status.get("pid")}
        sup.process.kill()
        sup.process.wait(5)
        await gone(workers, 15, "the SIGKILLed supervisor's workers gone", problems)
        second = launch(supervisor_factory, sup.config_dir)
        await gone(helpers_before_kill, 15, "the next start killed the previous instance's helpers", problems)
        second.wait_linked({"victim", "attacker"})
    finally:
        for pid in spawned | {p.pid for p in tree}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if pid in alive({pid}) and pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)
    assert not problems, "\n".join(problems) + f"\n--- supervisor log ---\n{sup.log_tail(40)}"


# ---------------------------------------------------------------------------------------------------- 4. environ


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts TCP connections (into the backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


async def test_no_environ_holds_the_tree_or_another_backends_secrets(tmp_path: Path, supervisor_factory: Any) -> None:
    with silent_listener() as port:
        # An HTTP backend that never answers: its worker stays alive, in STARTING, holding the bearer token.
        remote = {
            "type": "http",
            "url": f"http://127.0.0.1:{port}/mcp",
            "bearerToken": MARKER,
            "supervision": {"startTimeout": 120},
        }
        servers = {"victim": victim_entry(), "attacker": hostile_entry(tmp_path / "attacker"), "remote": remote}
        sup = launch(supervisor_factory, tmp_path / "config", servers)
        sup.wait_linked({"victim", "attacker"})

        def remote_worker() -> dict[str, Any]:
            status: dict[str, Any] = sup.backends().get("remote") or {}
            return status if status.get("pid") and psutil.pid_exists(status["pid"]) else {}

        remote_status = wait_until(remote_worker, 20, what="the remote backend's worker to run")
        async with session(sup) as client, steady_victim(sup) as steady:
            report = await attack(client, sup, "environ", {"marker": MARKER})
            who = await attack(client, sup, "whoami", {})
            await victim_serves(client, sup)
    matches = {needle: found for needle, found in report.get("matches", {}).items() if found}
    tree_env = [name for name in who.get("env_names", []) if name.startswith("MCP_SUPERVISOR_")]
    print(
        f"\nenviron: {report.get('visible_count')} pids visible, {report.get('environ_readable')} environs readable "
        f"(remote worker pid {remote_status['pid']}, state {remote_status['state']}); matches {shown(matches, 1500)}; "
        f"parent {shown(report.get('parent'), 600)}; own MCP_SUPERVISOR_* {tree_env}"
    )
    assert not matches, failure(f"environs visible to the backend hold secrets: {shown(matches, 1500)}", report, sup)
    assert not report.get("own_tree_env") and not tree_env, failure(
        f"the backend's own environment has {tree_env}", report, sup
    )
    assert_steady(steady, sup)


# ---------------------------------------------------------------------------------------------------- 5. reach


def reach_setup(
    tmp_path: Path, sandbox: dict[str, Any] | None = None, nosy: bool = False
) -> tuple[Path, Path, dict[str, Any]]:
    """A config dir with a session secret; a victim in a directory of its own holding a secret, with a secret
    in its state dir (HOME) too; an attacker. With `nosy`, a second attacker granted (readPaths, writePaths)
    the whole test directory and the runtime dir: what is hidden must stay hidden whatever is granted."""
    config_dir = tmp_path / "config"
    victim_dir = tmp_path / "victim-cwd"
    victim_dir.mkdir(parents=True)
    (victim_dir / "secret.txt").write_text("VICTIM-PRIVATE-FILE")
    victim_state = tmp_path / "config-state" / "victim"  # its HOME (tests/e2e/conftest.py sets the state dir)
    victim_state.mkdir(parents=True)
    (victim_state / "token.txt").write_text("VICTIM-STATE-FILE")
    servers = {"victim": victim_entry(victim_dir), "attacker": hostile_entry(tmp_path / "attacker", sandbox)}
    if nosy:
        granted = [str(tmp_path), str(runtime_dir_of(config_dir))]
        servers["nosy"] = hostile_entry(
            tmp_path / "nosy", {**(sandbox or {}), "readPaths": granted, "writePaths": granted}, name="nosy"
        )
    write_config(config_dir, servers)
    (config_dir / ".session_secret").write_text("SESSION-SECRET-VALUE")
    os.chmod(config_dir / ".session_secret", 0o600)
    return config_dir, victim_dir, servers


async def test_backend_cannot_read_config_runtime_dir_or_other_backends_files(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    config_dir, victim_dir, _ = reach_setup(tmp_path, nosy=True)
    sup = launch(supervisor_factory, config_dir)
    sup.wait_linked({"victim", "attacker", "nosy"})
    sandbox_status(sup, "attacker", "nosy")
    runtime_dir = runtime_dir_of(config_dir)
    secrets = [
        config_dir / "mcp_server.json",
        config_dir / ".session_secret",
        config_dir,
        runtime_dir,
        *(p for p in (runtime_dir / "cli.secret", runtime_dir / "logs") if p.exists()),
        victim_dir / "secret.txt",
        victim_dir,
        tmp_path / "config-state" / "victim" / "token.txt",
    ]
    own_program = str(HOSTILE_SERVER)  # named in its args: readable, which proves the tool itself works
    reports: dict[str, Any] = {}
    async with session(sup) as client, steady_victim(sup) as steady:
        for key in ("attacker", "nosy"):
            reports[key] = await attack(client, sup, "read", {"paths": [*map(str, secrets), own_program]}, key=key)
        await victim_serves(client, sup)
    for key, report in reports.items():
        results = report["results"]
        # A hidden path may still exist, empty (the sandbox masks a directory with an empty tmpfs and a file
        # with /dev/null): what must not leak is content, i.e. any name in a listing or any byte of a file.
        leaked = {
            path: result
            for path, result in results.items()
            if path != own_program and result["ok"] and (result.get("listing") or result.get("head"))
        }
        print(f"\nread ({key}): {shown(results, 2000)}")
        assert results[own_program]["ok"], failure(f"{key} cannot even read its own program", report, sup)
        assert not leaked, failure(f"{key} read {sorted(leaked)}", report, sup)
    assert_steady(steady, sup)


def existing(paths: list[Path]) -> set[str]:
    return {str(path) for path in paths if path.exists()}


def remove_probes(paths: list[Path], probe: str) -> None:
    """Delete what the write attack left on the host (only files named after this test's probe)."""
    for path in paths:
        with contextlib.suppress(OSError):
            if path.is_file() and probe in path.name:
                path.unlink()


async def test_backend_writes_only_its_home_and_tmp(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir, victim_dir, _ = reach_setup(tmp_path, nosy=True)
    sup = launch(supervisor_factory, config_dir)
    sup.wait_linked({"victim", "attacker", "nosy"})
    sandbox_status(sup, "attacker", "nosy")
    probe = f"hostile-probe-{uuid.uuid4().hex[:8]}"
    forbidden = [
        config_dir / f"mcp_server.json.{probe}",
        victim_dir / probe,
        tmp_path / "config-state" / "victim" / probe,
        runtime_dir_of(config_dir) / probe,
        ROOT / "tests" / "fixtures" / f".{probe}",
    ]
    homes: dict[str, str | None] = {}
    reports: dict[str, dict[str, Any]] = {}
    written: list[Path] = []
    try:
        async with session(sup) as client, steady_victim(sup) as steady:
            for key in ("attacker", "nosy"):
                homes[key] = home = (await attack(client, sup, "whoami", {}, key=key)).get("home")
                allowed = [f"{home}/{probe}", f"/tmp/{probe}"] if home else [f"/tmp/{probe}"]
                written += [Path(path) for path in allowed]
                reports[key] = {}
                for path in [*map(str, forbidden), *allowed]:
                    arguments = {"path": path, "text": "injected"}
                    reports[key][path] = await attack(client, sup, "write", arguments, key=key)
            await victim_serves(client, sup)
        for key, report in reports.items():
            print(f"\nwrite ({key}, HOME {homes[key]}): {shown(report, 2000)}")
            wrote = [path for path in map(str, forbidden) if report[path]["ok"] or path in existing(forbidden)]
            assert not wrote, failure(f"{key} wrote {wrote}", report, sup)
            assert homes[key], failure(f"{key} has no HOME", report, sup)
            allowed = [f"{homes[key]}/{probe}", f"/tmp/{probe}"]
            assert all(report[path]["ok"] for path in allowed), failure(f"{key} cannot write HOME or /tmp", report, sup)
        assert_steady(steady, sup)
    finally:
        remove_probes([*forbidden, *written], probe)


async def test_backend_sees_no_other_process(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir, _, _ = reach_setup(tmp_path)
    sup = launch(supervisor_factory, config_dir)
    sup.wait_linked({"victim", "attacker"})
    sandbox_status(sup, "attacker")
    tree = {p.pid for p in sup.tree()}
    async with session(sup) as client, steady_victim(sup) as steady:
        report = await attack(client, sup, "environ", {})
        await victim_serves(client, sup)
    others = [v for v in report["visible"] if not v["self"] and ("mcp-supervisor" in v["cmdline"] or v["pid"] in tree)]
    print(f"\nprocesses: {report['visible_count']} visible; of the tree: {others[:10]}")
    assert not others, failure(f"the backend sees the tree's processes: {others[:10]}", report, sup)
    assert report["visible_count"] <= 10, failure(f"the backend sees {report['visible_count']} processes", report, sup)
    assert_steady(steady, sup)


async def test_fork_bomb_is_bounded_by_pids(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir, _, _ = reach_setup(tmp_path, {"pids": 64})
    sup = launch(supervisor_factory, config_dir)
    sup.wait_linked({"victim", "attacker"})
    sandbox_status(sup, "attacker")
    async with session(sup) as client, steady_victim(sup) as steady:
        outcome = await try_attack(client, sup, "fork", {"count": 10_000}, timeout=60)
        await victim_serves(client, sup)
    report = outcome.get("report", {})
    print(f"\nfork: {outcome}")
    assert "report" in outcome, failure("the fork attack's call failed", outcome, sup)
    assert report["succeeded"] < 64 + 10, failure(f"{report['succeeded']} forks succeeded (pids 64)", report, sup)
    assert_steady(steady, sup)


async def test_memory_is_bounded_by_memory_mb(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir, _, _ = reach_setup(tmp_path, {"memoryMb": 128})
    sup = launch(supervisor_factory, config_dir)
    before = sup.wait_linked({"victim", "attacker"})["attacker"]
    sandbox_status(sup, "attacker")
    async with session(sup) as client, steady_victim(sup) as steady:
        outcome = await try_attack(client, sup, "alloc", {"mb": 512}, timeout=60)
        if "call_error" in outcome:  # killed for it: its worker must come back, alone
            after = await wait_newer(sup, "attacker", before["generation"])
            print(f"attacker killed for memory, generation {before['generation']} -> {after['generation']}")
        await attack(client, sup, "whoami", {})
        await victim_serves(client, sup)
    print(f"\nalloc: {outcome}")
    allocated = outcome.get("report", {}).get("allocated_mb", 0)
    assert allocated < 512, failure(f"the backend allocated {allocated} MB (memoryMb 128)", outcome, sup)
    assert_steady(steady, sup)


async def test_network_false_blocks_even_loopback(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir, _, servers = reach_setup(tmp_path, {"network": False})
    with silent_listener() as port:
        # The default network has no way to the host's loopback (tests/e2e/test_network_wall.py): a named port does.
        servers["netok"] = hostile_entry(tmp_path / "netok", {"network": {"hostPorts": [port]}}, name="netok")
        write_config(config_dir, servers)
        sup = launch(supervisor_factory, config_dir)
        sup.wait_linked({"victim", "attacker", "netok"})
        sandbox_status(sup, "attacker", "netok")
        async with session(sup) as client, steady_victim(sup) as steady:
            blocked = await attack(client, sup, "connect", {"host": "127.0.0.1", "port": port})
            allowed = await attack(client, sup, "connect", {"host": "127.0.0.1", "port": port}, key="netok")
            await victim_serves(client, sup)
    print(f"\nconnect: network false -> {blocked}; hostPorts -> {allowed}")
    assert not blocked["ok"], failure("the backend with network false connected to loopback", blocked, sup)
    assert allowed["ok"], failure("the backend with the port in hostPorts could not connect", allowed, sup)
    assert_steady(steady, sup)
