"""The supervisor's two periodic checks of its children: heartbeats (hung) and tree samples (RSS, published).

Both only read the slots and act through the supervisor's callbacks (publish, kill, run in the background):
the slot state machine is in supervisor/children.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from mcp_supervisor.supervisor.health import LIMITED_MAX_BACKOFF, MAX_BACKOFF, TreeSampler
from mcp_supervisor.supervisor.slots import RUNNING, STARTING, Slot

log = logging.getLogger("mcp_supervisor.supervisor")

# The watchdog reads every worker's heartbeat page a tenth of the shortest heartbeatTimeout apart, within these
# bounds: every 0.5 s at the default 5 s (a tick costs ~15 us per worker plus a wake-up of ~0.3 ms on a VM).
WATCHDOG_MIN_INTERVAL_S = 0.25
WATCHDOG_MAX_INTERVAL_S = 0.5
# A watchdog tick this late means the supervisor itself was starved: its heartbeat verdicts wait a tick.
STARVED_TICK_S = 1.0
# Trees sampled per pass of the sampler at most (each costs ~1 ms of the loop: a few /proc reads per process).
SAMPLES_PER_PASS = 32


class Watchdog:
    def __init__(
        self,
        slots: Callable[[], list[Slot]],
        on_tick: Callable[[float], None],
        publish: Callable[[str, Slot], None],
        kill_unhealthy: Callable[[Slot, str], None],
        background: Callable[[Coroutine[Any, Any, Any]], None],
        sample_interval_s: float,
    ) -> None:
        self._sample_interval_s = sample_interval_s
        self._slots = slots  # the gateway's first, then every worker's
        self._on_tick = on_tick  # each watchdog tick, with its time (the zygote's own check)
        self._publish = publish
        self._kill_unhealthy = kill_unhealthy
        self._background = background
        self._samplers: dict[int, TreeSampler] = {}
        self._sample_cursor = 0

    def forget(self, pid: int) -> None:
        """A child exited: its sampler goes (a new pid gets a new one)."""
        self._samplers.pop(pid, None)

    async def watch(self) -> None:
        """Heartbeats come from each worker's event loop: silence means hung (blocked, SIGSTOPped)."""
        interval = WATCHDOG_MIN_INTERVAL_S
        due = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            late, due = now - due, now + interval
            if late > STARVED_TICK_S:
                # This loop was starved itself (an overloaded machine): heartbeats may be sitting unread in the
                # control socket. Judge nobody until they have been read, or a slow machine turns into a kill storm.
                log.warning("Supervisor loop ran %.1f s late; skipping one heartbeat check.", late)
                continue
            self._on_tick(now)
            interval = self._check_heartbeats(now)  # a tick later

    def _check_heartbeats(self, now: float) -> float:
        """Kill the silent; the next tick's interval (from the shortest heartbeatTimeout)."""
        shortest = WATCHDOG_MAX_INTERVAL_S * 10
        # The gateway is judged only once it has beaten at all (an older gateway never does).
        for slot in [s for s in self._slots() if s.watched]:
            shortest = min(shortest, slot.options.heartbeatTimeout)
            if slot.state in (STARTING, RUNNING) and slot.child is not None and slot.child.alive:
                if slot.read_beats(now):
                    self._publish("sample", slot)
                silent = now - slot.last_heartbeat
                if silent > slot.options.heartbeatTimeout:
                    self._kill_unhealthy(slot, f"no heartbeat for {silent:.1f} s (hung or stopped)")
                    slot.last_heartbeat = now  # one kill per silence
        return max(WATCHDOG_MIN_INTERVAL_S, min(WATCHDOG_MAX_INTERVAL_S, shortest / 10))

    async def sample(self) -> None:
        """Every interval, the trees that are due (steady ones less and less often: health.py), at most
        SAMPLES_PER_PASS of them (a start-up's hundreds of new trees are sampled over a few passes, not in one
        stall of the loop); a sample is published only when it changed, so an idle tree costs the gateway nothing."""
        interval = self._sample_interval_s
        while True:
            self._sample_pass(time.monotonic(), interval)
            await asyncio.sleep(interval)

    def _sample_pass(self, now: float, interval: float) -> None:
        sampled = 0
        slots = self._slots()
        start = self._sample_cursor % len(slots)  # round robin: a capped pass goes on where the last stopped
        for index, slot in enumerate(slots[start:] + slots[:start]):
            if sampled >= SAMPLES_PER_PASS:
                self._sample_cursor = start + index
                break
            child = slot.child
            if child is None or not child.alive:
                continue
            sampler = self._samplers.get(child.pid)
            if sampler is None:
                try:
                    sampler = self._samplers[child.pid] = TreeSampler(child.pid)
                except ProcessLookupError:
                    continue  # it exited between the check and the sample
            limit = slot.options.maxRssMb
            due = sampler.due_sample(now, interval, LIMITED_MAX_BACKOFF if limit else MAX_BACKOFF)
            if due is None:
                continue
            sampled += 1
            slot.resources, changed = due
            rss_mb = slot.resources.rss_bytes / 1_048_576
            if limit and rss_mb > limit and slot.state == RUNNING:
                slot.last_error = f"RSS {rss_mb:.0f} MB exceeded the {limit:g} MB limit"
                log.warning("%s: %s; restarting it.", slot.label, slot.last_error)
                self._background(child.stop(slot.options.stopGrace))  # not commanded: counts as a crash
            if changed:
                self._publish("sample", slot)
