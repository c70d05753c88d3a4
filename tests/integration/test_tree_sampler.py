"""Resource sampling of a process tree straight from /proc (supervisor/health.py), against psutil's figures."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from mcp_supervisor.supervisor.health import LIMITED_MAX_BACKOFF, MAX_BACKOFF, TreeSampler, read_stat

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_tree_is_sampled_as_psutil_sees_it() -> None:
    # A parent that burns CPU, with an idle child.
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & while :; do :; done"])
    try:
        time.sleep(0.3)
        sampler = TreeSampler(parent.pid)
        processes = [psutil.Process(parent.pid), *psutil.Process(parent.pid).children(recursive=True)]
        busy = processes[0]
        sampler.sample()
        began, ticks_before = time.monotonic(), sum(busy.cpu_times()[:2])
        time.sleep(0.5)
        sample = sampler.sample()
        # What the busy process really got over the window (the cores may be shared with other work).
        expected = (sum(busy.cpu_times()[:2]) - ticks_before) / (time.monotonic() - began) * 100
        assert sample.processes == len(processes) == 2
        assert sample.fds == sum(p.num_fds() for p in processes)
        assert abs(sample.rss_bytes - sum(p.memory_info().rss for p in processes)) < 256 * 1024
        assert expected > 10 and abs(sample.cpu_percent - expected) < 15  # ticks are 10 ms: ±2 % of 0.5 s, and skew
    finally:
        parent.kill()
        parent.wait()
    assert read_stat(parent.pid) is None
    with pytest.raises(ProcessLookupError):
        TreeSampler(parent.pid)


def wait_until_asleep(pid: int, timeout: float = 10.0) -> None:
    """Until the process sleeps (its start-up's CPU ticks are all counted): a tick landing between two samples
    is a change, which rightly resets the backoff. Bounded poll."""
    deadline = time.monotonic() + timeout
    while True:
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "S":
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} never went to sleep")
        time.sleep(0.01)


def test_a_steady_tree_is_sampled_less_and_less_often() -> None:
    idle = subprocess.Popen(["sleep", "30"])
    try:
        wait_until_asleep(idle.pid)
        sampler = TreeSampler(idle.pid)
        intervals = []
        now = 0.0
        for _ in range(8):
            assert sampler.due_sample(now, 2.0) is not None
            assert sampler.due_sample(now, 2.0) is None  # not due again at once
            intervals.append(round(sampler.due - now + 0.05, 3))
            now = sampler.due
        assert intervals == [2.0 * min(2**i, MAX_BACKOFF) for i in range(8)]  # the first one is news
        limited = TreeSampler(idle.pid)
        for _ in range(8):
            limited.due_sample(now, 2.0, LIMITED_MAX_BACKOFF)
            now = limited.due
        assert limited.backoff == LIMITED_MAX_BACKOFF
    finally:
        idle.kill()
        idle.wait()
