"""Everything the gateway runs besides its client front ends: the data plane, the core, the supervisor link.

One runtime per gateway process, shared by whichever front ends serve (HTTP routes, or stdio).
"""

from __future__ import annotations

import asyncio
import logging

from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.dataplane.backends import Backends
from mcp_supervisor.gateway.dataplane.supervisor_link import SupervisorLink
from mcp_supervisor.gateway.frontends.event_log import Budget
from mcp_supervisor.gateway.frontends.sealed_sessions import SessionSealer
from mcp_supervisor.gateway.server.core import GatewayCore
from mcp_supervisor.gateway.server.sessions import SessionStore
from mcp_supervisor.protocol import socket_auth
from mcp_supervisor.protocol.endpoints import Endpoints
from mcp_supervisor.protocol.spawn import GatewaySpec

log = logging.getLogger("mcp_supervisor.gateway")

# Idle sessions are looked for this often (under load the idle timeout itself shortens, see SessionStore).
SESSION_SWEEP_INTERVAL_S = 10.0


class GatewayRuntime:
    def __init__(self, settings: Settings, endpoints: Endpoints, tool_config: ToolConfig, spec: GatewaySpec) -> None:
        self.settings = settings
        self.endpoints = endpoints
        instance_key = bytes.fromhex(spec.instance_key)
        # The gateway's own credentials toward the supervisor (its subscription, heartbeats, admin commands).
        self.credentials = socket_auth.derive(instance_key, socket_auth.gateway_user(spec.generation))
        self.sessions = SessionStore(
            max_sessions=settings.max_sessions,
            idle_timeout_s=settings.session_idle_timeout_s,
            max_per_credential=settings.max_sessions_per_credential,
            idle_timeout_under_load_s=settings.session_idle_timeout_under_load_s,
            budget=Budget(settings.notification_buffer_bytes),
            sealer=SessionSealer(settings.request_state_secret, instance_key, settings.session_max_lifetime_s),
        )
        # The core needs the backends and the backends notify the core: a late-bound callback breaks the cycle.
        self.backends = Backends(
            endpoints,
            instance_key,
            lambda: self.core.catalog_changed(),
            lambda key, generation, message: self.core.on_backend_message(key, generation, message),
        )
        self.backends.metrics.budget = self.sessions.budget
        self.core = GatewayCore(settings, self.backends, self.sessions, tool_config)
        self.supervisor = SupervisorLink(
            endpoints, self.credentials, self.backends, self.core.set_tool_config, self.core.set_clients
        )
        self.supervisor.catalog_problems = self.core.catalog.problems
        self.core.catalog.config_source = lambda: self.supervisor.running_servers
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.backends.start()
        self._tasks = [
            asyncio.create_task(self.supervisor.run(), name="supervisor-link"),
            asyncio.create_task(self.supervisor.heartbeat(), name="gateway-heartbeat"),
            asyncio.create_task(self._sweep_sessions(), name="session-sweeper"),
            asyncio.create_task(self.core.pins.watch(self._screen_catalog), name="tool-pinning"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.core.listeners.close_all()
        for session in self.sessions.all():
            self.sessions.close(session.id)
        await self.backends.close()
        self.supervisor.close()

    def _screen_catalog(self) -> None:
        """Tool pinning screens a rebuilt catalog even before a client lists it (status, metrics, the log)."""
        _ = self.core.catalog.tools, self.core.catalog.prompts

    async def _sweep_sessions(self) -> None:
        while True:
            await asyncio.sleep(SESSION_SWEEP_INTERVAL_S)
            expired = self.sessions.expire_idle()
            if expired:
                log.info("Closed %d idle client sessions.", expired)
