"""Prometheus text exposition of per-backend health and traffic (format 0.0.4, no client library needed).

Traffic (calls, errors, latency) is counted by the gateway where requests pass; state, restarts and
resources come from the supervisor's reports.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from mcp_supervisor.gateway.frontends.event_log import Budget
from mcp_supervisor.protocol.messages import BackendStatus
from mcp_supervisor.protocol.states import BackendState

# Seconds; a relayed call is typically a millisecond, a slow tool many seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STATES = tuple(BackendState)


@dataclass
class BackendTraffic:
    calls: int = 0
    errors: int = 0
    latency_sum: float = 0.0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))


class Metrics:
    def __init__(self) -> None:
        self.traffic: dict[str, BackendTraffic] = {}
        # Worker messages dropped for speaking for someone else (a forged reply, a borrowed identity).
        self.refused_messages = 0
        # The budget of notifications buffered for slow clients (set by the runtime), and log lines that could
        # be attributed to no single credential.
        self.budget: Budget | None = None
        self.unattributed_logs = 0
        # Per backend: its notifications its worker's budget dropped and coalesced (worker/budget.py).
        self.notifications: dict[str, tuple[int, int]] = {}

    def notified(self, backend: str, dropped: int, coalesced: int) -> None:
        """A worker's heartbeat: what its backend's notification budget dropped and coalesced so far."""
        if dropped or coalesced:
            self.notifications[backend] = (dropped, coalesced)

    def observe(self, backend: str, seconds: float, error: bool) -> None:
        traffic = self.traffic.get(backend)
        if traffic is None:
            traffic = self.traffic[backend] = BackendTraffic()
        traffic.calls += 1
        traffic.errors += error
        traffic.latency_sum += seconds
        traffic.bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1

    def render(
        self,
        statuses: Iterable[BackendStatus],
        linked: Mapping[str, object],
        sessions: int,
        visible: Callable[[str], bool] = lambda key: True,
    ) -> str:
        """The exposition, with only the backends `visible` to the asking client (its clients.json view)."""
        lines: list[str] = []
        shown = [status for status in statuses if visible(status.key)]
        traffic = sorted(((key, t) for key, t in self.traffic.items() if visible(key)), key=lambda item: item[0])
        self._render_gateway(lines, sessions)
        _render_statuses(lines, shown, linked)
        self._render_notifications(lines, visible)
        _render_traffic(lines, traffic)
        return "\n".join(lines) + "\n"

    def _render_gateway(self, lines: list[str], sessions: int) -> None:
        """The gateway-wide families: sessions, refused messages, the notification budget, unattributed logs."""
        budget = self.budget if self.budget is not None else Budget()
        for name, kind, help_text, value in (
            ("mcp_gateway_sessions", "gauge", "Client sessions held by the gateway.", sessions),
            (
                "mcp_gateway_refused_messages_total",
                "counter",
                "Worker messages dropped because they spoke for another worker or request.",
                self.refused_messages,
            ),
            (
                "mcp_gateway_dropped_notifications_total",
                "counter",
                "Notifications dropped for clients too slow to read them (replies are never dropped).",
                budget.dropped,
            ),
            (
                "mcp_gateway_buffered_notification_bytes",
                "gauge",
                "Bytes of notifications buffered for clients.",
                budget.used,
            ),
            (
                "mcp_gateway_unattributed_log_messages_total",
                "counter",
                "Backend log lines sent to nobody: requests of several credentials were in flight at the backend.",
                self.unattributed_logs,
            ),
        ):
            _family(lines, name, kind, help_text)
            lines.append(f"{name} {value}")

    def _render_notifications(self, lines: list[str], visible: Callable[[str], bool]) -> None:
        """What each backend's worker dropped and coalesced past its notification budget (from heartbeats)."""
        _family(
            lines,
            "mcp_backend_dropped_notifications_total",
            "counter",
            "The backend's notifications dropped past its budget by its worker, this generation (never responses).",
        )
        shown = sorted((key, counts) for key, counts in self.notifications.items() if visible(key))
        for key, (dropped, _) in shown:
            lines.append(f'mcp_backend_dropped_notifications_total{{backend="{_label(key)}"}} {dropped}')
        _family(
            lines,
            "mcp_backend_coalesced_notifications_total",
            "counter",
            "The backend's progress and resource-update notifications replaced by a later one past its budget.",
        )
        for key, (_, coalesced) in shown:
            lines.append(f'mcp_backend_coalesced_notifications_total{{backend="{_label(key)}"}} {coalesced}')


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


# Per-backend families read straight off the supervisor's status: (name, kind, help, value).
_STATUS_FAMILIES: tuple[tuple[str, str, str, Callable[[BackendStatus], object]], ...] = (
    ("mcp_backend_restarts_total", "counter", "Restarts of the backend's worker after crashes.", lambda s: s.restarts),
    (
        "mcp_backend_rss_bytes",
        "gauge",
        "Resident memory of the worker and its backend processes.",
        lambda s: s.rss_bytes,
    ),
    ("mcp_backend_cpu_percent", "gauge", "CPU use of the worker and its backend processes.", lambda s: s.cpu_percent),
    (
        "mcp_backend_refused_replies_total",
        "counter",
        "Replies the backend sent for request ids it was never given (dropped by its worker), this generation.",
        lambda s: s.refused_replies,
    ),
)


def _render_statuses(lines: list[str], statuses: list[BackendStatus], linked: Mapping[str, object]) -> None:
    """Up, state, restarts and resources of every shown backend, from the supervisor's reports."""
    _family(lines, "mcp_backend_up", "gauge", "1 when the backend is RUNNING and linked to the gateway.")
    for s in statuses:
        up = int(s.state == BackendState.RUNNING and s.key in linked)
        lines.append(f'mcp_backend_up{{backend="{_label(s.key)}",type="{s.type}"}} {up}')
    _family(lines, "mcp_backend_state", "gauge", "The backend's supervision state (1 for the current one).")
    for s in statuses:
        for state in STATES:
            lines.append(f'mcp_backend_state{{backend="{_label(s.key)}",state="{state}"}} {int(s.state == state)}')
    for name, kind, help_text, value in _STATUS_FAMILIES:
        _family(lines, name, kind, help_text)
        for s in statuses:
            lines.append(f'{name}{{backend="{_label(s.key)}"}} {value(s)}')


def _render_traffic(lines: list[str], traffic: list[tuple[str, BackendTraffic]]) -> None:
    """Calls, errors and the latency histogram the gateway counted for each shown backend."""
    _family(lines, "mcp_backend_calls_total", "counter", "Requests relayed to the backend.")
    for key, t in traffic:
        lines.append(f'mcp_backend_calls_total{{backend="{_label(key)}"}} {t.calls}')
    _family(lines, "mcp_backend_errors_total", "counter", "Relayed requests that ended in a JSON-RPC error.")
    for key, t in traffic:
        lines.append(f'mcp_backend_errors_total{{backend="{_label(key)}"}} {t.errors}')
    _family(lines, "mcp_backend_request_seconds", "histogram", "Latency of relayed requests, gateway to backend.")
    for key, t in traffic:
        cumulative = 0
        for bound, count in zip((*BUCKETS, float("inf")), t.bucket_counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'mcp_backend_request_seconds_bucket{{backend="{_label(key)}",le="{le}"}} {cumulative}')
        lines.append(f'mcp_backend_request_seconds_sum{{backend="{_label(key)}"}} {t.latency_sum}')
        lines.append(f'mcp_backend_request_seconds_count{{backend="{_label(key)}"}} {t.calls}')


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
