"""Issue 4 end to end: faults injected into the real process tree, and what the supervisor does about them.

Every wait is a bounded poll; timings are measured on the gateway's `/health/backends` (polled every 20 ms)
and printed, so `pytest -s` shows the figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
import pytest
from mcp import ClientSession, MCPError

from tests.e2e.conftest import (
    FIXTURE_SERVER,
    ROOT,
    SUPERVISOR_CMD,
    RunningSupervisor,
    alive,
    stdio_fixture_entry,
    write_config,
)
from tests.e2e.status_polls import POLL_S, is_up, statuses, wait_newer
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TINY_SERVER = ROOT / "tests" / "fixtures" / "tiny_server.py"


# ---------------------------------------------------------------------------------------------------- helpers


# These tests follow backends by their host pids and by files they write into tmp_path, so their backends run
# unsandboxed (their own pid namespace and private /tmp would hide both); cgroup tracking still applies.
# tests/e2e/test_hostile_backend.py covers the process-tree guarantees under the sandbox.
UNSANDBOXED = {"enabled": False}


def echo_entry(name: str, *flags: str, supervision: dict[str, float] | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"args": [str(FIXTURE_SERVER), "--name", name, *flags], "sandbox": UNSANDBOXED}
    if supervision:
        extra["supervision"] = supervision
    return stdio_fixture_entry(name, **extra)


def tiny_entry(name: str, *flags: str, supervision: dict[str, float] | None = None) -> dict[str, Any]:
    args = [str(TINY_SERVER), "--name", name, *flags]
    entry: dict[str, Any] = {"type": "stdio", "command": sys.executable, "args": args, "sandbox": UNSANDBOXED}
    if supervision:
        entry["supervision"] = supervision
    return entry


def start(supervisor_factory: Any, tmp_path: Path, servers: dict[str, Any], **env: str) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, servers)
    sup: RunningSupervisor = supervisor_factory(config_dir, env or None)
    return sup


def cli(config_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SUPERVISOR_CMD, *args, "--config-dir", str(config_dir)], capture_output=True, text=True, timeout=60
    )


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def wait_up(
    http: httpx2.AsyncClient, sup: RunningSupervisor, key: str, generation: int, timeout: float
) -> dict[str, Any]:
    """Poll until `key` runs the given generation, linked to the gateway; return its status."""
    found: dict[str, Any] = {}

    async def up() -> bool:
        status = (await statuses(http, sup)).get(key)
        if status and status["generation"] > generation:  # that generation died before it was ever RUNNING
            raise AssertionError(f"{key} generation {generation} was skipped, now {status}")
        if is_up(status, generation):
            found.update(status or {})
            return True
        return False

    try:
        await async_wait_until(up, timeout, interval=POLL_S, what=f"{key} generation {generation} RUNNING")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- supervisor log ---\n{sup.log_tail()}") from None
    return found


async def whoami(client: ClientSession, key: str) -> int:
    result = await client.call_tool(f"{key}--whoami", {})
    assert result.structured_content is not None
    return int(result.structured_content["pid"])


class Steady:
    """Calls one backend's tool every ~50 ms in the background; every call must succeed."""

    def __init__(self, client: ClientSession, tool: str, expected: str) -> None:
        self.client = client
        self.tool = tool
        self.expected = expected
        self.ok = 0
        self.failures: list[str] = []
        self.slowest = 0.0
        self.stop = anyio.Event()

    async def run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                result = await self.client.call_tool(self.tool, {"text": "steady"})
                if text_of(result) == self.expected and not result.is_error:
                    self.ok += 1
                else:
                    self.failures.append(f"unexpected answer {text_of(result)!r}")
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.slowest = max(self.slowest, time.monotonic() - began)
            with anyio.move_on_after(0.05):
                await self.stop.wait()


def restart_decisions(sup: RunningSupervisor, key: str) -> list[float]:
    """The delays the supervisor chose, from its log ("Restarting worker[key] in 0.13 s.")."""
    pattern = re.compile(rf"Restarting worker\[{re.escape(key)}\] in ([0-9.]+) s\.")
    return [float(m) for m in pattern.findall(sup.log_path.read_text(errors="replace"))]


async def record_generations(
    http: httpx2.AsyncClient, sup: RunningSupervisor, key: str, timeout: float
) -> tuple[dict[int, float], dict[int, float], dict[str, Any]]:
    """Poll every 20 ms until `key` is FATAL: when each generation was first seen, and first seen down."""
    began = time.monotonic()
    first_seen: dict[int, float] = {}
    down_seen: dict[int, float] = {}
    last: dict[str, Any] = {}
    while time.monotonic() - began < timeout:
        status = (await statuses(http, sup)).get(key)
        now = time.monotonic()
        if status:
            last = status
            generation = status["generation"]
            first_seen.setdefault(generation, now)
            if status["state"] in ("BACKOFF", "FATAL") or not status.get("pid"):
                down_seen.setdefault(generation, now)
            if status["state"] == "FATAL":
                return first_seen, down_seen, last
        await anyio.sleep(POLL_S)
    raise AssertionError(f"{key} did not become FATAL within {timeout} s: {last}\n{sup.log_tail()}")


def _log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def lifecycle_from_log(sup: RunningSupervisor, key: str) -> tuple[dict[int, float], dict[int, float]]:
    """When each generation of `key` was spawned, and when it crashed, from the supervisor's log lines."""
    spawned: dict[int, float] = {}
    crashed: dict[int, float] = {}
    label = re.escape(f"worker[{key}]")
    stamp = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) supervisor \w+ "
    generation = 0
    for line in sup.log_path.read_text(errors="replace").splitlines():
        if match := re.match(stamp + rf"Started {label} \(generation (\d+),", line):
            generation = int(match[2])
            spawned[generation] = _log_time(match[1])
        elif match := re.match(stamp + rf"{label} exited unexpectedly", line):
            crashed[generation] = _log_time(match[1])
    return spawned, crashed


def check_backoff(decisions: list[float], base: float, cap: float = 30.0) -> None:
    """First restart immediate, then base*2**(n-2) capped, with jitter between half and all of it."""
    assert decisions[0] == 0.0, decisions
    for n, delay in enumerate(decisions[1:], start=2):
        nominal = min(cap, base * 2 ** (n - 2))
        assert 0.5 * nominal - 0.01 <= delay <= nominal + 0.01, (n, delay, nominal, decisions)


def grandchildren(pid_file: Path) -> tuple[int, int]:
    plain, detached = (int(pid) for pid in pid_file.read_text().split())
    return plain, detached


def spawned_grandchildren(sup: RunningSupervisor) -> set[int]:
    """Every grandchild pid any generation announced on stderr (captured into the supervisor's log)."""
    found = re.findall(r"grandchildren: (\d+) (\d+)", sup.log_path.read_text(errors="replace"))
    return {int(pid) for pair in found for pid in pair}


def zombies_below(pid: int) -> list[int]:
    zombies = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return zombies


# ---------------------------------------------------------------------------------------------------- tests


async def test_sigkill_idle_worker_replaced_fast_while_others_keep_answering(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    # The victim starts in milliseconds, so the figure is the supervisor's own latency (reap, respawn, worker
    # start, handshake, gateway link), not the ~0.7 s the SDK fixture spends importing before it can answer.
    sup = start(supervisor_factory, tmp_path, {"victim": tiny_entry("victim"), "other": echo_entry("other")})
    before = sup.wait_linked({"victim", "other"})["victim"]
    async with mcp_client(sup.url) as client, httpx2.AsyncClient() as http:
        steady = Steady(client, "other--echo", "other: steady")
        async with anyio.create_task_group() as group:
            group.start_soon(steady.run)
            await async_wait_until(lambda: steady.ok >= 3, 10, what="the steady caller to get going")
            killed_at = time.monotonic()
            os.kill(before["pid"], signal.SIGKILL)
            after = await wait_up(http, sup, "victim", before["generation"] + 1, 10)
            replaced_in = time.monotonic() - killed_at
            calls_before = steady.ok
            await async_wait_until(lambda: steady.ok >= calls_before + 5, 10, what="more steady calls")
            steady.stop.set()
        print(
            f"\nidle worker SIGKILL -> replacement RUNNING and linked in {replaced_in:.3f} s; "
            f"{steady.ok} steady calls, slowest {steady.slowest * 1000:.0f} ms"
        )
        assert replaced_in <= 1.5, f"replacement took {replaced_in:.3f} s\n{sup.log_tail()}"
        assert after["pid"] != before["pid"] and after.get("restarts", 0) == before.get("restarts", 0) + 1
        assert after["last_exit"] == "killed by SIGKILL"
        assert not steady.failures, steady.failures
        assert text_of(await client.call_tool("victim--echo", {"text": "back"})) == "victim: back"
    await async_wait_until(lambda: not alive({before["pid"]}), 5, what="the killed worker to be reaped")


async def test_sigkill_busy_worker_fails_in_flight_call_within_1s(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start(supervisor_factory, tmp_path, {"busy": echo_entry("busy"), "other": echo_entry("other")})
    before = sup.wait_linked({"busy", "other"})["busy"]
    marker = tmp_path / "slow-started"
    outcome: dict[str, Any] = {}
    async with mcp_client(sup.url) as client, httpx2.AsyncClient() as http:
        steady = Steady(client, "other--echo", "other: steady")

        async def slow_call() -> None:
            try:
                outcome["result"] = await client.call_tool("busy--slow", {"seconds": 60, "marker": str(marker)})
            except MCPError as exc:
                outcome["error"] = exc
            outcome["at"] = time.monotonic()

        async with anyio.create_task_group() as group:
            group.start_soon(steady.run)
            group.start_soon(slow_call)
            await async_wait_until(
                lambda: marker.exists() and marker.read_text(), 15, what="the slow call to reach the backend"
            )
            assert int(marker.read_text()) != before["pid"]  # the backend's pid, not the worker's
            killed_at = time.monotonic()
            os.kill(before["pid"], signal.SIGKILL)
            await async_wait_until(lambda: "at" in outcome, 5, interval=0.01, what="the in-flight call to end")
            failed_in = outcome["at"] - killed_at
            await wait_up(http, sup, "busy", before["generation"] + 1, 10)
            replaced_in = time.monotonic() - killed_at
            calls_before = steady.ok
            await async_wait_until(lambda: steady.ok >= calls_before + 5, 10, what="more steady calls")
            steady.stop.set()
        print(
            f"\nbusy worker SIGKILL -> in-flight call failed in {failed_in:.3f} s, replacement RUNNING in "
            f"{replaced_in:.3f} s; {steady.ok} steady calls, slowest {steady.slowest * 1000:.0f} ms"
        )
        assert "error" in outcome, outcome
        assert "busy" in str(outcome["error"])
        assert failed_in <= 1.0, f"the in-flight call took {failed_in:.3f} s to fail"
        assert not steady.failures, steady.failures
        assert text_of(await client.call_tool("busy--echo", {"text": "back"})) == "busy: back"


async def test_crash_at_start_follows_backoff_then_fatal_then_restart_clears(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    poison = tmp_path / "poison"
    poison.touch()
    supervision = {"backoffBase": 0.2, "maxRestarts": 4, "restartWindow": 60, "stableAfter": 60}
    sup = start(
        supervisor_factory,
        tmp_path,
        {
            "broken": tiny_entry("broken", "--crash-if", str(poison), supervision=supervision),
            "other": echo_entry("other"),
        },
    )
    async with httpx2.AsyncClient() as http:
        first_seen, down_seen, fatal = await record_generations(http, sup, "broken", 60)
    decisions = restart_decisions(sup, "broken")
    spawned, crashed = lifecycle_from_log(sup, "broken")
    # Crash n -> spawn n+1, to the millisecond (the supervisor's log), and as seen by polling every 20 ms (the
    # first generations may die before the gateway listens: only the ones seen both up and down count there).
    delays = [spawned[g + 1] - crashed[g] for g in range(1, 5)]
    polled = {g: first_seen[g + 1] - down_seen[g] for g in range(1, 5) if g in down_seen and g + 1 in first_seen}
    spawn_gaps = [spawned[g + 1] - spawned[g] for g in range(1, 5)]
    print(
        f"\ncrash at start: decided delays {decisions}; crash-to-spawn {[round(d, 3) for d in delays]} (log), "
        f"{ {g: round(d, 3) for g, d in polled.items()} } (polled, by crashed generation); "
        f"spawn-to-spawn gaps {[round(g, 3) for g in spawn_gaps]}"
    )

    assert fatal.get("restarts") == 4 and fatal["generation"] == 5, fatal
    assert sorted(spawned) == [1, 2, 3, 4, 5] and sorted(crashed) == [1, 2, 3, 4, 5], (spawned, crashed)
    assert {3, 4, 5} <= set(first_seen), first_seen  # polling saw the backoff part of the loop
    assert len(decisions) == 4, decisions
    check_backoff(decisions, 0.2)
    # Timing under load: a restart is never early (a sleep never ends before its time, whatever the load), and
    # never late by more than a slack scaled by this run's own latency. `lag` is what the immediate first
    # restart (decided delay 0) took from crash to spawn: the supervisor's reap-and-spawn cost on this machine,
    # now. A loaded CI machine raises it, and the bounds with it, instead of failing the test.
    lag = delays[0]
    slack = 0.3 + 4 * lag
    assert lag < delays[3], (delays, decisions)  # the first restart is immediate: faster than a backed-off one
    for n, delay in enumerate(delays[1:], start=2):
        assert decisions[n - 1] - 0.01 <= delay <= decisions[n - 1] + slack, (n, delays, decisions, lag)
        # What the test's own polling saw is only a cross-check: under load it sees each edge late by however
        # long this process waited for the CPU (the down edge late makes the gap look short, the up edge late
        # makes it look long), so it bounds nothing but gross errors. The supervisor's log above is exact.
        if n in polled:
            assert polled[n] <= decisions[n - 1] + slack + 2.0, (n, polled, decisions)
    assert delays[3] > decisions[1] + 0.1, (delays, decisions)  # the backoff really grew (0.4-0.8 s vs <= 0.2 s)
    # Spawn-to-spawn gaps add each generation's lifetime (slower for the first, started alongside everything
    # else), so they are printed, and only checked to contain the delay.
    assert all(gap >= delay for gap, delay in zip(spawn_gaps, delays, strict=True)), (spawn_gaps, delays)

    status = cli(sup.config_dir, "status", "--json")
    assert status.returncode == 0, status.stderr
    broken = next(b for b in json.loads(status.stdout)["backends"] if b["key"] == "broken")
    assert broken["state"] == "FATAL" and broken.get("restarts") == 4 and not broken.get("pid"), broken
    assert "refusing to start" in (broken.get("last_stderr") or ""), broken
    assert "crashed 5 times within 60 s (limit 4)" in (broken.get("last_error") or ""), broken
    table = cli(sup.config_dir, "status")
    assert re.search(r"^broken\s+stdio\s+FATAL\b", table.stdout, re.M), table.stdout

    poison.unlink()
    restarted = cli(sup.config_dir, "restart", "broken")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    async with httpx2.AsyncClient() as http:
        back = await wait_up(http, sup, "broken", 6, 15)
    assert "crashed" not in (back.get("last_error") or ""), back
    async with mcp_client(sup.url) as client:
        assert text_of(await client.call_tool("broken--echo", {"text": "fixed"})) == "broken: fixed"
        assert text_of(await client.call_tool("other--echo", {"text": "fine"})) == "other: fine"


async def test_crash_after_ready_ends_fatal_and_calls_fail_at_once(tmp_path: Path, supervisor_factory: Any) -> None:
    supervision = {"backoffBase": 0.2, "maxRestarts": 3, "restartWindow": 60, "stableAfter": 60}
    sup = start(
        supervisor_factory,
        tmp_path,
        {"flaky": echo_entry("flaky", "--crash-after", "0.3", supervision=supervision), "other": echo_entry("other")},
    )
    async with httpx2.AsyncClient() as http:
        first_seen, _, fatal = await record_generations(http, sup, "flaky", 60)
    decisions = restart_decisions(sup, "flaky")
    print(f"\ncrash after ready: decided delays {decisions}; generations seen {sorted(first_seen)}")
    assert fatal.get("restarts") == 3 and fatal["generation"] == 4, fatal
    assert len(decisions) == 3, decisions
    check_backoff(decisions, 0.2)
    assert sup.log_path.read_text().count("worker[flaky] is RUNNING") == 4  # every generation got ready first
    assert "crashing on purpose" in (fatal.get("last_stderr") or ""), fatal

    async with mcp_client(sup.url) as client:
        began = time.monotonic()
        with pytest.raises(MCPError) as down:
            await client.call_tool("flaky--echo", {"text": "anyone?"})
        failed_in = time.monotonic() - began
        print(f"call to the FATAL backend failed in {failed_in * 1000:.0f} ms: {down.value}")
        assert failed_in <= 0.5
        assert 'Backend "flaky" is not available' in str(down.value) and "FATAL" in str(down.value)
        assert text_of(await client.call_tool("other--echo", {"text": "fine"})) == "other: fine"


async def test_sigstopped_worker_is_replaced(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start(
        supervisor_factory,
        tmp_path,
        {"frozen": echo_entry("frozen", supervision={"heartbeatTimeout": 2}), "other": echo_entry("other")},
    )
    before = sup.wait_linked({"frozen", "other"})
    async with mcp_client(sup.url) as client:
        backend_pid = await whoami(client, "frozen")
    errors_seen: set[str] = set()
    async with httpx2.AsyncClient() as http:
        stopped_at = time.monotonic()
        os.kill(before["frozen"]["pid"], signal.SIGSTOP)

        async def replaced() -> bool:
            status = (await statuses(http, sup))["frozen"]
            if status.get("last_error"):
                errors_seen.add(status["last_error"])
            return is_up(status, before["frozen"]["generation"] + 1)

        await async_wait_until(replaced, 2 + 5, interval=POLL_S, what="the stopped worker to be replaced")
        replaced_in = time.monotonic() - stopped_at
        after = (await statuses(http, sup))["frozen"]
    print(f"\nSIGSTOPped worker replaced in {replaced_in:.2f} s (heartbeatTimeout 2 s); errors seen: {errors_seen}")
    await async_wait_until(
        lambda: not alive({before["frozen"]["pid"], backend_pid}), 5, what="the stopped worker and its backend gone"
    )
    assert after["pid"] != before["frozen"]["pid"] and after["last_exit"] == "killed by SIGKILL", after
    assert any("heartbeat" in error for error in errors_seen), (errors_seen, sup.log_tail())
    assert "no heartbeat for" in sup.log_path.read_text()
    assert sup.backends()["other"]["pid"] == before["other"]["pid"]
    async with mcp_client(sup.url) as client:
        assert await whoami(client, "frozen") != backend_pid


async def test_backend_ignoring_sigterm_is_killed_on_stop(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start(
        supervisor_factory,
        tmp_path,
        {"stubborn": echo_entry("stubborn", "--ignore-sigterm", "--linger", supervision={"stopGrace": 2})},
    )
    worker_pid = sup.wait_linked({"stubborn"})["stubborn"]["pid"]
    async with mcp_client(sup.url) as client:
        backend_pid = await whoami(client, "stubborn")
    assert psutil.Process(backend_pid).ppid() == worker_pid
    began = time.monotonic()
    assert sup.stop() == 0
    stop_took = time.monotonic() - began
    await async_wait_until(lambda: not alive({backend_pid, worker_pid}), 10, what="the stubborn backend to die")
    gone_in = time.monotonic() - began
    print(
        f"\nstop with a backend ignoring SIGTERM and stdin EOF: supervisor exited in {stop_took:.2f} s, "
        f"backend gone {gone_in:.2f} s after SIGTERM"
    )
    assert stop_took < 10, stop_took
    assert "ignored SIGTERM" in sup.log_path.read_text(), sup.log_tail()


async def test_grandchildren_gone_after_restart_and_stop(tmp_path: Path, supervisor_factory: Any) -> None:
    pid_file = tmp_path / "grandchildren.pids"
    sup = start(
        supervisor_factory,
        tmp_path,
        {"parent": echo_entry("parent", "--grandchildren", "--pid-file", str(pid_file))},
    )
    first = sup.wait_linked({"parent"})["parent"]
    old = grandchildren(pid_file)
    assert sorted(alive(set(old))) == sorted(old)
    assert os.getsid(old[1]) != os.getsid(first["pid"]) and os.getsid(old[0]) == os.getsid(first["pid"])
    assert "grandchildren:" in (sup.backends()["parent"].get("last_stderr") or "")

    restarted = cli(sup.config_dir, "restart", "parent")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    # Any newer generation will do here (see test_restart_command_is_prompt_and_touches_nothing_else: the
    # restart command currently costs an extra generation); what matters is who is left alive.
    async with httpx2.AsyncClient() as http:
        current = await wait_newer(sup, "parent", first["generation"], 20, http=http)
    new = grandchildren(pid_file)  # written before the backend served, so by the generation now RUNNING
    every = spawned_grandchildren(sup)
    assert set(old) | set(new) <= every
    began = time.monotonic()
    await async_wait_until(lambda: not alive(every - set(new)), 10, what="earlier generations' grandchildren gone")
    print(
        f"\nrestart: generation {first['generation']} -> {current['generation']}; grandchildren of earlier "
        f"generations {sorted(every - set(new))} gone {time.monotonic() - began:.2f} s after the restart returned"
    )
    assert sorted(alive(set(new))) == sorted(new), "the running generation's grandchildren must be left alone"

    assert sup.stop() == 0
    began = time.monotonic()
    await async_wait_until(lambda: not alive(every), 10, what="the grandchildren to be gone after stop")
    print(f"stop: grandchildren {sorted(new)} (one setsid'd) gone {time.monotonic() - began:.2f} s after exit")


def sigkill_supervisor(
    sup: RunningSupervisor, tmp_path: Path, with_workers: bool = False
) -> tuple[list[psutil.Process], int, int]:
    """SIGKILL the supervisor (`with_workers`: and, at once, the gateway and every worker, so that nothing of
    ours is left to clean up); return its tree as seen just before, and the two grandchildren of `parent`."""
    plain, detached = grandchildren(tmp_path / "grandchildren.pids")
    tree = sup.tree()
    assert {plain, detached} <= {p.pid for p in tree} and len(tree) >= 8, tree
    ours = [p for p in tree if with_workers and p.pid != sup.process.pid and title_of(p).startswith("mcp-supervisor:")]
    sup.process.kill()
    for process in ours:
        with contextlib.suppress(psutil.Error):
            process.kill()
    sup.process.wait(5)
    return tree, plain, detached


def title_of(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def grandchildren_servers(tmp_path: Path) -> dict[str, Any]:
    pid_file = tmp_path / "grandchildren.pids"
    return {"parent": echo_entry("parent", "--grandchildren", "--pid-file", str(pid_file)), "plain": echo_entry("p")}


async def test_sigkill_of_supervisor_leaves_nothing_running(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start(supervisor_factory, tmp_path, grandchildren_servers(tmp_path))
    sup.wait_linked({"parent", "plain"})
    tree, _plain, detached = sigkill_supervisor(sup, tmp_path)
    pids = {p.pid for p in tree}
    began = time.monotonic()
    try:
        # A setsid'd grandchild may outlive the tree until the next start; nothing else may.
        await async_wait_until(lambda: not set(alive(pids)) - {detached}, 15, what="the tree to die with its root")
        print(f"\nsupervisor SIGKILL: tree gone in {time.monotonic() - began:.2f} s; left: {alive(pids)}")
    except AssertionError:
        survivors = {p.pid: " ".join(p.cmdline()) for p in tree if p.pid in set(alive(pids)) - {detached}}
        raise AssertionError(f"survived the supervisor's SIGKILL by 15 s: {survivors}") from None
    finally:
        for process in tree:  # a failure must not leave its processes behind (nor fail the fixture's teardown)
            with contextlib.suppress(psutil.Error):
                process.kill()


async def test_next_start_after_supervisor_sigkill_kills_leftovers(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start(supervisor_factory, tmp_path, grandchildren_servers(tmp_path))
    sup.wait_linked({"parent", "plain"})
    # The harshest end: the supervisor, the gateway and every worker SIGKILLed at once (an OOM kill of the
    # tree, `kill -9` of the unit), so no process of ours is left to sweep the backends' helpers.
    tree, plain, detached = sigkill_supervisor(sup, tmp_path, with_workers=True)
    pids = {p.pid for p in tree}
    began = time.monotonic()
    await async_wait_until(
        lambda: not set(alive(pids)) - {plain, detached}, 30, what="gateway, workers and backends to die"
    )
    leftovers = set(alive(pids))
    print(f"\nsupervisor SIGKILL: all but {sorted(leftovers)} gone in {time.monotonic() - began:.2f} s")
    assert detached in leftovers  # a setsid'd grandchild, reparented to init: only the next start can find it

    second = supervisor_factory(sup.config_dir)
    began = time.monotonic()
    # Bounds for a loaded 2-core machine, where a supervisor's start alone can take seconds: not a target.
    await async_wait_until(lambda: not alive(leftovers), 30, what="the next start to kill the leftovers")
    print(f"next start killed leftovers {sorted(leftovers)} within {time.monotonic() - began:.2f} s")
    second.wait_linked({"parent", "plain"})
    assert not pids & {p.pid for p in second.tree()}
    assert "left over by an earlier supervisor" in second.log_path.read_text()


async def restart_cycles(sup: RunningSupervisor, key: str, cycles: int, command_every: int) -> dict[str, Any]:
    """Restart `key` `cycles` times (every `command_every`-th by `mcp-supervisor restart`, else by SIGKILL)."""
    supervisor = psutil.Process(sup.process.pid)
    gateway = next(p for p in supervisor.children() if "gateway" in " ".join(p.cmdline()))
    status = sup.wait_linked({key})[key]
    fds: dict[str, int] = {}
    old_pids: set[int] = set()
    began = time.monotonic()
    async with httpx2.AsyncClient() as http:
        for cycle in range(1, cycles + 1):
            old_pids.add(status["pid"])
            if command_every and cycle % command_every == 0:
                result = await anyio.to_thread.run_sync(cli, sup.config_dir, "restart", key)
                assert result.returncode == 0, result.stdout + result.stderr
            else:
                os.kill(status["pid"], signal.SIGKILL)
            status = await wait_up(http, sup, key, status["generation"] + 1, 15)
            if cycle == 5:
                fds = {"supervisor": supervisor.num_fds(), "gateway": gateway.num_fds()}
    duration = time.monotonic() - began

    def settled() -> bool:
        return supervisor.num_fds() <= fds["supervisor"] + 5 and not zombies_below(sup.process.pid)

    try:
        await async_wait_until(settled, 5, what="fds and zombies to settle")
    finally:
        print(
            f"\n{cycles} restart cycles in {duration:.1f} s ({duration / cycles * 1000:.0f} ms per cycle); "
            f"supervisor fds {fds.get('supervisor')} -> {supervisor.num_fds()}, gateway fds {fds.get('gateway')} -> "
            f"{gateway.num_fds()}; zombies {zombies_below(sup.process.pid)}"
        )
    assert gateway.num_fds() <= fds["gateway"] + 5
    await async_wait_until(lambda: not alive(old_pids), 5, what="every old worker to be gone")
    return status


async def test_hundred_sigkill_cycles_leave_no_zombies_and_no_fd_growth(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    supervision = {"maxRestarts": 1000, "backoffBase": 0.01, "backoffMax": 0.05}
    sup = start(
        supervisor_factory, tmp_path, {"tiny": tiny_entry("tiny", supervision=supervision), "other": tiny_entry("o")}
    )
    other = sup.wait_linked({"tiny", "other"})["other"]
    status = await restart_cycles(sup, "tiny", 100, command_every=0)
    assert status["generation"] == 101 and status["restarts"] == 100
    assert sup.backends()["other"]["pid"] == other["pid"]
    async with mcp_client(sup.url) as client:
        assert text_of(await client.call_tool("tiny--echo", {"text": "still"})) == "tiny: still"
        assert text_of(await client.call_tool("other--echo", {"text": "x"})) == "o: x"


async def test_hundred_mixed_restart_cycles_leave_no_zombies_and_no_fd_growth(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    supervision = {"maxRestarts": 1000, "backoffBase": 0.01, "backoffMax": 0.05}
    sup = start(
        supervisor_factory, tmp_path, {"tiny": tiny_entry("tiny", supervision=supervision), "other": tiny_entry("o")}
    )
    other = sup.wait_linked({"tiny", "other"})["other"]
    status = await restart_cycles(sup, "tiny", 100, command_every=4)  # 25 restart commands, 75 SIGKILLs
    assert status["generation"] == 101
    assert sup.backends()["other"]["pid"] == other["pid"]
    async with mcp_client(sup.url) as client:
        assert text_of(await client.call_tool("tiny--echo", {"text": "still"})) == "tiny: still"


async def test_restart_command_is_prompt_and_touches_nothing_else(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start(supervisor_factory, tmp_path, {"a": tiny_entry("a"), "b": tiny_entry("b")})
    before = sup.wait_linked({"a", "b"})
    began = time.monotonic()
    result = await anyio.to_thread.run_sync(cli, sup.config_dir, "restart", "a")
    took = time.monotonic() - began
    print(f"\n`restart a` returned in {took:.2f} s: {result.stdout.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr
    async with httpx2.AsyncClient() as http:
        after = await wait_up(http, sup, "a", before["a"]["generation"] + 1, 5)
    assert after.get("restarts", 0) == 0  # a commanded restart is not a crash
    assert took < 4.0, f"the restart command took {took:.2f} s\n{sup.log_tail()}"
    assert sup.backends()["b"]["pid"] == before["b"]["pid"], sup.log_tail()
    assert "no heartbeat" not in sup.log_path.read_text(), sup.log_tail()


async def test_rss_limit_restarts_the_worker(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start(
        supervisor_factory,
        tmp_path,
        {"hog": echo_entry("hog", "--leak-mb", "200", supervision={"maxRssMb": 120})},
        MCP_SUPERVISOR_SAMPLE_SECONDS="0.2",
    )
    errors_seen: set[str] = set()
    last: dict[str, Any] = {}
    async with httpx2.AsyncClient() as http:

        async def restarted_for_rss() -> bool:
            status = (await statuses(http, sup)).get("hog")
            if not status:
                return False
            last.update(status)
            if status.get("last_error"):
                errors_seen.add(status["last_error"])
            return status.get("restarts", 0) >= 1 and any("RSS" in error for error in errors_seen)

        began = time.monotonic()
        await async_wait_until(restarted_for_rss, 25, interval=POLL_S, what="a restart for RSS")
    print(f"\nRSS limit: restarted after {time.monotonic() - began:.2f} s; state {last['state']}, errors {errors_seen}")
    assert any("exceeded the 120 MB limit" in error for error in errors_seen), errors_seen
    assert "exceeded the 120 MB limit" in sup.log_path.read_text()


async def test_a_backend_fatal_from_the_start_answers_its_calls_with_why_it_is_down(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    """It never listed a tool, so the gateway has no route for its tools: the call still names the backend
    and why it is down (-32003), not "Unknown tool"."""
    broken = {
        "type": "stdio",
        "command": sys.executable,
        "args": ["-c", "import sys; print('no API key configured', file=sys.stderr); sys.exit(1)"],
        "supervision": {"maxRestarts": 1, "backoffBase": 0.05},
    }
    sup = start(supervisor_factory, tmp_path, {"broken": broken, "other": echo_entry("other")})
    sup.wait_linked({"other"})
    await async_wait_until(lambda: sup.backends()["broken"]["state"] == "FATAL", 30, what="broken to be FATAL")
    async with mcp_client(sup.url) as client:
        with pytest.raises(MCPError) as down:
            await client.call_tool("broken--anything", {})
        assert down.value.error.code == -32003, down.value.error
        message = str(down.value)
        assert 'Backend "broken" is not available' in message and "FATAL" in message, message
        assert "no API key configured" in message, message
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("nobody--anything", {})
        assert unknown.value.error.code == -32602, unknown.value.error
