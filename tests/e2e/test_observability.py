"""What operators look at: `status`, `logs`, /health/backends, /metrics — and SIGHUP as a reload."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.e2e.test_reload import cli, pids
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def observed(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local"), "other": stdio_fixture_entry("other")})
    sup: RunningSupervisor = supervisor_factory(config_dir, {"MCP_SUPERVISOR_SAMPLE_SECONDS": "0.2"})
    sup.wait_linked({"local", "other"})
    return sup


def metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(selector)}[^}}]*\}} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{{{selector}}} not in /metrics"
    return float(match.group(1))


async def test_metrics_count_calls_errors_and_latency(observed: RunningSupervisor) -> None:
    async with mcp_client(observed.url) as client:
        for index in range(7):
            await client.call_tool("local--echo", {"text": str(index)})
        await client.call_tool("local--add", {"a": "not a number", "b": 1})  # the backend answers with an error
    text = httpx2.get(f"{observed.base}/metrics", timeout=5).text
    assert metric(text, "mcp_backend_up", backend="local") == 1
    assert metric(text, "mcp_backend_calls_total", backend="local") == 8
    assert metric(text, "mcp_backend_request_seconds_count", backend="local") == 8
    assert metric(text, "mcp_backend_request_seconds_bucket", backend="local", le="+Inf") == 8
    assert metric(text, "mcp_backend_restarts_total", backend="other") == 0
    await async_wait_until(
        lambda: (
            metric(httpx2.get(f"{observed.base}/metrics", timeout=5).text, "mcp_backend_rss_bytes", backend="local")
            > 10_000_000
        ),
        10,
        what="an RSS sample",
    )
    assert "# TYPE mcp_backend_request_seconds histogram" in text


async def test_status_table_json_and_logs(observed: RunningSupervisor) -> None:
    config_dir = observed.config_dir
    status = json.loads(cli(config_dir, "status", "--json").stdout)
    assert status["gateway"]["state"] == "RUNNING"
    backends = {b["key"]: b for b in status["backends"]}
    assert backends["local"]["state"] == "RUNNING" and backends["local"]["pid"] > 0
    table = cli(config_dir, "status").stdout
    assert re.search(r"^local\s+stdio\s+RUNNING\s+\d+", table, re.MULTILINE), table
    for column in ("UPTIME", "RESTARTS", "RSS", "CPU%"):
        assert column in table
    logs = cli(config_dir, "logs", "local", "-n", "20")
    assert logs.returncode == 0 and "worker[local]" in logs.stdout
    missing = cli(config_dir, "logs", "nope")
    assert missing.returncode == 1 and "no log" in missing.stderr


async def test_sighup_reloads(observed: RunningSupervisor) -> None:
    before = pids(observed)
    observed.process.send_signal(signal.SIGHUP)  # nothing changed on disk: only the signal asks for it

    def reloaded() -> bool:
        log = observed.log_path.read_text()
        return "SIGHUP: reloading" in log and "Reloaded: 0 added, 0 removed, 0 changed." in log

    await async_wait_until(reloaded, 10, what="the SIGHUP reload")
    assert pids(observed) == before


async def test_the_gateway_sees_its_own_fresh_samples(observed: RunningSupervisor) -> None:
    """The gateway's own row is sampled like the workers', not frozen at the snapshot it got at start."""

    async def gateway() -> dict[str, Any]:
        async with httpx2.AsyncClient(timeout=5) as http:
            status: dict[str, Any] = (await http.get(f"{observed.base}/health/backends")).json()["gateway"]
            return status

    first = await gateway()
    assert first["type"] == "gateway" and first["state"] == "RUNNING"

    def reading(status: dict[str, Any]) -> tuple[int, float]:
        return status.get("rss_bytes", 0), status.get("cpu_percent", 0.0)

    async def resampled() -> bool:
        # A sample is published only when it differs from the last beyond idle noise (health.py), and an idle
        # gateway may keep its RSS to the page: keep it busy, so that its CPU share moves between samples.
        async with httpx2.AsyncClient(timeout=5) as http:
            for _ in range(40):
                await http.get(f"{observed.base}/health")
        now = await gateway()
        return now.get("rss_bytes", 0) > 10 * 1024 * 1024 and reading(now) != reading(first)

    await async_wait_until(resampled, 30, what="a fresh sample of the gateway's RSS and CPU")


async def test_library_loggers_stay_at_warning_so_sse_calls_do_not_flood_the_log(
    tmp_path: Path, supervisor_factory: Any, sse_backend: tuple[int, str]
) -> None:
    """The HTTP client library logs `HTTP Request: POST http://…/message?sessionId=…` at INFO for every call
    to an SSE backend: at LOGGING=info those lines must not reach the log."""
    port, token = sse_backend
    config_dir = tmp_path / "config"
    write_config(config_dir, {"legacy": {"type": "sse", "url": f"http://127.0.0.1:{port}/sse", "bearerToken": token}})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"legacy"})
    async with mcp_client(sup.url) as client:
        for index in range(3):
            result = await client.call_tool("legacy--echo", {"text": str(index)})
            assert not result.is_error, result
    log = sup.log_path.read_text(errors="replace")
    assert "Backend legacy is ready" in log, log[-3000:]  # our own INFO lines still come through
    assert "HTTP Request:" not in log, [line for line in log.splitlines() if "HTTP Request:" in line][:3]
