"""The web terminal: real shells on real PTYs, and its routes through a real uvicorn server (HTTP, SSE, WebSocket)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import psutil
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mcp_supervisor.admin.terminal import Terminal, TerminalLimitError, TerminalManager
from mcp_supervisor.admin.terminal_routes import terminal_routes
from tests.helpers import async_wait_until
from tests.integration.serving import serving

pytestmark = pytest.mark.anyio

ECHO = "echo hello-$((6*7))\n"  # the typed line is echoed too, but only the shell's answer says 42


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shells read no ~/.bashrc: a user's startup files (pyenv rehash, …) must not slow or break the tests."""
    monkeypatch.setenv("HOME", str(tmp_path))


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@asynccontextmanager
async def background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def manager(idle_timeout_s: float = 60, max_terminals: int = 8) -> AsyncIterator[TerminalManager]:
    terminals = TerminalManager(idle_timeout_s, max_terminals=max_terminals)
    try:
        yield terminals
    finally:
        pids = [info["pid"] for info in terminals.list()]  # the ones that exited are checked by their tests
        await terminals.close_all()
        assert terminals.list() == []
        assert all(gone(pid) for pid in pids)


async def collect(terminal: Terminal, into: list[str]) -> None:
    async for chunk in terminal.output():
        into.append(chunk)


async def test_echo_resize_and_close() -> None:
    async with manager() as terminals:
        terminal = terminals.start(80, 24)
        assert [t["termId"] for t in terminals.list()] == [terminal.id]
        chunks: list[str] = []
        async with background(collect(terminal, chunks)) as reader:
            terminal.write(ECHO)
            await async_wait_until(lambda: "hello-42" in "".join(chunks), 10, what="hello-42")
            terminal.write("stty size\n")
            await async_wait_until(lambda: "24 80" in "".join(chunks), 10, what="stty size 24 80")
            terminal.resize(100, 40)
            terminal.write("stty size; sleep 300 & echo bg=$!\n")
            await async_wait_until(lambda: "40 100" in "".join(chunks), 10, what="stty size 40 100")
            found = await async_wait_until(lambda: re.findall(r"bg=(\d+)", "".join(chunks)), 10, what="bg pid")
            background_pid = int(found[0])
            assert psutil.Process(background_pid).is_running()
            assert await terminals.close(terminal.id) is True
            assert gone(terminal.pid)
            await async_wait_until(lambda: gone(background_pid), 5, what="the background job to be killed")
            await asyncio.wait_for(reader, 5)  # the subscription ends with the shell
        assert terminal.exit_code is not None and terminals.get(terminal.id) is None
        assert await terminals.close(terminal.id) is False


async def test_backlog_replay_and_exit_code() -> None:
    async with manager() as terminals:
        terminal = terminals.start()
        early: list[str] = []
        async with background(collect(terminal, early)):
            terminal.write(ECHO)
            await async_wait_until(lambda: "hello-42" in "".join(early), 10, what="hello-42")
        late: list[str] = []
        async with background(collect(terminal, late)) as reader:
            await async_wait_until(lambda: "hello-42" in "".join(late), 5, what="the replayed backlog")
            # Jobs left behind by a plain `exit`, one of them deaf to SIGHUP: swept (SIGHUP, then SIGKILL).
            terminal.write("sleep 300 & echo job=$!; nohup sleep 300 >/dev/null 2>&1 & echo deaf=$!\n")
            jobs = await async_wait_until(
                lambda: dict(re.findall(r"(job|deaf)=(\d+)", "".join(late))) if "deaf=" in "".join(late) else {},
                10,
                what="the background jobs' pids",
            )
            terminal.write("exit 5\n")
            assert await asyncio.wait_for(terminal.wait(), 10) == 5
            await asyncio.wait_for(reader, 5)
        assert terminals.get(terminal.id) is None and gone(terminal.pid)
        job_pids = [int(pid) for pid in jobs.values()]
        await async_wait_until(lambda: all(gone(pid) for pid in job_pids), 10, what="the left-behind jobs to die")


async def test_idle_terminal_is_closed() -> None:
    async with manager(idle_timeout_s=0.5) as terminals:
        terminal = terminals.start()
        chunks: list[str] = []
        async with background(collect(terminal, chunks)) as reader:
            await async_wait_until(lambda: terminals.get(terminal.id) is None, 10, what="the idle terminal to close")
            await asyncio.wait_for(reader, 5)  # subscribers see the end
        assert terminal.exit_code is not None and gone(terminal.pid)


async def test_limit() -> None:
    async with manager(max_terminals=2) as terminals:
        terminals.start()
        terminals.start()
        with pytest.raises(TerminalLimitError, match="2 terminals are open"):
            terminals.start()


def pid_of(terminals: TerminalManager, term_id: str) -> int:
    terminal = terminals.get(term_id)
    assert terminal is not None
    return terminal.pid


def sse_events(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    events, name = [], "message"
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


async def test_http_routes_and_sse() -> None:
    async with manager() as terminals:
        app = Starlette(routes=[Mount("/admin", routes=terminal_routes(terminals))])
        async with serving(app) as base, httpx2.AsyncClient(base_url=f"{base}/admin", timeout=10) as client:
            assert (await client.post("/terminal/start", json={"cols": 0})).status_code == 400
            assert (await client.post("/terminal/start", content=b"[1]")).status_code == 400
            started = await client.post("/terminal/start", json={"cols": 90, "rows": 30})
            term_id = started.json()["termId"]
            listed = (await client.get("/terminal/list")).json()["terminals"]
            assert [(t["termId"], t["pid"]) for t in listed] == [(term_id, pid_of(terminals, term_id))]
            invalid = [
                ("input", {"input": 5}),
                ("input", {"input": "x" * 70000}),
                ("resize", {"cols": 80}),
                ("resize", {"cols": 80, "rows": 1001}),
                ("resize", {"cols": True, "rows": 10}),
            ]
            for action, body in invalid:
                response = await client.post(f"/terminal/{term_id}/{action}", json=body)
                assert response.status_code == 400 and response.json()["error"].endswith("."), body
            huge = await client.post(f"/terminal/{term_id}/input", content=b" " * (600 * 1024))
            assert huge.status_code == 413 and "larger than" in huge.json()["error"]
            assert (await client.post("/terminal/nope/input", json={"input": "x"})).status_code == 404
            assert (await client.get("/terminal/nope/output")).status_code == 404
            assert (await client.delete("/terminal/nope")).status_code == 404

            lines: list[str] = []

            async def read_stream() -> None:
                async with client.stream("GET", f"/terminal/{term_id}/output") as response:
                    assert response.headers["content-type"].startswith("text/event-stream")
                    async for line in response.aiter_lines():
                        lines.append(line)

            def output() -> str:
                return "".join(d["data"] for n, d in sse_events(lines) if n == "output")

            async with background(read_stream()) as reader:
                assert (await client.post(f"/terminal/{term_id}/input", json={"input": ECHO})).status_code == 200
                await async_wait_until(lambda: "hello-42" in output(), 10, what="hello-42 on the SSE stream")
                resized = await client.post(f"/terminal/{term_id}/resize", json={"cols": 120, "rows": 50})
                assert resized.json() == {"success": True}
                await client.post(f"/terminal/{term_id}/input", json={"input": "stty size\n"})
                await async_wait_until(lambda: "50 120" in output(), 10, what="stty size 50 120")
                await client.post(f"/terminal/{term_id}/input", json={"input": "exit 7\n"})
                await asyncio.wait_for(reader, 10)  # the stream ends after the exit event
            assert sse_events(lines)[-1] == ("exit", {"code": 7})

            second = (await client.post("/terminal/start", content=b"")).json()["termId"]
            pid = pid_of(terminals, second)
            closed = await client.delete(f"/terminal/{second}")
            assert closed.json()["success"] is True and gone(pid)
            assert (await client.get("/terminal/list")).json() == {"terminals": []}


async def test_websocket() -> None:
    async with manager() as terminals:
        app = Starlette(routes=[Mount("/admin", routes=terminal_routes(terminals))])
        async with serving(app) as base:
            ws_base = base.replace("http://", "ws://") + "/admin/terminal"
            async with connect(f"{ws_base}/nope/ws") as ws:
                with pytest.raises(ConnectionClosed) as unknown:
                    await asyncio.wait_for(ws.recv(), 10)
            assert unknown.value.rcvd is not None and unknown.value.rcvd.code == 4404

            terminal = terminals.start()
            terminal.write("echo before-$((1+1))\n")
            frames: list[dict[str, Any]] = []

            def output() -> str:
                return "".join(f["data"] for f in frames if f["type"] == "output")

            async with connect(f"{ws_base}/{terminal.id}/ws") as ws:

                async def receive() -> None:
                    with contextlib.suppress(ConnectionClosed):
                        async for frame in ws:
                            frames.append(json.loads(frame))

                async with background(receive()) as receiver:
                    await async_wait_until(lambda: "before-2" in output(), 10, what="the replayed backlog")
                    await ws.send(json.dumps({"type": "input", "data": ECHO}))
                    await async_wait_until(lambda: "hello-42" in output(), 10, what="hello-42 on the WebSocket")
                    await ws.send(json.dumps({"type": "resize", "cols": 100, "rows": 40}))
                    await ws.send(json.dumps({"type": "input", "data": "stty size\n"}))
                    await async_wait_until(lambda: "40 100" in output(), 10, what="stty size 40 100")
                    await ws.send(json.dumps({"type": "input", "data": "exit 3\n"}))
                    await asyncio.wait_for(receiver, 10)
            assert frames[-1] == {"type": "exit", "code": 3}

            other = terminals.start()
            async with connect(f"{ws_base}/{other.id}/ws") as ws:
                await ws.send(json.dumps({"type": "dance"}))
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert terminals.get(other.id) is other  # a bad frame ends the connection, not the terminal
