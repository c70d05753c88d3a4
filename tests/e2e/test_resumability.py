"""Resumable Streamable HTTP streams: numbered events, and Last-Event-ID replay after a dropped connection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import RunningSupervisor
from tests.e2e.test_reload import save

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def open_session(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    reply = await http.post(url, json=init, headers=HEADERS)
    headers = {**HEADERS, "Mcp-Session-Id": reply.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


async def events(response: httpx2.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event id, JSON data) of each SSE event."""
    event_id = ""
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            yield event_id, json.loads(line[6:])


async def test_a_dropped_post_stream_resumes_with_its_reply(
    conformance_gateway: RunningSupervisor,
) -> None:
    gateway = conformance_gateway
    async with httpx2.AsyncClient(timeout=20) as http:
        headers = await open_session(http, gateway.url)
        call = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "tok"}},
        }
        async with http.stream("POST", gateway.url, json=call, headers=headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            first_id, first = await anext(events(response))
        # The connection is gone after the first event; the request went on at the backend.
        assert first["method"] == "notifications/progress" and first["params"]["progressToken"] == "tok"
        resumed: list[tuple[str, Any]] = []
        async with http.stream("GET", gateway.url, headers={**headers, "Last-Event-ID": first_id}) as response:
            assert response.status_code == 200
            async for event in events(response):
                resumed.append(event)
        ids = [event_id for event_id, _ in resumed]
        assert first_id not in ids and ids == sorted(set(ids), key=lambda i: int(i.split(":")[1]))
        assert resumed[-1][1]["id"] == 7 and "result" in resumed[-1][1]  # the reply, after the drop
        assert [d["params"]["progress"] for _, d in resumed[:-1]] == [50, 100]


async def test_the_standalone_stream_replays_what_a_dropped_connection_missed(
    conformance_gateway: RunningSupervisor,
) -> None:
    gateway = conformance_gateway
    tools = gateway.config_dir / "tool_config.json"
    async with httpx2.AsyncClient(timeout=20) as http:
        headers = await open_session(http, gateway.url)
        async with http.stream("GET", gateway.url, headers=headers) as response:
            save(tools, {"tools": {"conformance--test_simple_text": {"enabled": False}}})
            first_id, first = await anext(events(response))
        assert first["method"] == "notifications/tools/list_changed"
        save(tools, {"tools": {}})  # sent while no connection is open: kept for the resume
        async with http.stream("GET", gateway.url, headers={**headers, "Last-Event-ID": first_id}) as response:
            missed_id, missed = await anext(events(response))
        assert missed["method"] == "notifications/tools/list_changed"
        assert missed_id.split(":")[0] == "0" and int(missed_id.split(":")[1]) > int(first_id.split(":")[1])
        unknown = await http.get(gateway.url, headers={**headers, "Last-Event-ID": "99:1"})
        assert unknown.status_code == 404
