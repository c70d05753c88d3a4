"""Workers speak each backend's protocol era (issue 13, "Workers"), driven through the real supervisor by the
official SDK client in the handshake era (the gateway speaks only that to clients today).

Backends: tiny_server.py (raw, handshake only), the SDK's echo_server.py over stdio and Streamable HTTP (both
eras; the worker picks 2026-07-28) and pinned to "legacy", the SDK over HTTP+SSE (handshake by definition), and
modern_only_server.py over stdio and Streamable HTTP (2026-07-28 only; it logs what it receives).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import ROOT, SUPERVISOR_CMD, RunningSupervisor, alive, start_supervisor, write_config
from tests.helpers import async_wait_until, free_port, port_open, stop_process, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

FIXTURES = ROOT / "tests" / "fixtures"
TINY = str(FIXTURES / "tiny_server.py")
ECHO = str(FIXTURES / "echo_server.py")
MODERN = str(FIXTURES / "modern_only_server.py")
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
    "io.modelcontextprotocol/clientInfo": {"name": "a-modern-client", "version": "9"},
    "io.modelcontextprotocol/logLevel": "debug",
}


def stdio(*args: str, **extra: Any) -> dict[str, Any]:
    return {"type": "stdio", "command": sys.executable, "args": list(args), **extra}


@dataclass
class Eras:
    sup: RunningSupervisor
    logs: Path

    def received(self, key: str) -> list[dict[str, Any]]:
        """What the modern fixture behind `key` logged (one JSON object per message or event)."""
        path = self.logs / f"{key}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def eras(
    tmp_path_factory: pytest.TempPathFactory, http_backend: tuple[int, str], sse_backend: tuple[int, str]
) -> Iterator[Eras]:
    root = tmp_path_factory.mktemp("eras")
    logs = root / "logs"
    logs.mkdir()
    port = free_port()
    modern_http = subprocess.Popen(
        [
            sys.executable,
            MODERN,
            "--http",
            str(port),
            "--name",
            "modern-http",
            "--log",
            str(logs / "modern_http.jsonl"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sup: RunningSupervisor | None = None
    try:
        wait_until(lambda: port_open(port), 30, what="the modern-only HTTP fixture")
        servers = {
            "tiny": stdio(TINY),
            "sdk": stdio(ECHO, "--name", "sdk"),
            "sdk_legacy": stdio(ECHO, "--name", "sdk_legacy", protocol="legacy"),
            "modern": stdio(MODERN, "--log", str(logs / "modern.jsonl"), sandbox={"writePaths": [str(logs)]}),
            "modern_http": {"type": "http", "url": f"http://127.0.0.1:{port}/mcp"},
            "sdk_http": {"type": "http", "url": f"http://127.0.0.1:{http_backend[0]}/mcp", "apiKey": http_backend[1]},
            "sse": {"type": "sse", "url": f"http://127.0.0.1:{sse_backend[0]}/sse", "bearerToken": sse_backend[1]},
        }
        config_dir = root / "config"
        # A name outside MCP's alphabet is withheld (docs/security.md) unless the operator renames it: the
        # backend still gets its own name, grüße, in the Mcp-Name header.
        write_config(config_dir, servers, {"modern_http--grüße": {"exposedName": "modern_http--gruesse"}})
        sup = start_supervisor(config_dir)
        sup.wait_linked(set(servers), timeout=60)
        yield Eras(sup, logs)
    finally:
        if sup is not None:
            sup.stop()
            wait_until(lambda: not alive(sup.seen_pids), 10, what="the supervisor's tree to be gone")
        stop_process(modern_http)


@contextlib.asynccontextmanager
async def legacy_client(url: str, seen: list[dict[str, Any]] | None = None) -> AsyncIterator[ClientSession]:
    """The SDK client in the handshake era (initialize first); every notification it gets goes to `seen`."""

    async def record(message: Any) -> None:
        if seen is not None and not isinstance(message, Exception):
            seen.append(message.model_dump(by_alias=True, mode="json", exclude_none=True))

    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, message_handler=record) as session,
    ):
        await session.initialize()
        yield session


async def has_tool(client: ClientSession, name: str) -> bool:
    return any(tool.name == name for tool in (await client.list_tools()).tools)


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def test_each_worker_reports_its_backends_era_and_a_legacy_client_reaches_them_all(eras: Eras) -> None:
    backends = eras.sup.status_entries()
    assert {key: (b["era"], b["protocol_version"]) for key, b in backends.items()} == {
        "tiny": ("legacy", "2025-11-25"),
        "sdk": ("modern", "2026-07-28"),  # dual-era: the probe's DiscoverResult wins
        "sdk_legacy": ("legacy", "2025-11-25"),  # pinned: no probe
        "modern": ("modern", "2026-07-28"),
        "modern_http": ("modern", "2026-07-28"),
        "sdk_http": ("modern", "2026-07-28"),
        "sse": ("legacy", "2025-11-25"),  # HTTP+SSE is the handshake era's
    }
    table = subprocess.run(
        [SUPERVISOR_CMD, "status", "--config-dir", str(eras.sup.config_dir)], capture_output=True, text=True, timeout=30
    ).stdout
    assert "ERA" in table.splitlines()[1] and " modern " in table and " legacy " in table, table
    async with legacy_client(eras.sup.url) as client:
        for key, name in [("tiny", "tiny"), ("sdk", "sdk"), ("sdk_legacy", "sdk_legacy"), ("modern", "modern"),
                          ("modern_http", "modern-http"), ("sdk_http", "remote"), ("sse", "legacy")]:  # fmt: skip
            result = await client.call_tool(f"{key}--echo", {"text": "hi"})
            assert text_of(result) == f"{name}: hi", (key, result)
        # What the modern backend got: the complete envelope, for the worker's own requests and the client's.
        received = [m for m in eras.received("modern") if m.get("method") == "tools/call"]
        meta = received[-1]["meta"]
        assert meta["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
        # The gateway describes the handshake-era session's own client (the SDK's default name, no capability).
        assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
        assert meta["io.modelcontextprotocol/clientInfo"]["name"] == "mcp"
        methods = [m.get("method") for m in eras.received("modern") if "method" in m]
        assert "ping" not in methods and methods[0] == "server/discover", methods
        # One initialize at most: the worker's one try of a second, handshake-era connection for handshake-era
        # clients (worker/handshake_lane.py), which a modern-only backend refuses (then everything goes modern).
        assert methods.count("initialize") <= 1, methods
        assert {"tools/list", "resources/list", "prompts/list", "subscriptions/listen"} <= set(methods), methods


async def test_streamable_http_carries_the_modern_headers_and_no_session(eras: Eras) -> None:
    async with legacy_client(eras.sup.url) as client:
        await client.call_tool("modern_http--add_tool", {"name": "grüße"})  # a name that is not plain ASCII
        await async_wait_until(lambda: has_tool(client, "modern_http--gruesse"), 15, what="grüße, renamed")
        assert text_of(await client.call_tool("modern_http--gruesse", {"text": "x"})) == "modern-http: x"
        read = await client.read_resource("modern://modern-http/counter")  # type: ignore[arg-type]
        assert read.contents
    # Less the worker's one try of a handshake-era connection (an initialize, refused by a modern-only backend).
    posts = [m for m in eras.received("modern_http") if "headers" in m and m.get("method") != "initialize"]
    assert posts and all("mcp-session-id" not in m["headers"] for m in posts), posts
    assert all(m["headers"]["mcp-protocol-version"] == "2026-07-28" for m in posts if m.get("id") is not None)
    calls = {m["headers"].get("mcp-name"): m["headers"] for m in posts if m.get("method") == "tools/call"}
    assert "=?base64?Z3LDvMOfZQ==?=" in calls, calls  # Mcp-Name: grüße, base64 sentinel
    reads = [m["headers"] for m in posts if m.get("method") == "resources/read"]
    assert (
        reads
        and reads[-1]["mcp-name"] == "modern://modern-http/counter"
        and reads[-1]["mcp-method"] == "resources/read"
    )


@pytest.mark.parametrize("key", ["modern", "modern_http"])
async def test_list_changes_and_resource_updates_reach_the_legacy_client(eras: Eras, key: str) -> None:
    uri = f"modern://{'modern-http' if key == 'modern_http' else 'modern'}/counter"
    seen: list[dict[str, Any]] = []
    async with legacy_client(eras.sup.url, seen) as client:
        await client.subscribe_resource(uri)  # type: ignore[arg-type]
        await client.call_tool(f"{key}--bump", {"text": "41"})

        def updated() -> list[dict[str, Any]]:
            return [n for n in seen if n.get("method") == "notifications/resources/updated"]

        await async_wait_until(updated, 15, what="notifications/resources/updated")
        assert updated()[0]["params"] == {"uri": uri}  # the subscriptionId tag is gone
        assert (await client.read_resource(uri)).contents[0].text == "41"  # type: ignore[arg-type, union-attr]

        added = f"added_{uuid.uuid4().hex[:8]}"
        await client.call_tool(f"{key}--add_tool", {"name": added})
        await async_wait_until(
            lambda: has_tool(client, f"{key}--{added}"),
            15,
            what="the added tool in the gateway's catalog",
        )
        # list_changed is debounced per client (LIST_CHANGED_DEBOUNCE_SECONDS): it may trail the catalog a little.
        await async_wait_until(
            lambda: any(n.get("method") == "notifications/tools/list_changed" for n in seen),
            5,
            what="notifications/tools/list_changed",
        )

        await client.unsubscribe_resource(uri)  # type: ignore[arg-type]

        def listening_without_it() -> bool:
            listens = [m for m in eras.received(key) if m.get("event") == "listen"]
            return bool(listens) and uri not in listens[-1]["filter"].get("resourceSubscriptions", [])

        await async_wait_until(listening_without_it, 15, what="a listen stream without the URI")

        def one_open() -> bool:
            events = eras.received(key)
            opened = {m["id"] for m in events if m.get("event") == "listen"}
            return len(opened - {m["id"] for m in events if m.get("event") == "listen closed"}) == 1

        # Each replaced stream was closed (HTTP: the worker's transport closed its response stream).
        await async_wait_until(one_open, 15, what="exactly one listen stream open at the backend")


async def test_a_listen_stream_the_backend_ends_is_opened_again(eras: Eras) -> None:
    def listens() -> int:
        return sum(1 for m in eras.received("modern") if m.get("event") == "listen")

    seen: list[dict[str, Any]] = []
    async with legacy_client(eras.sup.url, seen) as client:
        before = listens()
        assert text_of(await client.call_tool("modern--end_listens", {})) == "ended 1 listen stream(s)"
        await async_wait_until(lambda: listens() > before, 15, what="the worker to listen again")
        added = f"again_{uuid.uuid4().hex[:8]}"
        await client.call_tool("modern--add_tool", {"name": added})
        await async_wait_until(lambda: has_tool(client, f"modern--{added}"), 15, what=added)


@pytest.mark.parametrize("key", ["modern", "modern_http"])
async def test_a_cancelled_call_is_cancelled_at_the_modern_backend(eras: Eras, key: str) -> None:
    marker = eras.logs / f"slow-{key}-{uuid.uuid4().hex[:8]}"
    async with legacy_client(eras.sup.url) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(client.call_tool, f"{key}--slow", {"seconds": 60, "marker": str(marker)})
            await async_wait_until(marker.exists, 15, what="the slow call to start")
            group.cancel_scope.cancel()  # the SDK client sends notifications/cancelled

        def cancelled() -> bool:
            slow_ids = {m["id"] for m in eras.received(key) if m.get("method") == "tools/call"
                        and m.get("id") is not None}  # fmt: skip
            return any(m.get("event") == "cancelled" and m["id"] in slow_ids for m in eras.received(key))

        # stdio: notifications/cancelled; HTTP: the worker's transport closed that request's response stream.
        await async_wait_until(cancelled, 15, what="the backend to see the cancellation")
        assert text_of(await client.call_tool(f"{key}--echo", {"text": "after"})).endswith(": after")


async def test_the_log_level_travels_per_request(eras: Eras) -> None:
    seen: list[dict[str, Any]] = []
    async with legacy_client(eras.sup.url, seen) as client:
        await client.set_logging_level("info")  # answered by the worker; the level goes in each request's _meta
        assert text_of(await client.call_tool("modern--log", {"text": "hello log"})) == "logged at info"
        await async_wait_until(
            lambda: any(n.get("params", {}).get("data") == "hello log" for n in seen), 15, what="the log line"
        )
    methods = [m.get("method") for m in eras.received("modern")]
    assert "logging/setLevel" not in methods


async def test_envelope_keys_in_a_clients_meta_never_reach_a_legacy_backend(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    """Issue 13: a tools/call carrying the modern `_meta` was forwarded verbatim to a backend locked to the
    handshake era, which refused it (the SDK: -32600 "this connection serves the handshake protocol era")."""
    config_dir = tmp_path / "config"
    write_config(
        config_dir, {"sdk_legacy": stdio(ECHO, "--name", "sdk_legacy", protocol="legacy"), "tiny": stdio(TINY)}
    )
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"sdk_legacy", "tiny"})
    async with legacy_client(sup.url) as client:
        for key in ("sdk_legacy", "tiny"):
            result = await client.call_tool(f"{key}--echo", {"text": "hi"}, meta=ENVELOPE)
            assert text_of(result) == f"{key}: hi" and not result.is_error, result


async def test_the_protocol_pin_is_obeyed(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir = tmp_path / "config"
    servers = {
        "sdk_modern": stdio(ECHO, "--name", "sdk_modern", protocol="2026-07-28"),
        "tiny_modern": stdio(TINY, protocol="2026-07-28", supervision={"maxRestarts": 0}),
        "modern_legacy": stdio(MODERN, protocol="legacy", supervision={"maxRestarts": 0}),
    }
    write_config(config_dir, servers)
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"sdk_modern"})

    def failed() -> dict[str, dict[str, Any]] | None:
        backends = sup.status_entries()
        return backends if all(backends[k]["last_error"] for k in ("tiny_modern", "modern_legacy")) else None

    backends = wait_until(failed, 30, what="the two wrongly pinned backends to fail")
    assert (backends["sdk_modern"]["era"], backends["sdk_modern"]["protocol_version"]) == ("modern", "2026-07-28")
    assert 'pinned to "protocol": "2026-07-28"' in backends["tiny_modern"]["last_error"], backends["tiny_modern"]
    assert "-32601" in backends["tiny_modern"]["last_error"], backends["tiny_modern"]
    assert "initialize with error -32022" in backends["modern_legacy"]["last_error"], backends["modern_legacy"]
    assert backends["tiny_modern"]["era"] is None and backends["modern_legacy"]["era"] is None
