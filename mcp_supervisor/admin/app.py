"""The admin sub-app: every admin route behind AdminGuard, mounted by the gateway at `/admin`.

Starlette runs only the top-level app's lifespan, so the gateway calls `AdminApp.close()` on shutdown (it
cancels installs and closes terminals, whose process groups must not outlive the gateway).
"""

from __future__ import annotations

import logging
import mimetypes
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from mcp_supervisor.admin.auth import AdminAuth, load_secret
from mcp_supervisor.admin.client_routes import client_routes
from mcp_supervisor.admin.config_store import ConfigStore, Conflict, NotFound
from mcp_supervisor.admin.context import AdminContext
from mcp_supervisor.admin.guard import AdminGuard
from mcp_supervisor.admin.health_routes import health_routes
from mcp_supervisor.admin.health_view import backend_health
from mcp_supervisor.admin.http import BadRequest, error
from mcp_supervisor.admin.install_routes import install_routes
from mcp_supervisor.admin.install_sandbox import InstallSandbox
from mcp_supervisor.admin.installs import InstallManager
from mcp_supervisor.admin.password import admin_password
from mcp_supervisor.admin.pin_routes import pin_routes
from mcp_supervisor.admin.server_routes import server_routes
from mcp_supervisor.admin.session_routes import STATIC_DIR, session_routes
from mcp_supervisor.admin.terminal import TerminalManager
from mcp_supervisor.admin.terminal_routes import terminal_routes
from mcp_supervisor.admin.tool_routes import tool_routes
from mcp_supervisor.config.loader import parse_servers
from mcp_supervisor.config.models import ServerEntry, oauth_secret_names
from mcp_supervisor.errors import ConfigError, ControlError
from mcp_supervisor.gateway.admin_view import AdminView
from mcp_supervisor.protocol.messages import BackendStatus
from mcp_supervisor.protocol.states import BackendState

log = logging.getLogger("mcp_supervisor.admin")

# ES modules are refused by browsers unless served as JavaScript; some systems' MIME tables say text/plain.
mimetypes.add_type("text/javascript", ".js")


async def _bad_request(request: Request, exc: Exception) -> Response:
    return error(400, str(exc))


async def _config_error(request: Request, exc: Exception) -> Response:
    status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
    return error(status, str(exc))


async def _control_error(request: Request, exc: Exception) -> Response:
    return error(502, str(exc))


class AdminApp:
    def __init__(self, gateway: AdminView) -> None:
        settings = gateway.settings
        auth = AdminAuth(
            settings.admin_username,
            admin_password(settings),  # AdminRefused for a weak one: the gateway serves on without /admin
            load_secret(settings),
            settings.admin_session_hours * 3600,
            # Beside the backends' state (hidden from them, kept across restarts), not in the config dir, which
            # may be a read-only ConfigMap.
            revocations_path=settings.state_dir.parent / "admin-revocations.json",
        )
        self.ctx = ctx = AdminContext(gateway=gateway, auth=auth, store=ConfigStore(settings.config_dir))
        gateway.on_status(self._on_status)
        gateway.on_config_error(lambda config_error: ctx.hub.publish("config", {"configError": config_error or None}))
        self.installs = InstallManager(
            ctx.hub,
            settings.tools_folder,
            on_finished=self._install_finished,
            withheld=self._oauth_secret_names,
            sandbox=InstallSandbox(settings, gateway.endpoints.runtime_dir, gateway.endpoints.log_dir, self._servers),
        )
        self.terminals: TerminalManager | None = None
        routes: list[BaseRoute] = [
            *session_routes(ctx),
            *server_routes(ctx),
            *tool_routes(ctx),
            *pin_routes(ctx),
            *client_routes(ctx),
            *health_routes(ctx),
            *install_routes(self.installs, ctx.store.server_entry),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
        if settings.enable_web_terminal:
            log.warning("The admin web terminal is enabled: a shell with the gateway's privileges for the admin.")
            self.terminals = TerminalManager(settings.terminal_idle_timeout_s)
            routes.extend(terminal_routes(self.terminals))
        handlers: dict[Any, Any] = {
            BadRequest: _bad_request,
            ConfigError: _config_error,
            ControlError: _control_error,
        }
        app = Starlette(routes=routes, exception_handlers=handlers)
        self.asgi = AdminGuard(app, auth, gateway.request_guard())

    def _servers(self) -> dict[str, ServerEntry]:
        """The active backends of the config file (an install hides their files from its commands)."""
        try:
            return parse_servers(self.ctx.store.servers_path.read_bytes()).active()
        except (OSError, ConfigError):
            return {}

    def _oauth_secret_names(self) -> frozenset[str]:
        try:
            return oauth_secret_names(parse_servers(self.ctx.store.servers_path.read_bytes()).servers)
        except (OSError, ConfigError):
            return frozenset()  # no readable config: no server names a secret to withhold

    def _on_status(self, status: BackendStatus, event: str) -> None:
        self.ctx.hub.publish("backend", {"event": event, "status": backend_health(self.ctx.gateway.linked(), status)})

    def _install_finished(self, key: str, exit_code: int) -> None:
        """A backend that just got installed most likely failed for want of it: start it afresh."""
        status = self.ctx.gateway.statuses().get(key)
        if exit_code == 0 and status is not None and status.state in (BackendState.FATAL, BackendState.BACKOFF):
            self.ctx.in_background(self.ctx.command("restart", key))

    async def close(self) -> None:
        await self.installs.close()
        if self.terminals is not None:
            await self.terminals.close_all()
        await self.ctx.close()
