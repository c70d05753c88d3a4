"""The supervisor process's entry (`mcp-supervisor start` and `stdio`): logging, the host's stdio and runtime
dir, then the Supervisor's loop until it stops; its return value is the process's exit code."""

from __future__ import annotations

import asyncio

from mcp_supervisor.config.settings import Settings
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.supervisor.main import Supervisor
from mcp_supervisor.supervisor.stdio_refusal import refuse_stdio_client
from mcp_supervisor.system.logs import configure_logging


def run_supervisor(settings: Settings, stdio: bool = False) -> int:
    configure_logging(settings.log_level, "%(asctime)s supervisor %(levelname)s %(message)s")
    supervisor = Supervisor(settings, stdio=stdio)
    supervisor.host.prepare()  # outside the try: a refused runtime dir is told on stderr only, as it always was
    try:
        return asyncio.run(supervisor.run())
    except ConfigError as exc:
        if supervisor.host.stdio_fds is not None:
            refuse_stdio_client(*supervisor.host.stdio_fds, str(exc))
        raise
