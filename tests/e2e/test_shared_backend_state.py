"""State a shared backend holds for many sessions: log levels and subscriptions stay per session."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import RunningSupervisor
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_one_sessions_log_level_does_not_silence_another(
    conformance_gateway: RunningSupervisor,
) -> None:
    gateway = conformance_gateway
    quiet: list[str] = []
    chatty: list[str] = []
    async with (
        mcp_client(gateway.url, notifications=quiet) as a,
        mcp_client(gateway.url, notifications=chatty) as b,
    ):
        await b.set_logging_level("debug")
        await a.set_logging_level("error")  # the last word at the backend, were it passed on as is
        await b.call_tool("test_tool_with_logging", {})
        await async_wait_until(lambda: chatty.count("notifications/message") >= 3, 10, what="B's three log lines")
        assert "notifications/message" not in quiet  # info lines are below A's level


async def test_a_closed_session_releases_its_subscriptions(
    conformance_gateway: RunningSupervisor,
) -> None:
    gateway = conformance_gateway
    async with mcp_client(gateway.url) as client:
        await client.subscribe_resource("test://watched-resource")
        await async_wait_until(
            lambda: "subscribed to test://watched-resource" in gateway.log_tail(200),
            10,
            what="the backend to see the subscription",
        )
    # The client went away without unsubscribing: the gateway unsubscribes for it.
    await async_wait_until(
        lambda: "unsubscribed from test://watched-resource" in gateway.log_tail(200),
        10,
        what="the backend to be unsubscribed",
    )
