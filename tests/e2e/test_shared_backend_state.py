"""State a shared backend holds for many sessions: log levels and subscriptions stay per session."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, RunningSupervisor, write_config
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CONFORMANCE_SERVER = str(ROOT / "tests" / "fixtures" / "conformance_server.py")


@pytest.fixture
def shared(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    entry = {"type": "stdio", "command": sys.executable, "args": [CONFORMANCE_SERVER], "namePrefix": ""}
    write_config(config_dir, {"conformance": entry})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"conformance"})
    return sup


async def test_one_sessions_log_level_does_not_silence_another(shared: RunningSupervisor) -> None:
    quiet: list[str] = []
    chatty: list[str] = []
    async with mcp_client(shared.url, notifications=quiet) as a, mcp_client(shared.url, notifications=chatty) as b:
        await b.set_logging_level("debug")
        await a.set_logging_level("error")  # the last word at the backend, were it passed on as is
        await b.call_tool("test_tool_with_logging", {})
        await async_wait_until(lambda: chatty.count("notifications/message") >= 3, 10, what="B's three log lines")
        assert "notifications/message" not in quiet  # info lines are below A's level


async def test_a_closed_session_releases_its_subscriptions(shared: RunningSupervisor) -> None:
    async with mcp_client(shared.url) as client:
        await client.subscribe_resource("test://watched-resource")
        await async_wait_until(
            lambda: "subscribed to test://watched-resource" in shared.log_tail(200),
            10,
            what="the backend to see the subscription",
        )
    # The client went away without unsubscribing: the gateway unsubscribes for it.
    await async_wait_until(
        lambda: "unsubscribed from test://watched-resource" in shared.log_tail(200),
        10,
        what="the backend to be unsubscribed",
    )
