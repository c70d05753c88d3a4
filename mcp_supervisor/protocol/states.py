"""The states a supervised child (the gateway, or the worker of one backend key) goes through, and what a worker
reports about its backend.

STOPPED → STARTING → RUNNING; a crash → BACKOFF → STARTING …; too many crashes → FATAL; a commanded stop →
STOPPING → STOPPED. A worker is RUNNING only once it reported its backend initialized.

StrEnums: a member is its string, so `status`, `/metrics`, the admin's JSON and the wire messages spell them
exactly as before. Messages keep `str` fields, so a peer that knows a state we do not still decodes.
"""

from __future__ import annotations

import enum


class BackendState(enum.StrEnum):
    # The order is the one `/metrics` lists them in.
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    FATAL = "FATAL"


class WorkerReport(enum.StrEnum):
    """What a worker tells the supervisor of its backend (`WorkerStateReport.state`, the beat page)."""

    READY = "ready"
    FAILED = "failed"
