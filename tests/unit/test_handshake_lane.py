"""The handshake-era lane of a dual-era backend (worker/handshake_lane.py) over a scripted connection: opened on
the first request, the envelope stripped, the backend's own requests in the lane's id space and the client's
answers back under the backend's ids, cancellations routed, and a modern-only backend given up on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp_supervisor.protocol.messages import Reply
from mcp_supervisor.worker.handshake_lane import ID_PREFIX, HandshakeLane
from tests.helpers import async_wait_until
from tests.unit.test_worker_eras import INITIALIZED, Scripted

ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
}


def dual_backend(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if method == "initialize":
        return INITIALIZED
    if method == "tools/call":
        return None  # answered by the test, after its own request
    return {"result": {}}


def modern_only(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    return {"error": {"code": -32022, "message": "2026-07-28 only", "data": {"supported": ["2026-07-28"]}}}


class Harness:
    def __init__(self, answer: Any) -> None:
        self.connection = Scripted(answer)
        self.opened = 0
        self.replies: list[Reply] = []
        self.messages: list[dict[str, Any]] = []
        self.fallen_back: list[int] = []
        self.lane = HandshakeLane(self.opener, self.replies.append, self.refresh, self.message, "dual", (), timeout=5)

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Scripted]:
        self.opened += 1
        yield self.connection

    def opener(self) -> Any:
        return self._open()

    async def refresh(self, kind: str) -> None:
        pass

    def message(self, raw: bytes) -> None:
        self.messages.append(json.loads(raw))

    async def fallback(self, rid: int, body: bytes) -> None:
        self.fallen_back.append(rid)


def request(rid: int) -> bytes:
    params = {"name": "interview", "_meta": {**ENVELOPE, "progressToken": rid}}
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}).encode()


async def opens_on_demand() -> None:
    harness = Harness(dual_backend)
    lane = harness.lane
    assert harness.opened == 0  # nothing before a handshake-era client comes
    await lane.take(41, request(41), harness.fallback)
    await async_wait_until(lambda: lane.in_flight == 1, 5, what="the request on the lane")
    sent = harness.connection.sent
    assert [m.get("method") for m in sent] == ["initialize", "notifications/initialized", "tools/call"]
    assert sent[-1]["params"]["_meta"] == {"progressToken": 41}  # the envelope is not for a handshake-era hop

    # The backend asks the client something: the gateway sees it under the lane's id.
    await harness.connection.inbox.put(b'{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{}}')
    await async_wait_until(lambda: harness.messages, 5, what="the server request")
    lane_id = harness.messages[0]["id"]
    assert lane_id == ID_PREFIX + "3"
    # The client's answer goes back under the backend's own id (an int again).
    answer = json.dumps({"jsonrpc": "2.0", "id": lane_id, "result": {"ok": True}}).encode()
    assert lane.claims(answer)
    await lane.send_raw(answer)
    assert sent[-1] == {"jsonrpc": "2.0", "id": 3, "result": {"ok": True}}

    # A cancellation of the lane's request is the lane's; one of another request is not.
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 41}}
    assert lane.claims(json.dumps(cancel).encode())
    cancel["params"] = {"requestId": 99}
    assert not lane.claims(json.dumps(cancel).encode())

    await harness.connection.inbox.put(b'{"jsonrpc":"2.0","id":41,"result":{"content":[]}}')
    await async_wait_until(lambda: harness.replies, 5, what="the reply")
    assert harness.replies[0].rid == 41 and lane.in_flight == 0
    await lane.take(42, request(42), harness.fallback)  # open: sent at once, no second handshake
    assert harness.opened == 1 and [m.get("method") for m in sent].count("initialize") == 1
    await lane.aclose()


async def gives_up_on_a_modern_only_backend() -> None:
    harness = Harness(modern_only)
    lane = harness.lane
    await lane.take(7, request(7), harness.fallback)
    await async_wait_until(lambda: harness.fallen_back, 5, what="the fallback")
    assert harness.fallen_back == [7] and lane.refused and lane.relay is None
    assert not lane.claims(b'{"jsonrpc":"2.0","id":"mcps-hs-1","result":{}}')
    await lane.aclose()
    assert not lane.ended.done() or lane.ended.cancelled()


async def mirrors_the_gateways_own_requests() -> None:
    harness = Harness(dual_backend)
    lane = harness.lane
    set_level = b'{"jsonrpc":"2.0","id":5,"method":"logging/setLevel","params":{"level":"debug"}}'
    lane.mirror(set_level)  # not open yet: kept for later
    assert harness.opened == 0
    await lane.take(41, request(41), harness.fallback)
    sent = harness.connection.sent
    await async_wait_until(lambda: any(m.get("method") == "logging/setLevel" for m in sent), 5, what="setLevel")
    level = next(m for m in sent if m.get("method") == "logging/setLevel")
    assert level["params"] == {"level": "debug"} and str(level["id"]).startswith("mcps-")  # the worker's own id
    lane.mirror(b'{"jsonrpc":"2.0","id":6,"method":"resources/unsubscribe","params":{"uri":"x://y"}}')
    await async_wait_until(lambda: sent[-1].get("method") == "resources/unsubscribe", 5, what="the unsubscribe")
    lane.mirror(request(7))  # a client's call is not the lane's to copy
    await asyncio.sleep(0.05)
    assert [m["id"] for m in sent if m.get("method") == "tools/call"] == [41]
    await lane.aclose()


def test_the_gateways_own_set_level_and_unsubscribe_reach_the_lane_too() -> None:
    asyncio.run(asyncio.wait_for(mirrors_the_gateways_own_requests(), 20))


def test_the_lane_opens_on_demand_and_keeps_the_backends_ids_apart() -> None:
    asyncio.run(asyncio.wait_for(opens_on_demand(), 20))


def test_a_modern_only_backend_is_given_up_and_requests_go_on_the_primary_connection() -> None:
    asyncio.run(asyncio.wait_for(gives_up_on_a_modern_only_backend(), 20))
