"""Logging set-up shared by the supervisor, the gateway and the workers.

Our own loggers (`mcp_supervisor.*`) log at LOGGING's level; every library's (httpx, the MCP SDK, ...) at
WARNING unless LOGGING=debug. The HTTP client library logs one INFO line per request, `HTTP Request: POST
http://…/message?sessionId=…`: per call of an SSE backend that floods the log, and it would print any
credential a URL carries. Whatever is logged, by whoever, is redacted (mcp_supervisor/redaction.py).
"""

from __future__ import annotations

import logging
import sys

from mcp_supervisor.redaction import install_log_redaction

LIBRARY_LEVEL = logging.WARNING


def configure_logging(level: str, line_format: str) -> None:
    own = logging.getLevelName(level)
    own_level = own if isinstance(own, int) else logging.INFO
    libraries = own_level if own_level <= logging.DEBUG else max(own_level, LIBRARY_LEVEL)
    logging.basicConfig(level=libraries, stream=sys.stderr, format=line_format)
    logging.getLogger("mcp_supervisor").setLevel(own_level)
    install_log_redaction()
