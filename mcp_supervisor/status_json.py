"""`mcp-supervisor status --json`: a documented, stable schema (README, "status --json"), not the internal
control message. Every field is always present (null when unknown, 0 when zero); fields are only ever added,
and `schema` grows when one's meaning changes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mcp_supervisor.protocol.messages import BackendStatus, SandboxReport, Snapshot

SCHEMA_VERSION = 1


def status_document(snapshot: Snapshot, config_dir: Path, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {
        "schema": SCHEMA_VERSION,
        "config_dir": str(config_dir),
        "config_error": snapshot.config_error or None,
        "worker_spawn": snapshot.worker_spawn or None,
        "gateway": _entry(snapshot.gateway, now) if snapshot.gateway is not None else None,
        "backends": [_entry(status, now) for status in snapshot.backends],
        # Tools, prompts, URIs and templates the gateway withholds or finds overlapping, each with its reason.
        "catalog_problems": list(snapshot.catalog_problems),
    }


def _entry(status: BackendStatus, now: float) -> dict[str, Any]:
    return {
        "key": status.key,
        "type": status.type,
        "state": status.state,
        "generation": status.generation,
        "pid": status.pid,
        "started_at": status.started_at,
        "uptime_seconds": round(now - status.started_at, 1) if status.started_at is not None else None,
        "restarts": status.restarts,
        "last_exit": status.last_exit,
        "last_error": status.last_error,
        "last_stderr": status.last_stderr,
        "rss_bytes": status.rss_bytes,
        "cpu_percent": status.cpu_percent,
        "fds": status.fds,
        "processes": status.processes,
        "in_flight": status.in_flight,
        "refused_replies": status.refused_replies,
        "next_attempt_at": status.next_attempt_at,
        "start_method": status.start_method or None,
        "era": status.era or None,
        "protocol_version": status.protocol_version or None,
        "detail": status.detail or None,
        "sandbox": _sandbox(status.sandbox) if status.sandbox is not None else None,
    }


def _sandbox(report: SandboxReport) -> dict[str, Any]:
    return {
        "mode": report.mode,
        "method": report.method,
        "enforced": dict(report.enforced),
        "not_enforced": dict(report.not_enforced),
        "exposure": report.exposure,
        "exposure_factors": dict(report.exposure_factors),
        "measures": list(report.measures),
    }
