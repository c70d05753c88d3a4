"""What every admin route works with, built once per gateway process."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.admin.auth import AdminAuth
from mcp_supervisor.admin.config_store import ConfigStore
from mcp_supervisor.admin.events import EventHub
from mcp_supervisor.admin.throttle import LoginThrottle
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.control_client import send_command_async
from mcp_supervisor.gateway.admin_view import AdminView
from mcp_supervisor.protocol.messages import CommandResult
from mcp_supervisor.tasks import BackgroundTasks


@dataclass
class AdminContext:
    gateway: AdminView
    auth: AdminAuth
    store: ConfigStore
    hub: EventHub = field(default_factory=EventHub)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    _background: BackgroundTasks = field(default_factory=BackgroundTasks)

    @property
    def settings(self) -> Settings:
        return self.gateway.settings

    async def command(self, name: str, key: str = "") -> CommandResult:
        """A supervisor command (reload, restart, stop, start); ControlError when it does not answer."""
        return await send_command_async(self.gateway.endpoints, self.gateway.credentials, name, key)

    def in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        self._background.spawn(work)

    async def close(self) -> None:
        self._background.cancel_all()
