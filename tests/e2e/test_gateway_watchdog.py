"""The gateway is watched like the workers: a hung gateway (here SIGSTOPped) is killed and replaced, and the
workers, with their backends, stay as they are."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import mcp_client, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def _gateway(sup: RunningSupervisor) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] | None = httpx2.get(f"{sup.base}/health/backends", timeout=1).json()["gateway"]
    except httpx2.HTTPError:
        return None  # the stopped gateway accepts connections (the kernel does) but never answers
    return status


async def test_a_stopped_gateway_is_replaced(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"one": stdio_fixture_entry("one")})
    sup: RunningSupervisor = supervisor_factory(config_dir, {"HEARTBEAT_TIMEOUT_SECONDS": "2"})
    worker_pid = sup.wait_linked({"one"})["one"]["pid"]
    old = wait_until(lambda: _gateway(sup), 10, what="the gateway's status")["pid"]

    os.kill(old, signal.SIGSTOP)
    stopped_at = time.monotonic()
    new = wait_until(
        lambda: (status := _gateway(sup)) is not None and status["pid"] != old and status,
        20,
        what="a new gateway",
    )
    print(f"\nSIGSTOPped gateway replaced in {time.monotonic() - stopped_at:.2f} s (heartbeatTimeout 2 s)")
    assert new["state"] == "RUNNING" and new["restarts"] == 1
    assert "gateway: no heartbeat for" in sup.log_path.read_text()
    assert sup.wait_linked({"one"})["one"]["pid"] == worker_pid  # the worker and its backend were not touched
    async with mcp_client(sup.url) as client:
        result = await client.call_tool("one--echo", {"text": "after"})
        assert not result.is_error
