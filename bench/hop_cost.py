"""Issue 27's targets for the load rows: what the hop costs an operator, in CPU seconds per 1000 calls at the
largest S over `/mcp`, in both eras, and the gateway's memory once the 2026-07-28 rows have run."""

from __future__ import annotations

from typing import Any

TARGET_GATEWAY_CPU_S_PER_1K = 0.35
TARGET_WORKER_CPU_S_PER_1K = 0.12
TARGET_GATEWAY_RSS_AFTER_MODERN_MB = 50.0


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    rows = [pair for pair in results.get("load", []) if pair["transport"] == "mcp"]
    for pair in rows:
        if pair["sessions"] != max(row["sessions"] for row in rows if row["mode"] == pair["mode"]):
            continue
        processes = pair["gateway"]["processes"]
        where = f"S={pair['sessions']} /mcp {pair['mode']} client, {pair.get('era', '?')} era"
        for label, limit in (("gateway", TARGET_GATEWAY_CPU_S_PER_1K), ("worker", TARGET_WORKER_CPU_S_PER_1K)):
            measured = processes[label].get("cpu_s_per_1k")
            found.append(
                {
                    "target": f"{label} <= {limit} CPU-s per 1000 calls ({where})",
                    "measured": "-" if measured is None else f"{measured:.3f} CPU-s",
                    "holds": None if measured is None else measured <= limit,
                    "detail": "",
                }
            )
    modern = [pair for pair in rows if pair.get("era") == "2026-07-28"]
    after = results.get("idle", {}).get("gateway_1_backend_after_load", {}).get("gateway")
    if modern and after:
        peak = max(pair["gateway"]["processes"]["gateway"]["peak_rss_mb"] for pair in modern)
        limit = TARGET_GATEWAY_RSS_AFTER_MODERN_MB
        found.append(
            {
                "target": f"gateway RSS after the 2026-07-28 rows <= {limit:g} MB (1 backend)",
                "measured": f"{after['rss_mb']} MB RSS ({after['uss_mb']} MB USS)",
                "holds": after["rss_mb"] <= limit,
                "detail": f"peak during them {peak} MB",
            }
        )
    return found
