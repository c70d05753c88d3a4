"""Stateless replicas: two gateways (two real supervisor trees, same config) behind a plain per-request
round-robin answer every 2026-07-28 request with no session affinity at all."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.e2e.test_aggregation import catalog_entry
from tests.e2e.test_modern_clients import MODERN

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer with no affinity: each HTTP request goes to the next replica."""

    def __init__(self, ports: list[int]) -> None:
        self._next = itertools.cycle(ports)
        self._inner = httpx2.AsyncHTTPTransport()
        self.served: dict[int, int] = dict.fromkeys(ports, 0)
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = next(self._next)
        self.served[port] += 1
        request.url = request.url.copy_with(port=port)
        response = await self._inner.handle_async_request(request)
        self.statuses.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_two_replicas_behind_round_robin_answer_every_modern_request(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    replicas: list[RunningSupervisor] = []
    for name in ("a", "b"):
        config_dir = tmp_path / name / "config"
        write_config(config_dir, {"local": stdio_fixture_entry("local"), "cat": catalog_entry("cat")})
        replicas.append(supervisor_factory(config_dir, {"REQUEST_STATE_SECRET": "s" * 64}))
    for replica in replicas:
        replica.wait_linked({"local", "cat"})
    balancer = RoundRobin([replica.port for replica in replicas])
    errors = 0
    async with httpx2.AsyncClient(transport=balancer, timeout=30) as http:
        transport = streamable_http_client("http://127.0.0.1:1/mcp", http_client=http)
        with anyio.fail_after(120):
            async with Client(transport, mode="auto") as client:  # auto: discover first, on some replica
                assert client.protocol_version == MODERN
                for round_ in range(20):
                    try:
                        names = {tool.name for tool in (await client.list_tools()).tools}
                        assert {"local--echo", "cat--count"} <= names
                        echoed = await client.call_tool("local--echo", {"text": str(round_)})
                        assert echoed.content[0].text == f"local: {round_}"  # type: ignore[union-attr]
                        assert (await client.list_prompts()).prompts
                        resources = (await client.list_resources()).resources
                        assert (await client.read_resource(str(resources[0].uri))).contents
                    except Exception:
                        errors += 1
                        raise
    assert errors == 0
    assert set(balancer.statuses) == {200}, balancer.statuses
    # Both replicas served, in turns (the lists are fewer than asked: the client honours their ttlMs).
    counts = list(balancer.served.values())
    assert min(counts) >= 20 and abs(counts[0] - counts[1]) <= 1, balancer.served
