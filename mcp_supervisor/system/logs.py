"""Logging set-up shared by the supervisor, the gateway and the workers.

Our own loggers (`mcp_supervisor.*`) log at LOGGING's level; every library's (httpx, the MCP SDK, ...) at
WARNING unless LOGGING=debug. The HTTP client library logs one INFO line per request, `HTTP Request: POST
http://…/message?sessionId=…`: per call of an SSE backend that floods the log, and it would print any
credential a URL carries. Whatever is logged, by whoever, is redacted (mcp_supervisor/redaction.py).
"""

from __future__ import annotations

import logging
import re
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
    for handler in logging.getLogger().handlers:
        handler.addFilter(_escape_record)


def _escape_record(record: logging.LogRecord) -> bool:
    """A message is one printable line, whatever it quotes (a backend's error text, a client's input): a newline
    in it cannot start a line that passes for another process's (the supervisor echoes lines with our headers
    as they are), nor an escape sequence reach a terminal. Tracebacks stay as they are (`exc_text`)."""
    message = record.getMessage()
    escaped = escape_controls(message)
    if escaped != message:
        record.msg, record.args = escaped, None
    return True


# What a line of someone else's output must not carry into a log or a terminal: C0 controls but TAB (ESC starts a
# terminal escape sequence, CR overwrites what was printed before it, NL would start a line of its own), DEL, the
# C1 controls (U+009B is a one-character CSI), and the bidi controls that reorder what a reader sees.
_CONTROL_CHARS = [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, *range(0x80, 0xA0)]
_BIDI_CHARS = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {
    **{chr(code): f"\\x{code:02x}" for code in _CONTROL_CHARS},
    **{chr(code): f"\\u{code:04x}" for code in _BIDI_CHARS},
    "\n": "\\n",
    "\r": "\\r",
}
_CONTROL = re.compile("[" + "".join(re.escape(char) for char in _ESCAPES) + "]")


def escape_controls(text: str) -> str:
    """`text` with every control character written out (`\\x1b`, `\\r`, `\\u202e`): printable, one line."""
    if _CONTROL.search(text) is None:
        return text  # the usual line: one scan in C, no copy
    return _CONTROL.sub(lambda match: _ESCAPES[match.group()], text)
