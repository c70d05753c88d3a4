"""No process misses a heartbeat for work of its own (issue 23), on a 2-core machine made busy by CPU hogs:
- remote workers (Streamable HTTP and SSE) beside 16 stdio ones start without being killed as hung (the MCP SDK
  they need is preloaded by the zygote, or imported off their beating loop);
- the gateway's first 2026-07-28 requests, four 1 MB calls at once, do not freeze it past its heartbeat (what the
  modern path imports is loaded at the gateway's start)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.e2e.test_modern_clients import modern_request, post, routing
from tests.helpers import stop_process, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

HOGS = 3
TINY = str(Path(__file__).parents[1] / "fixtures" / "tiny_server.py")


@pytest.fixture
def cpu_hogs() -> Iterator[None]:
    """Three busy loops on two cores, killed at teardown."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(HOGS)]
    try:
        yield
    finally:
        for hog in hogs:
            stop_process(hog, 2)


def _health(sup: RunningSupervisor) -> dict[str, Any]:
    response = httpx2.get(f"{sup.base}/health/backends", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _missed_beats(sup: RunningSupervisor) -> list[str]:
    return [line for line in sup.log_path.read_text(errors="replace").splitlines() if "no heartbeat for" in line]


async def test_remote_workers_start_under_load_without_a_missed_heartbeat(
    tmp_path: Path,
    supervisor_factory: Any,
    http_backend: tuple[int, str],
    sse_backend: tuple[int, str],
    cpu_hogs: None,
) -> None:
    config_dir = tmp_path / "config"
    # Light stdio backends (no SDK import of their own): the point is the remote workers' start, not the
    # stdio fixtures' 30 s initialize timeout on a machine this busy.
    servers: dict[str, Any] = {
        f"s{index}": {"type": "stdio", "command": sys.executable, "args": [TINY, "--name", f"s{index}"]}
        for index in range(16)
    }
    servers["remote"] = {"type": "http", "url": f"http://127.0.0.1:{http_backend[0]}/mcp", "apiKey": http_backend[1]}
    servers["legacy"] = {"type": "sse", "url": f"http://127.0.0.1:{sse_backend[0]}/sse", "bearerToken": sse_backend[1]}
    write_config(config_dir, servers)
    sup: RunningSupervisor = supervisor_factory(config_dir)
    statuses = sup.wait_linked(set(servers), timeout=180)
    restarted = {key: status.get("restarts", 0) for key, status in statuses.items() if status.get("restarts", 0)}
    assert not restarted, f"restarted during start: {restarted}\n{_missed_beats(sup)}"
    assert not _missed_beats(sup)


async def test_gateway_survives_four_large_modern_calls_as_its_first_requests(
    tmp_path: Path, supervisor_factory: Any, cpu_hogs: None
) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"local"}, timeout=120)
    before = _health(sup)["gateway"]
    text = "x" * (1024 * 1024)
    async with httpx2.AsyncClient(timeout=120) as http:
        calls = [
            post(
                http,
                sup.url,
                modern_request("tools/call", {"name": "local--echo", "arguments": {"text": text}}, index),
                **routing("tools/call", "local--echo"),
            )
            for index in range(4)
        ]
        replies = await asyncio.gather(*calls)
    for reply in replies:
        assert reply.status_code == 200, reply.text[:300]
        assert len(reply.content) > len(text), reply.text[:300]
    after = wait_until(lambda: _health(sup)["gateway"], 30, what="the gateway's status")
    assert after["pid"] == before["pid"] and after.get("restarts", 0) == 0, (before, after, _missed_beats(sup))
    assert not _missed_beats(sup)
