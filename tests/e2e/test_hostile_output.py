"""Issue 22: the supervisor is nobody's buffer. A hostile stdio backend (`tests/fixtures/stderr_attack_server.py`)
attacks the reader of its stderr, the supervisor at the root of the tree: a line that never ends, a flood of
lines, and lines forged to look like other processes' log lines or to drive the operator's terminal. The
supervisor stays small and quick, its log bounded and honest, and the other backend keeps serving.

Every wait is a bounded poll; the supervisor fixture stops the whole tree. Figures are printed (`pytest -s`).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp import ClientSession

from tests.e2e.conftest import ROOT, RunningSupervisor, write_config
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ATTACK_SERVER = ROOT / "tests" / "fixtures" / "stderr_attack_server.py"
TINY_SERVER = ROOT / "tests" / "fixtures" / "tiny_server.py"
MIB = 1024 * 1024
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def start(tmp_path: Path, factory: Any, attack: str) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(
        config_dir,
        {
            "attacker": {"type": "stdio", "command": sys.executable, "args": [str(ATTACK_SERVER), "--attack", attack]},
            "victim": {"type": "stdio", "command": sys.executable, "args": [str(TINY_SERVER), "--name", "victim"]},
        },
    )
    sup: RunningSupervisor = factory(config_dir)
    sup.wait_linked({"attacker", "victim"})
    return sup


def last_stderr(sup: RunningSupervisor) -> str:
    """The attacker's `last_stderr` as `status --json` shows it (the supervisor's own, live)."""
    return str(sup.status_entries()["attacker"]["last_stderr"])


async def text_of(client: ClientSession, tool: str, arguments: dict[str, Any] | None = None) -> str:
    result = await client.call_tool(tool, arguments or {})
    assert not result.is_error, result
    return str(result.content[0].text)  # type: ignore[union-attr]


async def attack_until_done(sup: RunningSupervisor, timeout: float, max_growth: int | None = None) -> dict[str, float]:
    """Start the attack and wait for it to be written (the supervisor read it: the pipe blocks otherwise), while the
    victim is called and the supervisor's memory watched. Returns the figures."""
    supervisor = psutil.Process(sup.process.pid)
    rss0, cpu0 = supervisor.memory_info().rss, sum(supervisor.cpu_times()[:2])
    peak, slowest, started = rss0, 0.0, time.monotonic()
    async with mcp_client(sup.url) as client:
        await text_of(client, "attacker--start")
        while True:
            peak = max(peak, supervisor.memory_info().rss)
            if max_growth is not None:
                assert peak - rss0 < max_growth, f"the supervisor grew by {(peak - rss0) / MIB:.0f} MiB"
            before = time.monotonic()
            with anyio.fail_after(10):
                assert await text_of(client, "victim--echo", {"text": "hi"}) == "victim: hi"
            slowest = max(slowest, time.monotonic() - before)
            progress = json.loads(await text_of(client, "attacker--progress"))
            if progress["done"]:
                break
            assert time.monotonic() - started < timeout, f"the attack was not read within {timeout} s: {progress}"
            await anyio.sleep(0.2)
    figures = {
        "seconds": time.monotonic() - started,
        "rss_before_mib": rss0 / MIB,
        "rss_peak_mib": peak / MIB,
        "cpu_s": sum(supervisor.cpu_times()[:2]) - cpu0,
        "slowest_victim_call_s": slowest,
    }
    print(f"\n{figures}")
    return figures


async def test_a_line_that_never_ends_is_cut_not_buffered(tmp_path: Path, supervisor_factory: Any) -> None:
    """120 MiB without a newline: the supervisor keeps 64 KiB of it, not 120 MiB copied over and over."""
    sup = start(tmp_path, supervisor_factory, "blob:120")
    figures = await attack_until_done(sup, timeout=90, max_growth=30 * MIB)
    assert figures["cpu_s"] < 10, figures
    assert figures["slowest_victim_call_s"] < 2, figures
    await async_wait_until(lambda: "attacker| blob done" in sup.log_path.read_text(), 10, what="the line after")
    cut = [line for line in sup.log_path.read_text().splitlines() if line.startswith("attacker| xxx")]
    assert len(cut) == 1 and len(cut[0]) < 4096, [line[:200] for line in cut]  # echoed once, shortened
    assert last_stderr(sup) == "blob done"  # `status` shows its last line


async def test_a_flood_of_lines_is_rate_limited_and_counted(tmp_path: Path, supervisor_factory: Any) -> None:
    """100 MiB of short lines: the supervisor's log takes a bounded share of them and says how many it left out."""
    sup = start(tmp_path, supervisor_factory, "flood:100")
    size0 = sup.log_path.stat().st_size
    figures = await attack_until_done(sup, timeout=120)
    total = (MIB // 100) * 100 + 1  # the flood's lines and `flood done`
    report = re.compile(r"worker\[attacker\]: (\d+) backend stderr lines not echoed \(rate limit")

    def accounted() -> tuple[int, int] | None:
        lines = sup.log_path.read_text(errors="replace").splitlines()
        echoed = sum(1 for line in lines if line.startswith("attacker| "))
        dropped = sum(int(match.group(1)) for line in lines if (match := report.search(line)))
        return (echoed, dropped) if echoed + dropped == total else None

    echoed, dropped = await async_wait_until(accounted, 30, what="every line echoed or counted")
    growth = sup.log_path.stat().st_size - size0
    print(f"log +{growth / MIB:.2f} MiB, {echoed} lines echoed, {dropped} counted as not echoed; {figures}")
    assert growth < 2 * MIB and dropped > 0.9 * total
    assert figures["cpu_s"] < 15 and figures["slowest_victim_call_s"] < 2, figures


async def test_forged_log_lines_keep_the_backends_prefix_and_lose_their_controls(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    """Lines shaped like the victim worker's, the gateway's or the supervisor's, and terminal escapes: in the
    supervisor's log each is the attacker's own line, prefixed, its control characters escaped."""
    sup = start(tmp_path, supervisor_factory, "forge")
    await attack_until_done(sup, timeout=30)

    def forged() -> list[str] | None:
        found = [line for line in sup.log_path.read_text(errors="replace").splitlines() if "forged-" in line]
        return found if any("forged-colour" in line for line in found) else None

    lines = await async_wait_until(forged, 10, what="the forged lines in the supervisor's log")
    assert len(lines) == 8, lines
    for line in lines:
        assert line.startswith("attacker| "), line
        assert not CONTROLS.search(line), repr(line)
    assert any("\\x1b[31mred" in line and "\\x9b31m" in line and "\\x7f" in line for line in lines), lines
    assert any("forged-carriage-return\\rvictim| overwritten" in line for line in lines), lines
    # Its worker's own lines are still the worker's: unprefixed, with their header.
    log = sup.log_path.read_text(errors="replace")
    assert re.search(r"^\d{4}-\d\d-\d\d [\d:,]+ worker\[attacker\] INFO ", log, re.MULTILINE), log[-3000:]
    last = last_stderr(sup)
    assert last.startswith("forged-colour") and not CONTROLS.search(last) and "\\x1b[31m" in last, repr(last)
