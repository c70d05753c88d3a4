"""log_sparingly.Sparingly: one line per window per key, what was held back said next time, keys bounded."""

from __future__ import annotations

import logging
import math

import pytest

from mcp_supervisor.log_sparingly import Sparingly


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_once_per_window_per_key_and_the_count_held_back() -> None:
    clock = Clock()
    sparing = Sparingly(10.0, clock=clock)
    assert sparing.admit("a") == 0
    assert sparing.admit("a") is None
    assert sparing.admit("b") == 0  # another key has its own window
    assert sparing.admit("a") is None
    clock.now += 10.0
    assert sparing.admit("a") == 2
    assert sparing.admit("a") is None
    assert sparing.held_back == 3


def test_infinite_window_is_once_per_key_and_keys_are_bounded() -> None:
    sparing = Sparingly(math.inf, max_keys=2)
    assert sparing.admit("x") == 0
    assert sparing.admit("y") == 0
    assert sparing.admit("x") is None
    assert sparing.admit("z") is None  # a third name: not remembered, so not said
    assert sparing.held_back == 2


def test_log_appends_what_was_held_back(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    sparing = Sparingly(5.0, clock=clock)
    logger = logging.getLogger("test.sparingly")
    with caplog.at_level(logging.WARNING, logger="test.sparingly"):
        for _ in range(4):
            sparing.log(logger, logging.WARNING, None, "flood %d", 7)
        clock.now += 6.0
        assert sparing.log(logger, logging.WARNING, None, "flood %d", 8)
    assert [r.getMessage() for r in caplog.records] == [
        "flood 7",
        "flood 8 (3 more like it not logged since the last one)",
    ]
