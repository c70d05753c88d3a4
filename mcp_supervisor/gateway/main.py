"""The gateway process: uvicorn serving the HTTP front ends, or the stdio front end, under the supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
from pathlib import Path
from types import FrameType

import uvicorn

from mcp_supervisor import event_loop
from mcp_supervisor.config.clients import ClientsConfig
from mcp_supervisor.config.loader import load_clients, load_tool_config
from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import Settings, load_settings
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.gateway.app import create_app
from mcp_supervisor.gateway.frontends.http_limits import GuardedHttpToolsProtocol
from mcp_supervisor.gateway.frontends.stdio import StdioFrontend
from mcp_supervisor.gateway.runtime import GatewayRuntime
from mcp_supervisor.gateway.tcp_socket import PortInUse, bind_listener
from mcp_supervisor.protocol.endpoints import Endpoints
from mcp_supervisor.protocol.exit_codes import EXIT_FAILURE, GATEWAY_PORT_IN_USE
from mcp_supervisor.protocol.spawn import take_gateway_spec
from mcp_supervisor.system.logs import configure_logging
from mcp_supervisor.system.process_tree import die_with_parent, set_title

log = logging.getLogger("mcp_supervisor.gateway")
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _return_big_blocks() -> None:
    """glibc raises its mmap threshold after big blocks are freed, so a burst of 1 MB requests left the gateway's
    memory in its heap for good (767 MB after 300 of them, issue 22). A fixed threshold gives every block of
    128 KiB or more back to the system as soon as it is freed."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def main(runtime_dir: str, stdio_fds: tuple[int, int] | None = None) -> int:
    spec = take_gateway_spec()  # first: the fd must not outlive this line
    die_with_parent()
    set_title("mcp-supervisor: gateway")
    _return_big_blocks()
    settings = load_settings()
    configure_logging(settings.log_level, "%(asctime)s gateway %(levelname)s %(message)s")
    try:
        # Until the supervisor's snapshot arrives (it carries the validated file), start from the file itself.
        tool_config = load_tool_config(settings.config_dir)
    except ConfigError as exc:
        log.error("%s Serving every tool without overrides until it is fixed.", exc)
        tool_config = ToolConfig()
    runtime = GatewayRuntime(settings, Endpoints(Path(runtime_dir)), tool_config, spec)
    try:
        runtime.core.set_clients(load_clients(settings.config_dir))
    except ConfigError as exc:
        # Fail closed: an access file that cannot be read must not open every tool to everyone.
        log.error("%s Every client sees nothing until it is fixed.", exc)
        runtime.core.set_clients(ClientsConfig(present=True))
    if stdio_fds is not None:
        return event_loop.run(_serve_stdio(runtime, *stdio_fds), settings.event_loop)
    return _serve_http(runtime, settings)


def _serve_http(runtime: GatewayRuntime, settings: Settings) -> int:
    # httptools (C) rather than uvicorn's default h11 (pure Python, ~30 % of the CPU per call in py-spy), with the
    # same deadlines.
    protocol = type(
        "GatewayHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_timeout_s": settings.header_timeout_s, "body_timeout_s": settings.body_timeout_s},
    )
    try:
        listener = bind_listener(settings.host, settings.port)
    except PortInUse as exc:
        log.error("%s.", exc)
        return GATEWAY_PORT_IN_USE
    config = uvicorn.Config(
        create_app(runtime),
        host=settings.host,
        port=settings.port,
        http=protocol,
        loop=settings.event_loop,  # not uvicorn's "auto", which takes uvloop whenever installed
        limit_concurrency=settings.max_connections,
        # Forwarded headers only from the proxies named in FORWARDED_ALLOW_IPS. uvicorn's own default trusts
        # 127.0.0.1, where every backend runs: a backend (or any local process) could then pose as any client
        # address, past the admin's login throttle, for one.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=list(settings.forwarded_allow_ips) or None,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        lifespan="on",
        timeout_graceful_shutdown=3,
        # One header less to build and validate on every response (h11 checks each one in Python); the
        # Date header stays, as RFC 9110 asks of an origin server with a clock.
        server_header=False,
    )
    server = GatewayServer(config, runtime)
    event_loop.run(server.serve(sockets=[listener]), settings.event_loop)  # what server.run does, on our loop
    return 0 if server.started else EXIT_FAILURE


# uvicorn's own loop wakes ten times a second to look for a stop request; on this kind of machine a wake-up of an
# idle process costs ~0.3 ms, so that alone was a third of an idle tree's CPU at a hundred backends. Here it
# wakes once a second (the Date header's own pace), and at once when a stop is asked for.
TICK_S = 1.0


class GatewayServer(uvicorn.Server):
    """uvicorn, ending the open `subscriptions/listen` streams gracefully as soon as it is told to stop: their
    connections then close within the shutdown grace period instead of being cut when it runs out."""

    def __init__(self, config: uvicorn.Config, runtime: GatewayRuntime) -> None:
        super().__init__(config)
        self._runtime = runtime
        self._stop_asked: asyncio.Event | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        with contextlib.suppress(RuntimeError):  # no loop running (yet): nothing is open
            loop = asyncio.get_running_loop()
            loop.call_soon_threadsafe(self._runtime.core.listeners.close_all)
            if self._stop_asked is not None:
                loop.call_soon_threadsafe(self._stop_asked.set)
        super().handle_exit(sig, frame)

    async def main_loop(self) -> None:
        """uvicorn's `main_loop`, ticking every TICK_S instead of every 0.1 s (`on_tick` refreshes the Date header
        when its counter is a multiple of 10, so every tick here is one of those)."""
        self._stop_asked = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_asked.wait(), TICK_S)


async def _serve_stdio(runtime: GatewayRuntime, in_fd: int, out_fd: int) -> int:
    """Exit 0 when the client closes stdin: the supervisor takes that as the end of the whole tree."""
    await runtime.start()
    try:
        await StdioFrontend(runtime.core, in_fd, out_fd).serve()
    finally:
        await runtime.stop()
    return 0
