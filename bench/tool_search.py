"""`make bench` part: tool search (issue 26) measured on the real catalogs of the published servers.

- retrieval quality: top-1 and top-5 accuracy of `search_tools` on bench/tool_search_eval.json (natural-language
  tasks, each with the tool that does it) over bench/tool_search_catalogs.json (the real tools/list of
  server-everything, server-filesystem, server-memory and mcp-server-time; bench/tool_search_catalogs.py
  captures it again);
- size: the bytes of a tools/list result for a 1 000-tool view, as listed and in search mode;
- cost: `search_tools` p50 and p95 over a 2 000-tool view (each eval query, many rounds), and the index build
  (cold, and again with the texts' terms cached, as after a change of one backend).

The catalogs are aggregated as the gateway does (`<key>--<tool>`), and the bigger views are copies of them
under other keys, so that every copy competes for every query. Prints a table, writes
bench/results/tool_search-<timestamp>.json. Targets (top-5 >= 90 %, p50 <= 5 ms) are reported, not fatal.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mcp_supervisor.config.models import ToolConfig  # noqa: E402
from mcp_supervisor.gateway.server.catalog import aggregate_tools  # noqa: E402
from mcp_supervisor.gateway.server.tool_search import index as index_module  # noqa: E402
from mcp_supervisor.gateway.server.tool_search.index import CACHED_TEXT_CHARS, SearchIndex  # noqa: E402
from mcp_supervisor.gateway.server.tool_search.meta_tools import CALL_DEFINITION, SEARCH_DEFINITION  # noqa: E402

BENCH = ROOT / "bench"
TOP5_TARGET = 0.90
P50_TARGET_MS = 5.0


def exposed(copies: int, size: int | None = None) -> list[dict[str, Any]]:
    """The aggregated catalog of `copies` copies of the published servers (copy 0 under their own keys)."""
    catalogs = json.loads((BENCH / "tool_search_catalogs.json").read_text())
    by_key: dict[str, list[dict[str, Any]]] = {}
    for copy in range(copies):
        for key, catalog in catalogs.items():
            by_key[key if copy == 0 else f"{key}{copy}"] = catalog["tools"]
    tools = aggregate_tools(by_key, ToolConfig(), "--").tools
    return tools[:size] if size is not None else tools


def accuracy(tasks: list[dict[str, str]], verbose: bool) -> dict[str, Any]:
    index = SearchIndex(exposed(1))
    top1 = top5 = 0
    for task in tasks:
        names = [str(tool["name"]) for tool in index.search(task["query"], 5, lambda _: True)]
        top1 += bool(names) and names[0] == task["expected"]
        top5 += task["expected"] in names
        if verbose and names[:1] != [task["expected"]]:
            print(f"  {task['query']!r}: expected {task['expected']}, got {names}")
    return {"tasks": len(tasks), "tools": len(index.tools), "top1": top1 / len(tasks), "top5": top5 / len(tasks)}


def listing_bytes(tools: list[dict[str, Any]]) -> int:
    message = {"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}
    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())


def size(view: int) -> dict[str, Any]:
    tools = exposed(view // 38 + 1, view)
    return {
        "view": len(tools),
        "bytes_direct": listing_bytes(tools),
        "bytes_search": listing_bytes([SEARCH_DEFINITION, CALL_DEFINITION]),
    }


def cost(tasks: list[dict[str, str]], view: int, rounds: int) -> dict[str, Any]:
    tools = exposed(view // 38 + 1, view)
    # Cold: every text tokenized (the copies share texts, which the cache would otherwise hide).
    index_module.CACHED_TEXT_CHARS = -1
    started = time.perf_counter()
    SearchIndex(tools)
    build_ms = (time.perf_counter() - started) * 1000
    index_module.CACHED_TEXT_CHARS = CACHED_TEXT_CHARS
    SearchIndex(tools)
    # After a catalog change the texts of the backends that did not change are known already.
    started = time.perf_counter()
    index = SearchIndex(tools)
    rebuild_ms = (time.perf_counter() - started) * 1000
    samples: list[float] = []
    for _ in range(rounds):
        for task in tasks:
            started = time.perf_counter()
            index.search(task["query"], 5, lambda tool: "name" in tool)  # a view filter, as a profile has one
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "view": len(tools),
        "searches": len(samples),
        "p50_ms": statistics.median(samples),
        "p95_ms": samples[int(len(samples) * 0.95)],
        "index_build_ms": build_ms,
        "index_rebuild_ms": rebuild_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="rounds of the eval queries for the cost (30)")
    parser.add_argument("--verbose", action="store_true", help="print every query whose top-1 is wrong")
    args = parser.parse_args()
    tasks = json.loads((BENCH / "tool_search_eval.json").read_text())["tasks"]
    results = {
        "accuracy": accuracy(tasks, args.verbose),
        "size": size(1000),
        "cost": cost(tasks, 2000, args.rounds),
    }
    quality, listing, speed = results["accuracy"], results["size"], results["cost"]
    print("tool search (bench/tool_search.py)")
    print(f"  eval set: {quality['tasks']} tasks over {quality['tools']} real tools")
    print(f"  top-1 {quality['top1']:.1%}   top-5 {quality['top5']:.1%} (target >= {TOP5_TARGET:.0%})")
    print(
        f"  tools/list, {listing['view']}-tool view: {listing['bytes_direct']:,} bytes as listed, "
        f"{listing['bytes_search']:,} bytes in search mode"
    )
    print(
        f"  search_tools over {speed['view']} tools: p50 {speed['p50_ms']:.3f} ms (target <= {P50_TARGET_MS} ms), "
        f"p95 {speed['p95_ms']:.3f} ms; index built in {speed['index_build_ms']:.1f} ms, "
        f"rebuilt (texts known) in {speed['index_rebuild_ms']:.1f} ms"
    )
    missed = [
        what
        for what, ok in (("top-5", quality["top5"] >= TOP5_TARGET), ("p50", speed["p50_ms"] <= P50_TARGET_MS))
        if not ok
    ]
    if missed:
        print(f"  TARGET MISSED: {', '.join(missed)}")
    out = BENCH / "results" / f"tool_search-{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
