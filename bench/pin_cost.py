"""What tool pinning costs a catalog rebuild (issue #25), in process: `python bench/pin_cost.py`.

`tools/list` itself is untouched: the gateway serves its cached first page before any pinning code runs, and
screening happens once per catalog change. This measures that once: 50 backends x 20 tools aggregated as the
catalog view does, alone, then screened with the hashes cached (a rebuild another backend caused), then with
every hash recomputed (every backend changed), and the first sight (every definition pinned, the file written).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.server.catalog import aggregate_tools
from mcp_supervisor.gateway.server.pinning.policy import Pinning


def catalogs(backends: int, tools: int) -> dict[str, list[dict[str, Any]]]:
    schema = {"type": "object", "properties": {"x": {"type": "string", "description": "an argument"}}}
    return {
        f"echo{b:02d}": [
            {"name": f"tool{i:03d}", "description": f"Trivial tool {i}.", "inputSchema": schema} for i in range(tools)
        ]
        for b in range(backends)
    }


def median_ms(work: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", type=int, default=50)
    parser.add_argument("--tools", type=int, default=20)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    listed = catalogs(args.backends, args.tools)
    state = Path(tempfile.mkdtemp(prefix="pin-cost-"))
    pins = Pinning(Settings(config_dir=state, state_dir=state / "backends"))

    def rebuild(screen: bool) -> None:
        aggregated = aggregate_tools(listed, ToolConfig(), "--")
        if screen:
            pins.screen("tool", aggregated.tools, aggregated.routes, listed)

    def recomputed() -> None:
        pins._hashes.clear()
        rebuild(True)

    first = median_ms(lambda: rebuild(True), 1)
    base = median_ms(lambda: rebuild(False), args.runs)
    cached = median_ms(lambda: rebuild(True), args.runs)
    fresh = median_ms(recomputed, args.runs)
    print(
        f"{args.backends * args.tools} tools, one rebuild: aggregate {base:.2f} ms; + screening with cached hashes "
        f"{cached:.2f} ms; with every hash recomputed {fresh:.2f} ms; first sight (pins written) {first:.1f} ms"
    )


if __name__ == "__main__":
    main()
