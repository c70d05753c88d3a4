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
        sampler.sample()
        time.sleep(0.5)
        sample = sampler.sample()
        processes = [psutil.Process(parent.pid), *psutil.Process(parent.pid).children(recursive=True)]
        assert sample.processes == len(processes) == 2
        assert sample.fds == sum(p.num_fds() for p in processes)
        assert abs(sample.rss_bytes - sum(p.memory_info().rss for p in processes)) < 256 * 1024
        assert 50 <= sample.cpu_percent <= 110  # one busy process (the CPU may be shared)
    finally:
        parent.kill()
        parent.wait()
    assert read_stat(parent.pid) is None
    with pytest.raises(ProcessLookupError):
        TreeSampler(parent.pid)


def test_a_steady_tree_is_sampled_less_and_less_often() -> None:
    idle = subprocess.Popen(["sleep", "30"])
    try:
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
