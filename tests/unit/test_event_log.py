"""The per-stream buffer: replies are never evicted, notifications are bounded per stream and by a shared
budget, and what is dropped is counted (issue 14, finding 1)."""

from __future__ import annotations

from mcp_supervisor.gateway.frontends.event_log import Budget, EventLog


def test_replies_survive_any_number_of_notifications() -> None:
    drops: list[int] = []
    log = EventLog(0, limit=10, on_drop=lambda: drops.append(1))
    for index in range(1000):
        log.append(b"reply %d" % index)
        log.append(b"note %d" % index, True)
    held = [event[1] for event in log.events if event[1] is not None]
    assert [d for d in held if d.startswith(b"reply")] == [b"reply %d" % i for i in range(1000)]
    assert [d for d in held if d.startswith(b"note")] == [b"note %d" % i for i in range(990, 1000)]
    assert log.dropped == len(drops) == 990
    # Sequence numbers are what they were: a follower after seq 1 gets the rest, oldest first.
    assert [e[0] for e in log.after(1999)] == [2000]


def test_the_shared_budget_bounds_every_stream_together() -> None:
    budget = Budget(limit_bytes=1000)
    first, second = EventLog(0, budget=budget), EventLog(0, budget=budget)
    for _ in range(100):
        first.append(b"x" * 100, True)
        second.append(b"y" * 100, True)
        second.append(b"a reply, never dropped " * 10)
    assert budget.used <= 1000 + 100
    assert budget.dropped == first.dropped + second.dropped >= 180
    assert second.kept_bytes == 100 * len(b"a reply, never dropped " * 10)
    first.release()
    second.release()
    assert budget.used == 0


def test_a_stream_nobody_can_resume_forgets_what_it_delivered() -> None:
    log = EventLog(0, resumable=False)
    log.append(b"reply")
    log.append(b"note", True)
    log.trim(2)
    assert not log.events and log.kept_bytes == 0 and log.note_bytes == 0
