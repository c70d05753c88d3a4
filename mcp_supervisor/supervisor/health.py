"""Resource sampling of a worker and everything below it (its backend and the backend's children)."""

from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ResourceSample:
    rss_bytes: int = 0
    cpu_percent: float = 0.0
    fds: int = 0
    processes: int = 0


class TreeSampler:
    """Keeps psutil.Process objects between samples: cpu_percent is measured between two calls."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._known: dict[int, psutil.Process] = {pid: self._root}

    def sample(self) -> ResourceSample:
        try:
            members = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return ResourceSample()
        rss = fds = 0
        cpu = 0.0
        alive: dict[int, psutil.Process] = {}
        for member in members:
            process = self._known.get(member.pid, member)
            try:
                with process.oneshot():
                    rss += process.memory_info().rss
                    cpu += process.cpu_percent(None)
                    fds += process.num_fds()
            except psutil.Error:
                continue
            alive[process.pid] = process
        self._known = alive
        return ResourceSample(rss_bytes=rss, cpu_percent=round(cpu, 1), fds=fds, processes=len(alive))
