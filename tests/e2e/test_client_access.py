"""Per-client access (config/clients.json): two clients with different profiles see different tools over /mcp
and /sse, a tool outside a client's view is unknown to it, and a changed file is applied with list_changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import async_wait_until, free_port, mcp_client
from tests.oidc import AuthServer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

KEY_A, KEY_OTHER = "key-of-ci-bot", "key-of-nobody-in-particular"
KEY_OPS = "key-of-the-operator"  # sees every backend: the test's own /health/backends probe


def _clients(ci_bot_servers: list[str]) -> dict[str, Any]:
    return {
        "clients": {
            "ci-bot": {"match": {"keys": [KEY_A]}, "servers": ci_bot_servers},
            "ops": {"match": {"keys": [KEY_OPS]}, "servers": ["*"]},
            "team-b": {
                "match": {"claims": {"client_id": "team-b", "scope": "profile:b"}},
                "servers": ["*"],
                "tools": {"deny": ["alpha--*"]},
            },
            "*": {"servers": []},
        }
    }


@pytest.fixture
def gateway(tmp_path: Path, supervisor_factory: Any, issuer: AuthServer) -> RunningSupervisor:
    port = free_port()
    config = tmp_path / "config"
    write_config(config, {"alpha": stdio_fixture_entry("alpha"), "beta": stdio_fixture_entry("beta")})
    (config / "clients.json").write_text(json.dumps(_clients(["alpha"])))
    sup: RunningSupervisor = supervisor_factory(
        config,
        {
            "OAUTH_ISSUER": issuer.issuer,
            "OAUTH_RESOURCE": f"http://127.0.0.1:{port}/mcp",
            "ALLOWED_KEYS": f"{KEY_A},{KEY_OTHER},{KEY_OPS}",
        },
        port,
    )
    sup.credential = {"X-Api-Key": KEY_OPS}
    sup.wait_linked({"alpha", "beta"})
    return sup


async def test_profiles_differ_over_mcp_and_sse(gateway: RunningSupervisor, issuer: AuthServer) -> None:
    token = issuer.token("team-b", gateway.url, scope="mcp:tools profile:b")
    async with mcp_client(gateway.url, {"X-Api-Key": KEY_A}) as ci_bot:
        names = {tool.name for tool in (await ci_bot.list_tools()).tools}
        assert names and all(name.startswith("alpha--") for name in names)
        assert (await ci_bot.call_tool("alpha--echo", {"text": "hi"})).is_error is not True
        with pytest.raises(MCPError) as refused:
            await ci_bot.call_tool("beta--echo", {"text": "hi"})
        assert refused.value.error.code == -32602
    async with (
        sse_client(f"{gateway.base}/sse", headers={"Authorization": f"Bearer {token}"}) as (read, write),
        ClientSession(read, write) as team_b,
    ):
        await team_b.initialize()
        names = {tool.name for tool in (await team_b.list_tools()).tools}
        assert names and all(name.startswith("beta--") for name in names)
        with pytest.raises(MCPError) as refused:
            await team_b.call_tool("alpha--echo", {"text": "hi"})
        assert refused.value.error.code == -32602
    async with mcp_client(gateway.url, {"X-Api-Key": KEY_OTHER}) as nobody:
        assert (await nobody.list_tools()).tools == []  # the "*" entry: nothing


async def test_a_changed_file_changes_the_view_with_list_changed(gateway: RunningSupervisor) -> None:
    seen: list[str] = []
    async with mcp_client(gateway.url, {"X-Api-Key": KEY_A}, seen) as ci_bot:
        assert not any(t.name.startswith("beta--") for t in (await ci_bot.list_tools()).tools)
        (gateway.config_dir / "clients.json").write_text(json.dumps(_clients(["alpha", "beta"])))
        await async_wait_until(lambda: "notifications/tools/list_changed" in seen, 15, what="list_changed")

        async def widened() -> bool:
            # A list_changed may come first from elsewhere (a backend's catalog refresh, debounced per client):
            # the new view is what the client lists once the reload has reached the gateway.
            return any(tool.name.startswith("beta--") for tool in (await ci_bot.list_tools()).tools)

        await async_wait_until(widened, 15, what="the beta backend's tools in the widened view")
