"""Broken JSON-RPC from either side gets a clear JSON-RPC error, on every front end, and loses nothing else.

- A backend's broken replies (tests/fixtures/bad_replies_server.py): neither result nor error, a null error, an
  error that is not an object, a line that is not JSON, invalid UTF-8, a result nested 5000 deep. Each call gets
  -32603 naming the backend, over /mcp and over stdio (the SDK client hung there on a reply with an empty
  result), and the backend keeps serving.
- A client's request nested 1000 levels deep: -32700 on /mcp, /sse and stdio (it was HTTP 500 text/plain on
  /mcp, nothing on /sse and no answer on stdio).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client

from tests.e2e.conftest import ROOT, SUPERVISOR_CMD, RunningSupervisor, write_config
from tests.helpers import INITIALIZE as INIT
from tests.helpers import POST_HEADERS as HEADERS
from tests.helpers import mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

BAD_SERVER = ROOT / "tests" / "fixtures" / "bad_replies_server.py"
BROKEN = ["no_result", "null_error", "bad_error", "not_json", "bad_utf8", "deep"]
DEEP = b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"bad--echo","arguments":{"x":' + (
    b"[" * 1000 + b"]" * 1000 + b"}}}"
)


def config(tmp_path: Path) -> Path:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"bad": {"type": "stdio", "command": sys.executable, "args": [str(BAD_SERVER)]}})
    return config_dir


async def calls_fail_cleanly(client: ClientSession) -> dict[str, str]:
    seen = {}
    for tool in BROKEN:
        with anyio.fail_after(15), pytest.raises(MCPError) as failed:
            await client.call_tool(f"bad--{tool}", {})
        assert failed.value.error.code == -32603, (tool, failed.value.error)
        assert 'Backend "bad" sent an invalid reply' in failed.value.error.message, (tool, failed.value.error)
        seen[tool] = failed.value.error.message
        echoed = await client.call_tool("bad--echo", {"text": f"after {tool}"})
        assert echoed.content[0].text == f"after {tool}"  # type: ignore[union-attr]
    return seen


async def test_broken_backend_replies_become_errors_over_mcp(tmp_path: Path, supervisor_factory: Any) -> None:
    sup: RunningSupervisor = supervisor_factory(config(tmp_path))
    sup.wait_linked({"bad"})
    async with mcp_client(sup.url) as client:
        seen = await calls_fail_cleanly(client)
    print("\n" + "\n".join(f"{tool}: {message}" for tool, message in seen.items()))


async def test_broken_backend_replies_become_errors_over_stdio(tmp_path: Path) -> None:
    params = StdioServerParameters(command=SUPERVISOR_CMD, args=["stdio", "--config-dir", str(config(tmp_path))])
    with open(tmp_path / "stderr.log", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            with anyio.fail_after(30):
                await client.initialize()
            await calls_fail_cleanly(client)


async def test_deeply_nested_requests_get_a_parse_error_on_every_front_end(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    sup: RunningSupervisor = supervisor_factory(config(tmp_path))
    sup.wait_linked({"bad"})
    async with httpx2.AsyncClient(timeout=10) as http:
        opened = await http.post(sup.url, json=INIT, headers=HEADERS)
        session = {**HEADERS, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
        deep = await http.post(sup.url, content=DEEP, headers=session)
        assert deep.status_code == 400 and deep.json()["error"]["code"] == -32700, (deep.status_code, deep.text)

        async with http.stream("GET", f"{sup.base}/sse") as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == "event: endpoint"
            endpoint = (await anext(lines)).removeprefix("data: ")
            posted = await http.post(f"{sup.base}{endpoint}", content=DEEP, headers=HEADERS)
            assert posted.status_code == 400 and posted.json()["error"]["code"] == -32700, posted.text
            with anyio.fail_after(10):  # and on the stream, where its replies go
                async for line in lines:
                    if line.startswith("data: ") and '"code":-32700' in line.replace(" ", ""):
                        break


async def test_a_deeply_nested_line_on_stdio_gets_a_parse_error(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        SUPERVISOR_CMD,
        "stdio",
        "--config-dir",
        str(config(tmp_path)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        limit=1 << 20,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(json.dumps(INIT).encode() + b"\n")
        with anyio.fail_after(30):
            initialized = json.loads(await process.stdout.readline())
        assert initialized["id"] == 1 and "result" in initialized, initialized
        process.stdin.write(DEEP + b"\n")
        with anyio.fail_after(15):
            while True:
                reply = json.loads(await process.stdout.readline())
                if "id" in reply:
                    break
        assert reply["error"]["code"] == -32700, reply
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()
