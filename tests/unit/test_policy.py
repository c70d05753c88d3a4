"""Restart policy over a fake clock: backoff, stable-run reset, crash-loop FATAL."""

from __future__ import annotations

import pytest

from mcp_supervisor.supervisor.restart_policy import Decision, RestartPolicy, RestartSettings


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _policy(clock: FakeClock, rand: float = 1.0) -> RestartPolicy:
    return RestartPolicy(clock=clock, rand=lambda: rand)


def _crash_after(policy: RestartPolicy, clock: FakeClock, ran_s: float, gap_s: float) -> Decision:
    """Advance the clock by `gap_s`, then report a crash of a process that ran `ran_s` seconds."""
    clock.now += gap_s
    return policy.on_crash(started_at=clock.now - ran_s)


def test_delay_doubles_from_half_a_second_up_to_the_cap() -> None:
    clock = FakeClock()
    policy = _policy(clock, rand=1.0)
    # 20 s apart: never more than 4 crashes inside 60 s, and each process ran only 1 s.
    delays = [_crash_after(policy, clock, ran_s=1.0, gap_s=20.0).delay_s for _ in range(9)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert policy.streak == 9


def test_rand_zero_gives_half_of_the_ceiling() -> None:
    clock = FakeClock()
    policy = _policy(clock, rand=0.0)
    delays = [_crash_after(policy, clock, ran_s=1.0, gap_s=20.0).delay_s for _ in range(8)]
    assert delays == [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0]


def test_rand_half_is_three_quarters_of_the_ceiling() -> None:
    clock = FakeClock()
    policy = _policy(clock, rand=0.5)
    assert policy.on_crash(started_at=clock.now) == Decision(fatal=False, delay_s=0.0)  # first: at once
    assert policy.on_crash(started_at=clock.now) == Decision(fatal=False, delay_s=0.375, reason="")


def test_stable_run_resets_the_streak() -> None:
    clock = FakeClock()
    policy = _policy(clock)
    for _ in range(4):
        _crash_after(policy, clock, ran_s=1.0, gap_s=20.0)
    assert policy.streak == 4
    decision = _crash_after(policy, clock, ran_s=60.0, gap_s=61.0)
    assert decision.fatal is False
    assert decision.delay_s == 0.0
    assert policy.streak == 1
    assert _crash_after(policy, clock, ran_s=1.0, gap_s=20.0).delay_s == 0.5


def test_run_just_under_stable_does_not_reset() -> None:
    clock = FakeClock()
    policy = _policy(clock)
    _crash_after(policy, clock, ran_s=1.0, gap_s=0.0)
    _crash_after(policy, clock, ran_s=1.0, gap_s=30.0)
    decision = _crash_after(policy, clock, ran_s=59.9, gap_s=60.0)
    assert decision.delay_s == 1.0
    assert policy.streak == 3


def test_more_than_five_crashes_within_the_window_is_fatal() -> None:
    clock = FakeClock()
    policy = _policy(clock)
    decisions = [_crash_after(policy, clock, ran_s=0.5, gap_s=1.0) for _ in range(6)]
    assert [d.fatal for d in decisions] == [False, False, False, False, False, True]
    fatal = decisions[-1]
    assert fatal.delay_s == 0.0
    assert "6" in fatal.reason
    assert "60" in fatal.reason
    assert "5" in fatal.reason


def test_six_crashes_at_the_same_instant_is_fatal() -> None:
    clock = FakeClock()
    policy = _policy(clock)
    decisions = [policy.on_crash(started_at=clock.now) for _ in range(6)]
    assert decisions[-1].fatal is True
    assert decisions[-1].reason


def test_crashes_spread_over_more_than_the_window_never_go_fatal() -> None:
    clock = FakeClock()
    policy = _policy(clock)
    # Every 13 s: at most 5 crashes (0, 13, 26, 39, 52 s back) inside any 60 s window.
    decisions = [_crash_after(policy, clock, ran_s=0.1, gap_s=13.0) for _ in range(50)]
    assert not any(d.fatal for d in decisions)
    assert decisions[-1].delay_s == 30.0


def test_reset_clears_history_and_streak() -> None:
    clock = FakeClock()
    policy = _policy(clock)
    for _ in range(6):
        last = policy.on_crash(started_at=clock.now)
    assert last.fatal is True
    policy.reset()
    assert policy.streak == 0
    decision = policy.on_crash(started_at=clock.now)
    assert decision == Decision(fatal=False, delay_s=0.0)
    assert policy.streak == 1


def test_custom_settings() -> None:
    clock = FakeClock()
    policy = RestartPolicy(
        settings=RestartSettings(base_delay_s=2.0, max_delay_s=5.0, max_restarts=2, window_s=10.0),
        clock=clock,
        rand=lambda: 1.0,
    )
    first = _crash_after(policy, clock, ran_s=1.0, gap_s=1.0)
    second = _crash_after(policy, clock, ran_s=1.0, gap_s=1.0)
    third = _crash_after(policy, clock, ran_s=1.0, gap_s=1.0)
    assert (first.delay_s, second.delay_s) == (0.0, 2.0)
    assert third.fatal is True
    assert "limit 2" in third.reason


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.999])
def test_delay_stays_between_half_and_all_of_the_ceiling(rand: float) -> None:
    clock = FakeClock()
    policy = _policy(clock, rand=rand)
    for streak in range(1, 10):
        decision = _crash_after(policy, clock, ran_s=1.0, gap_s=20.0)
        ceiling = 0.0 if streak == 1 else min(30.0, 0.5 * 2 ** (streak - 2))
        assert ceiling / 2 <= decision.delay_s <= ceiling
