"""One error hierarchy for the whole product.

Errors are raised with full sentences that name the offending file, key or backend. They are mapped to
JSON-RPC errors only at the gateway edge (`gateway/server/jsonrpc.py`) and to exit codes only in `cli.py`.
"""

from __future__ import annotations


class SupervisorError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SupervisorError):
    """A configuration file or environment variable is invalid; the message says which and why."""


class ProtocolError(SupervisorError):
    """A message on an internal ZeroMQ socket could not be decoded."""


class BackendError(SupervisorError):
    """A backend could not be reached, initialized or listed."""


class ControlError(SupervisorError):
    """The supervisor's control socket could not be reached or refused a command."""


def describe(exc: BaseException) -> str:
    """One line for an error that may be an ExceptionGroup (the SDK's task groups raise them)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, BackendError) else f"{type(exc).__name__}: {text}"
