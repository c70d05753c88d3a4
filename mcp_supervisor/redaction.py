"""Credentials out of anything shown or logged: URL userinfo (`http://user:password@host`) and the values of
query parameters whose names say they carry a secret (`?api_key=…`, `&token=…`, `sessionId=…`).

Used on every error, status field and log line that may hold a URL: a remote backend's connection errors quote
its URL, and library loggers print every request's.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@?#]+@")
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&;][^=&\s#]*(?:key|token|secret|passw|pwd|auth|sig|credential|session|code)[^=&\s#]*=)"
    r"[^&\s#'\")\]]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    if "@" not in text and "=" not in text:
        return text  # the usual log line: nothing to do
    text = _USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    return _SECRET_PARAMETER.sub(rf"\g<name>{MASK}", text)


def redact_optional(text: str | None) -> str | None:
    return None if text is None else redact(text)


class RedactingFilter(logging.Filter):
    """Attached to a process's log handlers: every record is redacted once, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install_log_redaction() -> None:
    """After logging.basicConfig: every root handler redacts what it writes."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
