"""Latency percentiles and the tally of a load run."""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass, field

# Statistics


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    values = sorted(latency * 1000 for latency in latencies_s)
    if not values:
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "mean": math.nan, "min": math.nan, "max": math.nan}
    return {
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "mean": sum(values) / len(values),
        "min": values[0],
        "max": values[-1],
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    mismatches: int = 0
    sessions_failed: int = 0
    samples: list[str] = field(default_factory=list)

    def note(self, kind: str, exc: BaseException) -> None:
        text = f"{kind}: {exc}" if str(exc) else f"{kind}: {exc!r}"
        if len(self.samples) < 8 and text not in self.samples:
            self.samples.append(text[:300])
