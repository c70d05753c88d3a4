"""Load generator for MCP servers over Streamable HTTP (`/mcp`) and legacy HTTP+SSE (`/sse`).

It opens S client sessions and makes N `tools/call` requests in total, spread over the sessions: each session
calls sequentially, the sessions run concurrently. Every call echoes a text unique to it, and every reply is
checked to be the one asked for (its JSON-RPC id and the echoed text): a reply delivered to the wrong session or
the wrong request counts as a mismatch. It reports p50/p90/p99 latency, calls/s, errors and mismatches.

Three client modes:
- `sdk`: the official MCP Python SDK (`ClientSession` over `streamable_http_client` / `sse_client`), handshake era;
- `raw`: a lean client of our own on asyncio sockets, speaking HTTP/1.1 keep-alive and the MCP transports
  directly (JSON or SSE answers to a POST; the SSE stream of the legacy transport), so that the load generator
  is not the bottleneck; handshake era;
- `modern`: the official SDK client pinned to the stateless era, `Client(url, mode="2026-07-28")` (no handshake,
  no session: every call a self-contained POST with the per-request `_meta`), over `/mcp` only.

Subcommands (all print one JSON object with `--json`):
- `run`: the load described above;
- `list`: latency of `tools/list` (following `nextCursor`), checking the number of tools;
- `hold`: open many idle sessions (initialized `/mcp` sessions and open `/sse` streams), print one JSON line
  once they are held, then wait for a line on stdin (or `--hold-seconds`) and close them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import resource
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from load_stats import Tally, _cpu_seconds, latency_summary
from raw_client import LEGACY_PROTOCOL_VERSION, BenchError, Mismatch, RawMcpSession, RawSseSession, _initialize_params
from sdk_clients import call_echo, make_session

# The load


@dataclass
class _LoadRun:
    """One run's sessions: each opens and warms up, waits for `go`, then makes its share of the calls."""

    url: str
    transport: str
    mode: str
    sessions: int
    tool: str
    warmup: int
    call_timeout: float
    setup_timeout: float
    headers: dict[str, str] | None
    shares: list[int]
    nonce: str = field(default_factory=lambda: secrets.token_hex(3))
    tally: Tally = field(default_factory=Tally)
    ready: int = 0
    all_ready: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)
    finished_at: list[float] = field(default_factory=list)
    reconnects: int = 0
    # Do not stampede the server's accept queue with the handshakes.
    opening: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(32))

    def _mark_ready(self) -> None:
        self.ready += 1
        if self.ready == self.sessions:
            self.all_ready.set()

    async def one_session(self, index: int) -> None:
        session = make_session(self.mode, self.transport, self.url, self.headers)
        opened = False
        try:
            try:
                async with self.opening:
                    await asyncio.wait_for(session.initialize(), self.setup_timeout)
                for number in range(self.warmup):
                    text = f"warmup-{self.nonce}-s{index}-{number}"
                    await asyncio.wait_for(call_echo(session, self.tool, text), self.call_timeout)
                opened = True
            except Exception as exc:
                self.tally.sessions_failed += 1
                self.tally.errors += self.shares[index]
                self.tally.note("session failed", exc)
            finally:
                self._mark_ready()
            if not opened:
                return
            await self.go.wait()
            await self._calls(session, index)
            self.finished_at.append(time.perf_counter())
        finally:
            self.reconnects += session.reconnects
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.close(delete=True), 10)

    async def _calls(self, session: Any, index: int) -> None:
        tally = self.tally
        for number in range(self.shares[index]):
            text = f"{self.nonce}-s{index}-c{number}-{secrets.token_hex(4)}"
            started = time.perf_counter()
            try:
                await asyncio.wait_for(call_echo(session, self.tool, text), self.call_timeout)
            except Mismatch as exc:
                tally.mismatches += 1
                tally.note("mismatch", exc)
                continue
            except Exception as exc:
                tally.errors += 1
                tally.note("error", exc)
                continue
            tally.latencies.append(time.perf_counter() - started)


async def run_load(
    url: str,
    transport: str,
    mode: str,
    sessions: int,
    calls: int,
    tool: str = "echo",
    warmup: int = 1,
    call_timeout: float = 30.0,
    setup_timeout: float = 120.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """S sessions, N checked echo calls in total; the measured phase starts once every session is ready."""
    shares = [calls // sessions + (1 if index < calls % sessions else 0) for index in range(sessions)]
    run = _LoadRun(url, transport, mode, sessions, tool, warmup, call_timeout, setup_timeout, headers, shares)
    setup_started = time.perf_counter()
    tasks = [asyncio.create_task(run.one_session(index)) for index in range(sessions)]
    await run.all_ready.wait()
    setup_s = time.perf_counter() - setup_started
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    run.go.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    ended = max(run.finished_at) if run.finished_at else time.perf_counter()
    wall = max(ended - started, 1e-9)
    cpu = _cpu_seconds() - cpu_before
    tally = run.tally
    ok = len(tally.latencies)
    return {
        "mode": mode,
        "transport": transport,
        "url": url,
        "sessions": sessions,
        "calls": calls,
        "ok": ok,
        "errors": tally.errors,
        "mismatches": tally.mismatches,
        "sessions_failed": tally.sessions_failed,
        "error_samples": tally.samples,
        "reconnects": run.reconnects,
        "setup_s": round(setup_s, 3),
        "wall_s": round(wall, 4),
        "calls_per_s": round(ok / wall, 1),
        "latency_ms": {key: round(value, 3) for key, value in latency_summary(tally.latencies).items()},
        "loadgen_cpu_pct": round(100 * cpu / wall, 1),
    }


async def run_list(url: str, calls: int, expect_tools: int | None, call_timeout: float = 30.0) -> dict[str, Any]:
    """Sequential `tools/list` on one raw session; each sample is the whole list (every page)."""
    session = RawMcpSession(url)
    tally = Tally()
    counts: set[int] = set()
    pages = 0
    try:
        await asyncio.wait_for(session.initialize(), 60)
        for _ in range(calls + 1):  # the first one warms up and is not counted
            started = time.perf_counter()
            try:
                tools, pages = await asyncio.wait_for(_list_all(session), call_timeout)
            except Exception as exc:
                tally.errors += 1
                tally.note("error", exc)
                continue
            elapsed = time.perf_counter() - started
            counts.add(tools)
            if expect_tools is not None and tools != expect_tools:
                tally.mismatches += 1
                tally.note("mismatch", Mismatch(f"expected {expect_tools} tools, got {tools}"))
            tally.latencies.append(elapsed)
        tally.latencies = tally.latencies[1:]
    finally:
        await session.close(delete=True)
    return {
        "calls": calls,
        "ok": len(tally.latencies),
        "errors": tally.errors,
        "mismatches": tally.mismatches,
        "error_samples": tally.samples,
        "tools": sorted(counts),
        "pages": pages,
        "latency_ms": {key: round(value, 3) for key, value in latency_summary(tally.latencies).items()},
    }


async def _list_all(session: RawMcpSession) -> tuple[int, int]:
    cursor: str | None = None
    tools = pages = 0
    while True:
        reply = await session.request("tools/list", {"cursor": cursor} if cursor else {})
        if "error" in reply:
            raise BenchError(f"tools/list: {reply['error']}")
        tools += len(reply["result"]["tools"])
        pages += 1
        cursor = reply["result"].get("nextCursor")
        if not cursor:
            return tools, pages


async def _gather_bounded(factories: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def guarded(factory: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await factory()

    return await asyncio.gather(*(guarded(factory) for factory in factories), return_exceptions=True)


async def hold_sessions(
    base: str, mcp_sessions: int, sse_sessions: int, hold_seconds: float, open_timeout: float, get_stream: bool
) -> dict[str, Any]:
    """Open idle sessions, report them on stdout, hold them until stdin says so (or the time is up)."""
    held: list[Any] = []
    failures: list[str] = []
    started = time.perf_counter()

    async def open_mcp() -> None:
        session = RawMcpSession(f"{base}/mcp")
        await session.initialize()
        if get_stream:
            await session.open_get_stream()
        session.http.close()  # the session is the server's state; keep only the GET stream open
        held.append(session)

    async def open_sse() -> None:
        session = RawSseSession(f"{base}/sse")
        await session.connect()
        reply = await session.request("initialize", _initialize_params(LEGACY_PROTOCOL_VERSION))
        if "result" not in reply:
            raise BenchError(f"initialize failed: {reply}")
        await session._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        session.poster.close()
        held.append(session)

    factories: list[Callable[[], Awaitable[Any]]] = [*[open_mcp] * mcp_sessions, *[open_sse] * sse_sessions]
    try:
        outcomes = await asyncio.wait_for(_gather_bounded(factories, 50), open_timeout)
    except TimeoutError:
        outcomes = [TimeoutError(f"not all sessions opened within {open_timeout} s")]
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            failures.append(f"{outcome!r}"[:200])
    report = {
        "held_mcp": sum(isinstance(session, RawMcpSession) for session in held),
        "held_sse": sum(isinstance(session, RawSseSession) for session in held),
        "failed": len(failures),
        "failure_samples": sorted(set(failures))[:5],
        "open_s": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(report), flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_stdin_line(), hold_seconds)
    await _gather_bounded([functools.partial(session.close, delete=True) for session in held], 50)
    return report


async def _stdin_line() -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(sys.stdin.fileno(), readable)
    try:
        await done
    finally:
        loop.remove_reader(sys.stdin.fileno())


# CLI


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _print_run(result: dict[str, Any]) -> None:
    latency = result["latency_ms"]
    print(
        f"{result['mode']:>4} {result['transport']:>3} S={result['sessions']:<3} N={result['calls']:<6} "
        f"p50={latency['p50']:.2f} ms p90={latency['p90']:.2f} ms p99={latency['p99']:.2f} ms "
        f"{result['calls_per_s']:.0f} calls/s errors={result['errors']} mismatches={result['mismatches']} "
        f"(load generator CPU {result['loadgen_cpu_pct']:.0f}%)"
    )
    for sample in result["error_samples"]:
        print(f"  {sample}")


def _headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, separator, content = value.partition(":")
        if not separator or not name.strip():
            raise SystemExit(f"--header {value!r}: expected 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="S sessions, N checked echo calls in total")
    run.add_argument("--url", required=True, help="http://127.0.0.1:PORT/mcp or http://127.0.0.1:PORT/sse")
    run.add_argument("--transport", choices=["mcp", "sse"], help="default: from the URL's path")
    run.add_argument("--mode", choices=["raw", "sdk", "modern"], default="raw")
    run.add_argument("-S", "--sessions", type=int, default=1)
    run.add_argument("-N", "--calls", type=int, default=2000)
    run.add_argument("--tool", default="echo", help="the echo tool's name (behind the gateway: KEY--echo)")
    run.add_argument("--warmup", type=int, default=1, help="unmeasured calls per session before the run")
    run.add_argument("--call-timeout", type=float, default=30.0)
    run.add_argument(
        "--header", action="append", default=[], help="'Name: value' on every request (raw client only; repeatable)"
    )

    listing = commands.add_parser("list", help="tools/list latency")
    listing.add_argument("--url", required=True)
    listing.add_argument("-N", "--calls", type=int, default=200)
    listing.add_argument("--expect-tools", type=int)

    hold = commands.add_parser("hold", help="hold idle sessions open")
    hold.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    hold.add_argument("--mcp", type=int, default=500, help="initialized /mcp sessions")
    hold.add_argument("--sse", type=int, default=500, help="open /sse streams (initialized sessions)")
    hold.add_argument("--no-get-stream", action="store_true", help="do not open the /mcp sessions' GET streams")
    hold.add_argument("--hold-seconds", type=float, default=120.0)
    hold.add_argument("--open-timeout", type=float, default=90.0)

    for sub in (run, listing, hold):
        sub.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    _raise_fd_limit()

    if args.command == "run":
        transport = args.transport or ("sse" if urlsplit(args.url).path.rstrip("/").endswith("/sse") else "mcp")
        result = asyncio.run(
            run_load(
                args.url,
                transport,
                args.mode,
                args.sessions,
                args.calls,
                tool=args.tool,
                warmup=args.warmup,
                call_timeout=args.call_timeout,
                headers=_headers(args.header),
            )
        )
        print(json.dumps(result)) if args.json else _print_run(result)
    elif args.command == "list":
        result = asyncio.run(run_list(args.url, args.calls, args.expect_tools))
        if args.json:
            print(json.dumps(result))
        else:
            latency = result["latency_ms"]
            print(
                f"tools/list x{result['ok']}: {result['tools']} tools in {result['pages']} page(s), "
                f"p50={latency['p50']:.2f} ms p90={latency['p90']:.2f} ms p99={latency['p99']:.2f} ms "
                f"errors={result['errors']} mismatches={result['mismatches']}"
            )
    else:
        asyncio.run(
            hold_sessions(args.base, args.mcp, args.sse, args.hold_seconds, args.open_timeout, not args.no_get_stream)
        )


if __name__ == "__main__":
    main()
