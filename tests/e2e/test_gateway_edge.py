"""Auth, DNS-rebinding guard and bad input at the /mcp edge, against the real process tree."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import MCPError

from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import INITIALIZE as INIT
from tests.helpers import POST_HEADERS as HEADERS
from tests.helpers import mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def secured(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup: RunningSupervisor = supervisor_factory(
        config_dir, {"ALLOWED_KEYS": "key-one, key-two", "ALLOWED_TOKENS": "token-one"}
    )
    sup.wait_linked({"local"})
    return sup


@pytest.fixture
def open_gateway(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"local": stdio_fixture_entry("local")})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"local"})
    return sup


async def _echo_works(url: str, headers: dict[str, str] | None = None) -> None:
    async with mcp_client(url, headers) as client:
        result = await client.call_tool("local--echo", {"text": "ok"})
        assert result.content[0].text == "local: ok"  # type: ignore[union-attr]


async def test_auth_rejects_missing_and_wrong_credentials(secured: RunningSupervisor) -> None:
    async with httpx2.AsyncClient() as http:
        assert (await http.post(secured.url, json=INIT, headers=HEADERS)).status_code == 401
        wrong = {**HEADERS, "X-Api-Key": "nope", "Authorization": "Bearer nope"}
        assert (await http.post(secured.url, json=INIT, headers=wrong)).status_code == 401
        assert (await http.post(f"{secured.url}?key=nope", json=INIT, headers=HEADERS)).status_code == 401
        assert (await http.get(secured.url, headers={"Accept": "text/event-stream"})).status_code == 401


async def test_auth_accepts_key_header_query_and_bearer(secured: RunningSupervisor) -> None:
    await _echo_works(secured.url, {"X-Api-Key": "key-two"})
    await _echo_works(f"{secured.url}?key=key-one")
    await _echo_works(secured.url, {"Authorization": "Bearer token-one"})
    # A wrong bearer token falls through to a valid key, as in mcp-proxy-server.
    await _echo_works(secured.url, {"Authorization": "Bearer wrong", "X-Api-Key": "key-one"})


async def test_session_is_bound_to_its_credential(secured: RunningSupervisor) -> None:
    async with httpx2.AsyncClient() as http:
        opened = await http.post(secured.url, json=INIT, headers={**HEADERS, "X-Api-Key": "key-one"})
        session_id = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        other = {**HEADERS, "X-Api-Key": "key-two", "Mcp-Session-Id": session_id}
        assert (await http.post(secured.url, json=ping, headers=other)).status_code == 404
        same = {**HEADERS, "X-Api-Key": "key-one", "Mcp-Session-Id": session_id}
        assert (await http.post(secured.url, json=ping, headers=same)).json() == {
            "jsonrpc": "2.0",
            "id": 2,
            "result": {},
        }


async def test_dns_rebinding_guard(open_gateway: RunningSupervisor) -> None:
    async with httpx2.AsyncClient() as http:
        bad_host = await http.post(open_gateway.url, json=INIT, headers={**HEADERS, "Host": "evil.example:3663"})
        assert bad_host.status_code == 421
        bad_origin = await http.post(open_gateway.url, json=INIT, headers={**HEADERS, "Origin": "http://evil.example"})
        assert bad_origin.status_code == 403
        good_origin = await http.post(
            open_gateway.url, json=INIT, headers={**HEADERS, "Origin": "http://localhost:5173"}
        )
        assert good_origin.status_code == 200


async def test_bad_input_gets_clear_errors_and_session_survives(open_gateway: RunningSupervisor) -> None:
    url = open_gateway.url
    async with httpx2.AsyncClient() as http:
        opened = await http.post(url, json=INIT, headers=HEADERS)
        assert opened.status_code == 200
        session = {**HEADERS, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
        await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)

        malformed = await http.post(url, content=b'{"jsonrpc": "2.0", "id": 3, "meth', headers=session)
        assert malformed.status_code == 400 and malformed.json()["error"]["code"] == -32700
        invalid = await http.post(url, json={"jsonrpc": "1.0", "id": 4, "method": "ping"}, headers=session)
        assert invalid.json()["error"]["code"] == -32600 and invalid.json()["id"] == 4
        unknown_method = await http.post(url, json={"jsonrpc": "2.0", "id": 5, "method": "no/such"}, headers=session)
        assert unknown_method.status_code == 200 and unknown_method.json()["error"]["code"] == -32601
        unknown_tool = await http.post(
            url, json={"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "x--y"}}, headers=session
        )
        assert unknown_tool.json()["error"]["code"] == -32602 and "x--y" in unknown_tool.json()["error"]["message"]
        batch = await http.post(url, json=[{"jsonrpc": "2.0", "id": 7, "method": "ping"}], headers=session)
        assert batch.status_code == 400 and batch.json()["error"]["code"] == -32600
        too_big = await http.post(url, content=b" " * (4 * 1024 * 1024 + 1), headers=session)
        assert too_big.status_code == 413
        wrong_type = await http.post(url, content=b"{}", headers={**session, "Content-Type": "text/plain"})
        assert wrong_type.status_code == 415
        not_acceptable = await http.post(url, json=INIT, headers={**session, "Accept": "text/html"})
        assert not_acceptable.status_code == 406
        no_session = await http.post(url, json={"jsonrpc": "2.0", "id": 8, "method": "ping"}, headers=HEADERS)
        assert no_session.status_code == 400
        gone = await http.post(
            url,
            json={"jsonrpc": "2.0", "id": 9, "method": "ping"},
            headers={**HEADERS, "Mcp-Session-Id": "no-such-session"},
        )
        assert gone.status_code == 404 and gone.json()["error"]["code"] == -32000

        # After all of that the session still works.
        ping = await http.post(url, json={"jsonrpc": "2.0", "id": 10, "method": "ping"}, headers=session)
        assert ping.json() == {"jsonrpc": "2.0", "id": 10, "result": {}}
        # DELETE ends it.
        assert (await http.delete(url, headers=session)).status_code == 200
        after = await http.post(url, json={"jsonrpc": "2.0", "id": 11, "method": "ping"}, headers=session)
        assert after.status_code == 404


async def test_sdk_client_sees_unknown_tool_as_error(open_gateway: RunningSupervisor) -> None:
    async with mcp_client(open_gateway.url) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("nope--missing", {})
        assert "nope--missing" in str(info.value)


def test_whitespace_around_a_header_value_is_not_part_of_it(secured: RunningSupervisor) -> None:
    """RFC 9110 §5.5: the spaces and tabs around a field value are not part of it. h11 strips them; the gateway
    parses with httptools, which keeps the trailing ones, so `X-Api-Key: key-one ` was refused (401) where the
    same request to a server run directly (the SDK's, on h11) is accepted."""
    body = json.dumps(INIT).encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{secured.port}\r\nx-api-key: key-one \t\r\n"
        f"accept: {HEADERS['Accept']} \r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", secured.port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"200", status_line
