"""2026-07-28 clients at the gateway: the SDK client pinned to the stateless era (and in auto mode) over /mcp
and stdio, the wire rules of the era checked byte by byte, and subscriptions/listen.

Before this work every modern request got 400 "the Mcp-Session-Id header is required" over /mcp, and over
stdio results came back without `cacheScope` (the pinned SDK client failed on a pydantic error).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import SUPERVISOR_CMD, RunningSupervisor, stdio_fixture_entry, write_config
from tests.e2e.test_aggregation import catalog_entry
from tests.helpers import async_wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "wire-test", "version": "1"},
}


@pytest.fixture
def gateway(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local"), "cat": catalog_entry("cat")})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"local", "cat"})
    return sup


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.parametrize("mode", [MODERN, "auto"])
async def test_sdk_client_in_the_stateless_era_over_mcp(gateway: RunningSupervisor, mode: str) -> None:
    async with Client(gateway.url, mode=mode) as client:
        assert client.protocol_version == MODERN
        if mode == "auto":  # the probe's DiscoverResult (a pinned client synthesizes a minimal one)
            assert client.server_info is not None and client.server_info.name == "mcp-supervisor"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"local--echo", "cat--count"} <= names
        assert text_of(await client.call_tool("local--echo", {"text": "modern"})) == "local: modern"
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("local--nope", {})
        assert unknown.value.error.code == -32602
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        assert "cat--greet" in prompts
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        assert resources, resources
        read = await client.read_resource(resources[0])
        assert read.contents


async def test_sdk_client_in_the_stateless_era_over_stdio(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    env = {"MCP_SUPERVISOR_STATE_DIR": str(tmp_path / "state")}
    params = StdioServerParameters(command=SUPERVISOR_CMD, args=["stdio", "--config-dir", str(config_dir)], env=env)
    with anyio.fail_after(60):
        async with Client(params, mode=MODERN) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "local--echo" in names
            # The envelope is the client's, not the backend's: a handshake-era backend never sees it.
            assert text_of(await client.call_tool("local--echo", {"text": "pipe"})) == "local: pipe"


async def post(http: httpx2.AsyncClient, url: str, body: dict[str, Any], **headers: str) -> httpx2.Response:
    base = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    return await http.post(url, content=json.dumps(body), headers={**base, **headers})


def modern_request(method: str, params: dict[str, Any] | None = None, request_id: int | str = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**(params or {}), "_meta": ENVELOPE}}


def routing(method: str, name: str | None = None) -> dict[str, str]:
    headers = {"mcp-protocol-version": MODERN, "mcp-method": method}
    if name is not None:
        headers["mcp-name"] = name
    return headers


async def test_the_wire_rules_of_the_stateless_era(gateway: RunningSupervisor) -> None:
    url = gateway.url
    async with httpx2.AsyncClient(timeout=20) as http:
        discover = await post(http, url, modern_request("server/discover"), **routing("server/discover"))
        assert discover.status_code == 200, discover.text
        assert "mcp-session-id" not in discover.headers  # no session minted
        result = discover.json()["result"]
        assert result["resultType"] == "complete"
        assert result["supportedVersions"] == [MODERN]
        assert {"tools", "prompts", "resources"} <= set(result["capabilities"])
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-supervisor"
        assert result["cacheScope"] == "public" and result["ttlMs"] > 0  # every backend is up: cacheable

        listed = (await post(http, url, modern_request("tools/list"), **routing("tools/list"))).json()["result"]
        assert listed["resultType"] == "complete" and listed["cacheScope"] == "public"
        assert isinstance(listed["ttlMs"], int) and listed["ttlMs"] >= 0
        assert "local--echo" in {tool["name"] for tool in listed["tools"]}

        call = modern_request("tools/call", {"name": "local--echo", "arguments": {"text": "x"}})
        called = await post(http, url, call, **routing("tools/call", "local--echo"))
        assert called.status_code == 200 and called.json()["result"]["resultType"] == "complete"
        assert "ttlMs" not in called.json()["result"]  # not a cacheable method

        async def error_of(response: httpx2.Response, status: int) -> dict[str, Any]:
            assert response.status_code == status, (response.status_code, response.text)
            error: dict[str, Any] = response.json()["error"]
            return error

        # Routing headers: missing Mcp-Method, a mismatched Mcp-Name.
        no_method = {"mcp-protocol-version": MODERN}
        assert (await error_of(await post(http, url, call, **no_method), 400))["code"] == -32020
        wrong_name = routing("tools/call", "local--add")
        assert (await error_of(await post(http, url, call, **wrong_name), 400))["code"] == -32020
        # An unsupported version names the supported ones.
        future = {**modern_request("tools/list")}
        future["params"]["_meta"] = {**ENVELOPE, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
        unsupported = await error_of(
            await post(http, url, future, **{"mcp-protocol-version": "2099-01-01", "mcp-method": "tools/list"}), 400
        )
        assert unsupported["code"] == -32022 and unsupported["data"]["supported"] == [MODERN]
        # No envelope at all under a modern version header.
        bare = {"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {}}
        assert (await error_of(await post(http, url, bare, **routing("tools/list")), 400))["code"] == -32602
        # Unknown methods, and the handshake-era ones this era removed.
        for method in ("no/such", "ping", "logging/setLevel", "resources/subscribe"):
            unknown = await post(http, url, modern_request(method), **routing(method))
            assert (await error_of(unknown, 404))["code"] == -32601, method
        # A resource nobody serves is -32602 in this era (-32002 is gone).
        read = modern_request("resources/read", {"uri": "nowhere://x"})
        missing = await post(http, url, read, **routing("resources/read", "nowhere://x"))
        assert (await error_of(missing, 400))["code"] == -32602
        # POST only; notifications are accepted and need no answer.
        for verb in ("GET", "DELETE"):
            response = await http.request(verb, url, headers={"mcp-protocol-version": MODERN})
            assert response.status_code == 405 and response.headers["allow"] == "POST"
        note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}
        assert (await post(http, url, note, **routing("notifications/cancelled"))).status_code == 202


async def test_progress_and_log_level_per_request(gateway: RunningSupervisor) -> None:
    """Progress comes on the request's own stream; log lines only when the request asked, at its level."""
    url = gateway.url
    call = modern_request("tools/call", {"name": "cat--count", "arguments": {"n": 3}})
    call["params"]["_meta"] = {**ENVELOPE, "progressToken": "tok"}
    async with httpx2.AsyncClient(timeout=20) as http:
        quiet = await post(http, url, call, **routing("tools/call", "cat--count"))
        quiet_messages = sse_messages(quiet.text) if quiet.headers["content-type"].startswith("text/") else []
        assert [m for m in quiet_messages if m.get("method") == "notifications/message"] == []
        progress = [m["params"]["progressToken"] for m in quiet_messages if m.get("method") == "notifications/progress"]
        assert progress == ["tok"] * 3
        call["params"]["_meta"]["io.modelcontextprotocol/logLevel"] = "debug"
        loud = await post(http, url, call, **routing("tools/call", "cat--count"))
        messages = sse_messages(loud.text)
        logs = [m for m in messages if m.get("method") == "notifications/message"]
        assert logs, messages
        assert messages[-1]["result"]["resultType"] == "complete"


def sse_messages(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]


async def frames(response: httpx2.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])


def listen(
    http: httpx2.AsyncClient, url: str, notifications: dict[str, Any], request_id: int | str, **headers: str
) -> AbstractAsyncContextManager[httpx2.Response]:
    """A subscriptions/listen request, its response read as it streams (`frames`)."""
    body = modern_request("subscriptions/listen", {"notifications": notifications}, request_id)
    sent = {"accept": "application/json, text/event-stream", "content-type": "application/json", **headers}
    return http.stream("POST", url, content=json.dumps(body), headers={**sent, **routing("subscriptions/listen")})


async def test_subscriptions_listen_acknowledges_and_carries_catalog_changes(
    gateway: RunningSupervisor,
) -> None:
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(20, read=30)) as http,
        listen(http, gateway.url, {"toolsListChanged": True}, 77) as stream,
    ):
        assert stream.status_code == 200
        received = frames(stream)
        with anyio.fail_after(15):
            ack = await anext(received)
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 77
        assert ack["params"]["notifications"] == {"toolsListChanged": True}
        # The gateway's own catalog changes: a tool_config.json edit hides a tool.
        (gateway.config_dir / "tool_config.json").write_text(json.dumps({"tools": {"local--add": {"enabled": False}}}))
        with anyio.fail_after(20):
            changed = await anext(received)
        assert changed["method"] == "notifications/tools/list_changed"
        assert changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 77


async def test_subscriptions_listen_carries_a_backends_resource_updates(conformance_gateway: RunningSupervisor) -> None:
    """Subscribed at the owning backend while the stream holds it; its updates arrive tagged; unknown or
    unsubscribable URIs are left out of the acknowledgement."""
    watched, unknown = "test://watched-resource", "nowhere://x"
    wanted = {"resourceSubscriptions": [watched, unknown], "resourcesListChanged": True}
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(20, read=30)) as http,
        listen(http, conformance_gateway.url, wanted, "sub-1") as stream,
    ):
        received = frames(stream)
        with anyio.fail_after(15):
            ack = await anext(received)
        assert ack["params"]["notifications"] == {"resourcesListChanged": True, "resourceSubscriptions": [watched]}
        with anyio.fail_after(20):
            update = await anext(received)
        assert update["method"] == "notifications/resources/updated"
        assert update["params"]["uri"] == watched
        assert update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"


async def test_listen_streams_are_bounded_per_credential(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup = supervisor_factory(config_dir, {"MAX_SESSIONS_PER_CREDENTIAL": "2", "ALLOWED_KEYS": "ann,bob"})
    sup.wait_linked({"local"})

    def opening(key: str, request_id: int) -> AbstractAsyncContextManager[httpx2.Response]:
        return listen(http, sup.url, {"toolsListChanged": True}, request_id, **{"x-api-key": key})

    async with httpx2.AsyncClient(timeout=httpx2.Timeout(20, read=30)) as http:
        async with opening("ann", 1) as first, opening("ann", 2) as second:
            held = [frames(first), frames(second)]  # referenced: a dropped reader closes its stream
            for reader in held:
                with anyio.fail_after(15):
                    assert (await anext(reader))["method"] == "notifications/subscriptions/acknowledged"
            async with opening("ann", 3) as third:
                assert third.status_code == 503
                await third.aread()
                assert "quota" in third.json()["error"]["message"]
            async with opening("bob", 4) as other:  # another credential is not crowded out
                with anyio.fail_after(15):
                    assert (await anext(frames(other)))["method"] == "notifications/subscriptions/acknowledged"
        # Closed streams free their places: once the gateway has seen the connections close, which happens on
        # its own loop after the client's close returns (a reopening that comes first may still meet the quota).

        async def reopened() -> bool:
            async with opening("ann", 5) as again:
                if again.status_code == 503:
                    await again.aread()
                    return False
                with anyio.fail_after(15):
                    return (await anext(frames(again)))["method"] == "notifications/subscriptions/acknowledged"

        await async_wait_until(reopened, 10, interval=0.1, what="the closed streams' places to be free")


async def test_per_client_profiles_hold_for_modern_requests(tmp_path: Path, supervisor_factory: Any) -> None:
    """clients.json is enforced per request in the stateless era too, and makes the lists' cacheScope private."""
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local"), "cat": catalog_entry("cat")})
    clients = {"clients": {"ci": {"match": {"keys": ["ci-key"]}, "servers": ["local"]}, "*": {"servers": ["*"]}}}
    (config_dir / "clients.json").write_text(json.dumps(clients))
    sup = supervisor_factory(config_dir, {"ALLOWED_KEYS": "ci-key,all-key"})
    sup.credential = {"X-Api-Key": "all-key"}  # /health/backends shows each key its own view
    sup.wait_linked({"local", "cat"})
    seen: dict[str, set[str]] = {}
    for key in ("ci-key", "all-key"):
        async with httpx2.AsyncClient(headers={"x-api-key": key}, timeout=30) as http:
            transport = streamable_http_client(sup.url, http_client=http)
            async with Client(transport, mode=MODERN) as client:
                seen[key] = {tool.name for tool in (await client.list_tools()).tools}
                if key == "ci-key":
                    with pytest.raises(MCPError) as hidden:
                        await client.call_tool("cat--count", {"n": 1})
                    assert hidden.value.error.code == -32602
            listed = await post(http, sup.url, modern_request("tools/list"), **routing("tools/list"))
            assert listed.json()["result"]["cacheScope"] == "private"
    assert seen["ci-key"] == {"local--echo", "local--add", "local--slow", "local--whoami"}
    assert "cat--count" in seen["all-key"]


async def test_a_stopping_gateway_ends_listen_streams_gracefully(tmp_path: Path, supervisor_factory: Any) -> None:
    """The listen request gets its result (the spec's graceful closure) before the connection closes."""
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup = supervisor_factory(config_dir)
    sup.wait_linked({"local"})
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(20, read=30)) as http,
        listen(http, sup.url, {"toolsListChanged": True}, 9) as stream,
    ):
        received = frames(stream)
        with anyio.fail_after(15):
            assert (await anext(received))["method"] == "notifications/subscriptions/acknowledged"
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, sup.stop)
            with anyio.fail_after(20):
                last = await anext(received)
        assert last["id"] == 9 and last["result"]["resultType"] == "complete"
        assert last["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 9
