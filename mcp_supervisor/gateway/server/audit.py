"""The audit trail: one JSON line for every client request that reaches a backend ("who called what").

Off unless AUDIT_LOG is set; the core then pays one attribute check per call. The line is written when the
backend's answer (or the failure) is in, so it carries the outcome, the duration and the sizes.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
import time
from typing import Any

import msgspec

from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.dataplane.backends import CallContext
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.protocol import error_codes

# Keys whose values never reach the audit file, at any depth: a trail that leaks credentials is a liability.
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|token|secret|key|authori[sz]ation|cookie|credential|session|otp", re.IGNORECASE
)
REDACTED = "[redacted]"

_encoder = msgspec.json.Encoder()


def redact(value: Any) -> Any:
    """A copy of `value` with the values of secret-looking keys replaced, recursively (dicts and lists)."""
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and _SECRET_KEY.search(key) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


class _ErrorCode(msgspec.Struct):
    code: int = error_codes.INTERNAL_ERROR


_error_decoder = msgspec.json.Decoder(_ErrorCode)


def error_code(error: bytes) -> int:
    """The JSON-RPC code of a backend's raw error object (read only for the trail)."""
    try:
        return _error_decoder.decode(error).code
    except msgspec.DecodeError:
        return error_codes.INTERNAL_ERROR


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _handler(target: str, max_bytes: int, backups: int) -> logging.Handler:
    if target == "-":
        return logging.StreamHandler(sys.stderr)
    # Rotation by size keeps a busy gateway from filling its disk; the old files are kept for the auditors.
    return logging.handlers.RotatingFileHandler(target, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")


class AuditLog:
    def __init__(self, handler: logging.Handler, include_arguments: bool):
        # A logger of its own that never propagates: audit lines must not land in (or depend on) the
        # operational log's level and format.
        self._logger = logging.getLogger("mcp_supervisor.audit")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        for old in list(self._logger.handlers):
            self._logger.removeHandler(old)
            old.close()
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(handler)
        self.include_arguments = include_arguments

    def record_call(
        self,
        context: CallContext,
        client: str,
        backend: str,
        method: str,
        params: dict[str, Any] | None,
        started: float,
        outcome: str | int,
        bytes_out: int,
    ) -> None:
        """One relayed request: who (from the session), what (from the client's own params: the exposed
        name, not the backend's), and how it went."""
        session = context.session
        asked = context.params
        ref = asked.get("ref")
        target = asked.get("name") or asked.get("uri")
        if not target and isinstance(ref, dict):
            target = ref.get("name") or ref.get("uri")
        self.record(
            started=started,
            client=client,
            credential=session.identity.principal,
            subject=session.identity.subject,
            client_info=session.client_info,
            method=method,
            target=str(target or ""),
            backend=backend,
            outcome=outcome,
            # What the gateway sent the backend (its params) and what came back (the result or error object).
            bytes_in=len(jsonrpc.encode_json(params)) if params is not None else 0,
            bytes_out=bytes_out,
            arguments=asked.get("arguments"),
        )

    def record(
        self,
        *,
        started: float,
        client: str,
        credential: str,
        subject: str,
        client_info: dict[str, Any],
        method: str,
        target: str,
        backend: str,
        outcome: str | int,
        bytes_in: int,
        bytes_out: int,
        arguments: Any = None,
    ) -> None:
        entry: dict[str, Any] = {
            "time": _timestamp(),
            "principal": {"client": client, "credential": credential, "subject": subject},
            "clientInfo": {k: client_info[k] for k in ("name", "version") if k in client_info},
            "method": method,
            "name": target,
            "backend": backend,
            "outcome": outcome,
            "durationMs": round((time.perf_counter() - started) * 1000, 3),
            "bytesIn": bytes_in,
            "bytesOut": bytes_out,
        }
        if self.include_arguments and arguments is not None:
            entry["arguments"] = redact(arguments)
        self._logger.info(_encoder.encode(entry).decode())

    def record_event(self, entry: dict[str, Any]) -> None:
        """An operator-facing event that is no call (tool pinning: a quarantine, an approval)."""
        self._logger.info(_encoder.encode({"time": _timestamp(), **entry}).decode())

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            self._logger.removeHandler(handler)
            handler.close()


def open_audit(settings: Settings) -> AuditLog | None:
    if not settings.audit_log:
        return None
    return AuditLog(
        _handler(settings.audit_log, settings.audit_max_bytes, settings.audit_backups), settings.audit_arguments
    )
