"""Resource sampling of a worker and everything below it (its backend and the backend's children).

Cheap enough for hundreds of trees: a tree's members come from /proc/<pid>/task/*/children (the cost of the
tree, not of every process on the machine, as psutil's recursive children() is), each member costs one read of
/proc/<pid>/stat and statm (CPU time, RSS) and one listing of its fds (psutil took ~5 times as long for the same
figures, which at a hundred trees was most of an idle supervisor's CPU), and a tree whose figures
do not change is sampled less and less often (the interval doubles up to `MAX_BACKOFF` times the base: about
a minute; `LIMITED_MAX_BACKOFF` for a tree with an RSS limit, whose growth must be caught sooner), back to the
base interval at the first change. Only a changed sample is worth publishing.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

from mcp_supervisor.system.process_tree import descendants_of

MAX_BACKOFF = 32
LIMITED_MAX_BACKOFF = 8
# Below these differences two samples are "the same" (idle noise: a page here, a tick of CPU there).
RSS_NOISE_BYTES = 256 * 1024
CPU_NOISE_PERCENT = 0.5


@dataclass(frozen=True)
class ResourceSample:
    rss_bytes: int = 0
    cpu_percent: float = 0.0
    fds: int = 0
    processes: int = 0

    def same_as(self, other: ResourceSample) -> bool:
        return (
            abs(self.rss_bytes - other.rss_bytes) < RSS_NOISE_BYTES
            and abs(self.cpu_percent - other.cpu_percent) < CPU_NOISE_PERCENT
            and self.fds == other.fds
            and self.processes == other.processes
        )


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def read_stat(pid: int) -> tuple[int, int, int] | None:
    """(start time, CPU ticks used, RSS bytes) of a process, from /proc/<pid>/stat and statm (whose resident
    count is exact; stat's is the kernel's per-CPU estimate); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
        with open(f"/proc/{pid}/statm", "rb") as handle:
            resident = int(handle.read().split()[1])
        fields = data[data.rindex(b")") + 2 :].split()  # after the command name, which may hold anything
        return int(fields[19]), int(fields[11]) + int(fields[12]), resident * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


class TreeSampler:
    """Keeps each member's CPU ticks between samples: its CPU % is measured between two samples."""

    def __init__(self, pid: int) -> None:
        """Raises ProcessLookupError when `pid` is gone already."""
        if read_stat(pid) is None:
            raise ProcessLookupError(pid)
        self._root = pid
        self._known: dict[int, tuple[int, int, float]] = {}  # pid -> (start time, CPU ticks, when)
        self.last: ResourceSample | None = None
        self.due = 0.0  # monotonic time of the next sample
        self.backoff = 1

    def sample(self) -> ResourceSample:
        root = self._root
        rss = fds = 0
        cpu = 0.0
        now = time.monotonic()
        alive: dict[int, tuple[int, int, float]] = {}
        for pid in [root, *descendants_of(root)]:
            stat = read_stat(pid)
            if stat is None:
                if pid == root:
                    return ResourceSample()
                continue
            start, ticks, rss_bytes = stat
            rss += rss_bytes
            # Another user's process (a backend run as `runAs`): its fds are not ours to count.
            with contextlib.suppress(OSError):
                fds += len(os.listdir(f"/proc/{pid}/fd"))
            before = self._known.get(pid)
            if before is not None and before[0] == start and now > before[2]:  # the same process (not a reused pid)
                cpu += (ticks - before[1]) / _CLOCK_TICKS / (now - before[2]) * 100
            alive[pid] = (start, ticks, now)
        self._known = alive
        return ResourceSample(rss_bytes=rss, cpu_percent=round(cpu, 1), fds=fds, processes=len(alive))

    def due_sample(
        self, now: float, interval_s: float, max_backoff: int = MAX_BACKOFF
    ) -> tuple[ResourceSample, bool] | None:
        """A sample if one is due (with whether it changed), else None; schedules the next one."""
        if now < self.due:
            return None
        sample = self.sample()
        changed = self.last is None or not sample.same_as(self.last)
        if changed:
            self.last = sample
        self.backoff = 1 if changed else min(max_backoff, self.backoff * 2)
        self.due = now + interval_s * self.backoff - 0.05  # a tick's jitter does not skip a round
        return sample, changed
