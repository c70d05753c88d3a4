"""Resource sampling of a worker and everything below it (its backend and the backend's children).

Cheap enough for hundreds of trees: a tree's members come from /proc/<pid>/task/*/children (the cost of the
tree, not of every process on the machine, as psutil's recursive children() is), and a tree whose figures
do not change is sampled less and less often (the interval doubles up to `MAX_BACKOFF` times the base: about
a minute; `LIMITED_MAX_BACKOFF` for a tree with an RSS limit, whose growth must be caught sooner), back to the
base interval at the first change. Only a changed sample is worth publishing.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

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


class TreeSampler:
    """Keeps psutil.Process objects between samples: cpu_percent is measured between two calls."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._known: dict[int, psutil.Process] = {pid: self._root}
        self.last: ResourceSample | None = None
        self.due = 0.0  # monotonic time of the next sample
        self.backoff = 1

    def sample(self) -> ResourceSample:
        root = self._root.pid
        rss = fds = 0
        cpu = 0.0
        alive: dict[int, psutil.Process] = {}
        for pid in [root, *descendants_of(root)]:
            process = self._known.get(pid)
            try:
                if process is None:
                    process = psutil.Process(pid)
                with process.oneshot():
                    rss += process.memory_info().rss
                    cpu += process.cpu_percent(None)
                    fds += process.num_fds()
            except psutil.Error:
                if pid == root:
                    return ResourceSample()
                continue
            alive[pid] = process
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
