"""/metrics shows a client only the backends of its own view, in every per-backend family."""

from __future__ import annotations

from mcp_supervisor.gateway.dataplane.metrics import Metrics


def test_per_backend_notification_counts_stay_in_the_clients_view() -> None:
    metrics = Metrics()
    metrics.notifications = {"mine": (1, 2), "theirs": (30, 40)}
    text = metrics.render([], {}, 0, visible=lambda key: key == "mine")
    assert 'backend="mine"' in text
    assert "theirs" not in text  # another client's backend: not even its name
