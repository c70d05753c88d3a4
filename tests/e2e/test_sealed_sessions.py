"""Sealed sessions (issue 23): a handshake-era `/mcp` session's state travels sealed in its Mcp-Session-Id, so
it survives a `kill -9` of the gateway (the supervisor restarts it) and is served by any replica sharing
REQUEST_STATE_SECRET; bound to its credential, and a DELETEd id stays dead."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.e2e.test_replicas import RoundRobin
from tests.helpers import INITIALIZE, POST_HEADERS, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SECRET = {"REQUEST_STATE_SECRET": "r" * 64}


def _gateway_pid(sup: RunningSupervisor) -> int | None:
    try:
        status = httpx2.get(f"{sup.base}/health/backends", headers=sup.credential, timeout=2).json()["gateway"]
    except (httpx2.HTTPError, ValueError, KeyError):
        return None  # restarting
    pid = status.get("pid")
    return int(pid) if pid else None


@asynccontextmanager
async def sdk_session(
    url: str, ids: list[str], transport: httpx2.AsyncBaseTransport | None = None
) -> AsyncIterator[ClientSession]:
    """The official SDK client (handshake era, Streamable HTTP); every Mcp-Session-Id it is given goes to `ids`."""

    async def seen(response: httpx2.Response) -> None:
        if "mcp-session-id" in response.headers:
            ids.append(response.headers["mcp-session-id"])

    async with (
        httpx2.AsyncClient(
            transport=transport, timeout=httpx2.Timeout(30.0, read=60.0), event_hooks={"response": [seen]}
        ) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def _call_with_retry(session: ClientSession, text: str, timeout: float = 60.0) -> str:
    """What a client does while its gateway restarts: retry the call until it answers (bounded)."""
    last: Exception | None = None
    with anyio.move_on_after(timeout):
        while True:
            try:
                with anyio.fail_after(15):
                    result = await session.call_tool("local--echo", {"text": text})
                if not result.is_error:
                    return _text(result)
                last = AssertionError(_text(result))
            except Exception as exc:  # connection refused while the new gateway starts
                last = exc
            await anyio.sleep(0.5)
    raise AssertionError(f"the session did not come back within {timeout} s: {last!r}")


async def test_a_session_survives_a_kill_9_of_the_gateway(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup: RunningSupervisor = supervisor_factory(config_dir)  # no secret: the supervisor's instance key seals
    sup.wait_linked({"local"})
    ids: list[str] = []
    async with sdk_session(sup.url, ids) as session:
        assert _text(await session.call_tool("local--echo", {"text": "before"})) == "local: before"
        old = wait_until(lambda: _gateway_pid(sup), 10, what="the gateway's pid")
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: (pid := _gateway_pid(sup)) and pid != old, 60, what="a new gateway")
        assert await _call_with_retry(session, "after") == "local: after"
        await _resumptions_after_a_restart(sup, ids[0])
    assert len(set(ids)) == 1, "the client kept its one session id"
    print(f"\nsealed session id: {len(ids[0])} characters")
    assert len(ids[0]) <= 1024
    assert "rebuilt from its sealed id" in sup.log_path.read_text()


async def test_a_call_in_flight_when_the_gateway_dies_gets_an_error(tmp_path: Path, supervisor_factory: Any) -> None:
    """Its response died with the process: the client resumes the call's stream on the new gateway (from the
    priming event's id) and gets a JSON-RPC error saying so, instead of a dead transport or silence."""
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local", sandbox={"writePaths": [str(tmp_path)]})})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"local"})
    marker = tmp_path / "reached"
    outcome: list[BaseException | Any] = []
    async with sdk_session(sup.url, []) as session:

        async def call() -> None:
            try:
                outcome.append(await session.call_tool("local--slow", {"seconds": 60, "marker": str(marker)}))
            except Exception as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            with anyio.fail_after(30):
                while not marker.exists():  # noqa: ASYNC110 (a file written by the backend)
                    await anyio.sleep(0.05)
            await anyio.sleep(1.5)  # past PRIME_AFTER_S: the call's stream has a resumable id
            os.kill(wait_until(lambda: _gateway_pid(sup), 10, what="the gateway's pid"), signal.SIGKILL)
            with anyio.fail_after(60):
                while not outcome:  # noqa: ASYNC110
                    await anyio.sleep(0.1)
        assert isinstance(outcome[0], MCPError), outcome
        assert "response to this request is lost" in str(outcome[0])
        assert await _call_with_retry(session, "again") == "local: again"


async def _resumptions_after_a_restart(sup: RunningSupervisor, session_id: str) -> None:
    """What did not follow the session: a POST stream of the dead process is answered with a JSON-RPC error
    (its response is lost), not a 404 the client retries into silence; the GET stream reopens from the start."""
    headers = {"accept": "text/event-stream", "mcp-session-id": session_id}
    async with httpx2.AsyncClient(timeout=30) as http:
        async with http.stream("GET", sup.url, headers={**headers, "last-event-id": "3:2"}) as lost:
            assert lost.status_code == 200 and lost.headers["content-type"].startswith("text/event-stream")
            body = (await lost.aread()).decode()
        message = json.loads(body.split("data: ", 1)[1])
        assert message["id"] is None and message["error"]["code"] == -32603, message
        assert "response to this request is lost" in message["error"]["message"]
        async with http.stream("GET", sup.url, headers={**headers, "last-event-id": "0:9"}) as standalone:
            assert standalone.status_code == 200
            async for chunk in standalone.aiter_text():
                assert "stream open" in chunk
                break


async def test_two_replicas_behind_round_robin_serve_one_session(tmp_path: Path, supervisor_factory: Any) -> None:
    replicas: list[RunningSupervisor] = []
    for name in ("a", "b"):
        config_dir = tmp_path / name / "config"
        write_config(config_dir, {"local": stdio_fixture_entry("local")})
        replicas.append(supervisor_factory(config_dir, SECRET))
    for replica in replicas:
        replica.wait_linked({"local"})
    balancer = RoundRobin([replica.port for replica in replicas])
    ids: list[str] = []
    with anyio.fail_after(120):
        async with sdk_session("http://127.0.0.1:1/mcp", ids, balancer) as session:
            for round_ in range(10):
                echoed = await session.call_tool("local--echo", {"text": str(round_)})
                assert _text(echoed) == f"local: {round_}"
                assert {tool.name for tool in (await session.list_tools()).tools} >= {"local--echo"}
    statuses = [status for status in balancer.statuses if status != 202]
    assert set(statuses) == {200}, balancer.statuses
    assert min(balancer.served.values()) >= 10, balancer.served
    assert len(set(ids)) == 1


async def _post(http: httpx2.AsyncClient, url: str, body: dict[str, Any], **headers: str) -> httpx2.Response:
    return await http.post(url, content=json.dumps(body), headers={**POST_HEADERS, **headers})


async def test_a_sealed_id_is_bound_to_its_credential_and_dies_with_delete(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup: RunningSupervisor = supervisor_factory(config_dir, {**SECRET, "ALLOWED_KEYS": "key-a,key-b"})
    sup.wait_linked({"local"})
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx2.AsyncClient(timeout=30) as http:
        opened = await _post(http, sup.url, INITIALIZE, **{"x-api-key": "key-a"})
        assert opened.status_code == 200, opened.text
        session_id = opened.headers["mcp-session-id"]
        a = {"x-api-key": "key-a", "mcp-session-id": session_id}
        b = {"x-api-key": "key-b", "mcp-session-id": session_id}
        assert (await _post(http, sup.url, listing, **a)).status_code == 200
        # Stolen, on the process that holds it live...
        assert (await _post(http, sup.url, listing, **b)).status_code == 404
        # ...and where it must be rebuilt from its seal (a restarted gateway).
        old = wait_until(lambda: _gateway_pid(sup), 10, what="the gateway's pid")
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: (pid := _gateway_pid(sup)) and pid != old, 60, what="a new gateway")
        stolen = await _post(http, sup.url, listing, **b)
        assert stolen.status_code == 404, stolen.text
        assert (await _post(http, sup.url, listing, **a)).status_code == 200
        # A forged or altered id is unknown too.
        handle, _, token = session_id.partition(".")
        forged = {**a, "mcp-session-id": f"{handle}.{token[:-4]}AAAA"}
        assert (await _post(http, sup.url, listing, **forged)).status_code == 404
        # DELETE ends it for good: the id does not revive.
        assert (await http.delete(sup.url, headers=a)).status_code == 200
        assert (await _post(http, sup.url, listing, **a)).status_code == 404
