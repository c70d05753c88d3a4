"""The gateway process: uvicorn serving the app, under the supervisor."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import uvicorn

from mcp_supervisor.config.loader import load_tool_config
from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import load_settings
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.gateway.app import create_app
from mcp_supervisor.protocol.endpoints import Endpoints
from mcp_supervisor.supervisor.linux import die_with_parent, set_title

log = logging.getLogger("mcp_supervisor.gateway")


def main(runtime_dir: str) -> int:
    die_with_parent()
    set_title("mcp-supervisor: gateway")
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr, format="%(asctime)s gateway %(levelname)s %(message)s"
    )
    try:
        tool_config = load_tool_config(settings.config_dir)
    except ConfigError as exc:
        log.error("%s Serving every tool without overrides until it is fixed.", exc)
        tool_config = ToolConfig()
    app = create_app(settings, Endpoints(Path(runtime_dir)), tool_config)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=os.environ.get("MCP_SUPERVISOR_ACCESS_LOG") == "1",
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
