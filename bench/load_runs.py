"""The load runs: direct and gateway side by side for every (transport, client, S), and their ratios."""

from __future__ import annotations

import argparse
import contextlib
import statistics
from pathlib import Path
from typing import Any

import psutil
from harness import (
    DirectBackend,
    PeakSampler,
    Processes,
    Supervisor,
    idle_memory,
    load_timeout,
    loadgen,
    log,
    memory,
    rss,
    wait_for,
)


class Descendants:
    """The backend(s) below a worker, as one process for the sampler: CPU seconds of all of them (a dual-era
    backend serves handshake-era clients through a second process of its own, started on the first such
    session), RSS of the largest. Enough of psutil.Process's interface for PeakSampler."""

    def __init__(self, worker: psutil.Process) -> None:
        self.worker = worker

    def _below(self) -> list[psutil.Process]:
        return [p for p in self.worker.children(recursive=True) if p.name() != "bwrap"]

    def cpu_times(self) -> Any:
        user = system = 0.0
        for process in self._below():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                user, system = user + times.user, system + times.system
        return argparse.Namespace(user=user, system=system)

    def memory_info(self) -> Any:
        return argparse.Namespace(rss=max((rss(p) for p in self._below()), default=0))


def measure_load(
    url: str, transport: str, mode: str, sessions: int, calls: int, tool: str, watch: dict[str, psutil.Process]
) -> dict[str, Any]:
    args = ["run", "--url", url, "--transport", transport, "--mode", mode, "-S", str(sessions), "-N", str(calls)]
    with PeakSampler(watch) as sampler:
        result = loadgen([*args, "--tool", tool], load_timeout(calls, sessions))
    result["processes"] = sampler.result()
    for figures in result["processes"].values():  # what an operator pays: CPU seconds per 1000 calls
        figures["cpu_s_per_1k"] = round(figures["cpu_s"] * 1000 / max(1, result["calls"]), 3)
    return result


def run_load_matrix(procs: Processes, workdir: Path, config: argparse.Namespace, results: dict[str, Any]) -> Supervisor:
    """Direct and gateway side by side, each (transport, S, mode) run direct then gateway right after."""
    log("starting the direct echo backends (Streamable HTTP, SSE) and the gateway with one stdio echo backend")
    direct = {t: DirectBackend(procs, workdir, t, config.direct_json_response) for t in config.transports}
    gateway = Supervisor(procs, workdir, "gateway-1", backends=1)
    gateway.start()
    gateway.wait_running(60)
    wait_for(lambda: len(gateway.tree()) == 3, 10, "the gateway's process tree")
    results["idle"]["direct_backend"] = {t: memory(psutil.Process(d.process.pid)) for t, d in direct.items()}
    results["idle"]["gateway_1_backend_fresh"] = idle_memory(gateway.tree())
    tree = gateway.tree()
    gateway_watch: dict[str, Any] = {
        "gateway": tree["gateway"],
        "worker": tree["worker[echo]"],
        "backend": Descendants(tree["worker[echo]"]),
    }
    if any(ERAS[mode] == "handshake" for _, _, mode in load_rows(config)):
        # A dual-era backend serves handshake-era sessions through a second process, started on the first such
        # session: started here, so that its start-up (its SDK's imports) is not in the first row's CPU.
        url = f"{gateway.base}/{config.transports[0]}"
        loadgen(["run", "--url", url, "--mode", "raw", "-N", "2", "--tool", "echo--echo"], 120)

    for transport, sessions, mode in load_rows(config):
        pair: dict[str, Any] = {"transport": transport, "sessions": sessions, "mode": mode, "era": ERAS[mode]}
        runs: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
        for _ in range(config.repeat):  # direct and gateway alternate, so drift hits both alike
            for side in ("direct", "gateway"):
                if side == "direct":
                    url, tool, watch = direct[transport].url, "echo", direct[transport].processes()
                else:
                    url, tool, watch = f"{gateway.base}/{transport}", "echo--echo", gateway_watch
                result = measure_load(url, transport, mode, sessions, config.calls, tool, watch)
                runs[side].append(result)
                latency = result["latency_ms"]
                log(
                    f"{side:>7} /{transport} {mode:>6} S={sessions:<3} p50 {latency['p50']:.2f} ms "
                    f"{result['calls_per_s']:.0f} calls/s errors {result['errors']} "
                    f"mismatches {result['mismatches']}"
                )
                for sample in result["error_samples"]:
                    log(f"    {sample}")
        for side, side_runs in runs.items():
            pair[side] = combine(side_runs)
        pair["ratio"] = ratios(pair["direct"], pair["gateway"])
        results["load"].append(pair)
    for backend in direct.values():
        procs.stop(backend.process)
    results["idle"]["gateway_1_backend_after_load"] = idle_memory(gateway.tree())
    return gateway


# The protocol era each client mode speaks: `raw` and `sdk` open a session with `initialize` (2025-11-25 over /mcp,
# 2024-11-05 over /sse); `modern` is the SDK client pinned to 2026-07-28 (no handshake, no session).
ERAS = {"raw": "handshake", "sdk": "handshake", "modern": "2026-07-28"}
MODERN_MODES = {mode for mode, era in ERAS.items() if era != "handshake"}


def load_rows(config: argparse.Namespace) -> list[tuple[str, int, str]]:
    """(transport, S, client mode) of every load row, in order: the handshake-era rows (every transport x S x mode),
    then the 2026-07-28 rows (over /mcp, at the S values of --modern-sessions)."""
    rows = [
        (transport, sessions, mode)
        for transport in config.transports
        for sessions in config.sessions
        for mode in config.modes
        if mode not in MODERN_MODES
    ]
    if "mcp" in config.transports:
        rows += [
            ("mcp", sessions, mode)
            for mode in config.modes
            if mode in MODERN_MODES
            for sessions in config.modern_sessions
        ]
    return rows


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of repeated runs: medians of the figures, sums of the counts, the peak of the peaks."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    combined = {key: first[key] for key in ("mode", "transport", "url", "sessions")}
    combined["calls"] = sum(run["calls"] for run in runs)
    for key in ("ok", "errors", "mismatches", "sessions_failed", "reconnects"):
        combined[key] = sum(run[key] for run in runs)
    combined["error_samples"] = list(dict.fromkeys(sample for run in runs for sample in run["error_samples"]))[:8]
    for key in ("setup_s", "wall_s", "calls_per_s", "loadgen_cpu_pct"):
        combined[key] = round(statistics.median(run[key] for run in runs), 4)
    combined["latency_ms"] = {
        key: round(statistics.median(run["latency_ms"][key] for run in runs), 3) for key in first["latency_ms"]
    }
    combined["processes"] = {
        label: {
            "peak_rss_mb": max(run["processes"][label]["peak_rss_mb"] for run in runs),
            "cpu_s": round(statistics.median(run["processes"][label]["cpu_s"] for run in runs), 2),
            "cpu_s_per_1k": round(statistics.median(run["processes"][label]["cpu_s_per_1k"] for run in runs), 3),
        }
        for label in first["processes"]
    }
    combined["repeats"] = runs
    return combined


def ratios(direct: dict[str, Any], gateway: dict[str, Any]) -> dict[str, float | None]:
    """Gateway/direct; None where a side made no successful call (it has no latency to compare)."""
    d50, g50 = direct["latency_ms"]["p50"], gateway["latency_ms"]["p50"]
    d_rate, g_rate = direct["calls_per_s"], gateway["calls_per_s"]
    measured = bool(direct["ok"] and gateway["ok"])
    return {
        "p50_ratio": round(g50 / d50, 3) if measured and d50 else None,
        "p50_delta_ms": round(g50 - d50, 3) if measured else None,
        "throughput_ratio": round(g_rate / d_rate, 3) if d_rate else None,
    }


def raw_vs_sdk(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    by_key = {(p["transport"], p["sessions"], p["mode"]): p for p in results["load"]}
    for (transport, sessions, mode), pair in by_key.items():
        if mode != "raw" or (transport, sessions, "sdk") not in by_key:
            continue
        raw, sdk = pair["direct"], by_key[(transport, sessions, "sdk")]["direct"]
        rows.append(
            {
                "transport": transport,
                "sessions": sessions,
                "raw_calls_per_s": raw["calls_per_s"],
                "sdk_calls_per_s": sdk["calls_per_s"],
                "speedup": round(raw["calls_per_s"] / sdk["calls_per_s"], 2) if sdk["calls_per_s"] else 0.0,
                "raw_p50_ms": raw["latency_ms"]["p50"],
                "sdk_p50_ms": sdk["latency_ms"]["p50"],
            }
        )
    return rows


def correctness_failures(results: dict[str, Any]) -> list[str]:
    failures = []
    for pair in results["load"]:
        for side in ("direct", "gateway"):
            run = pair[side]
            if run["errors"] or run["mismatches"] or run["sessions_failed"]:
                failures.append(
                    f"{side} /{pair['transport']} {pair['mode']} S={pair['sessions']}: {run['errors']} errors, "
                    f"{run['mismatches']} mismatches, {run['sessions_failed']} sessions failed; "
                    f"{run['error_samples'][:3]}"
                )
    listed = results.get("tools_list")
    if listed and (listed["errors"] or listed["mismatches"]):
        failures.append(f"tools/list: {listed['errors']} errors, {listed['mismatches']} mismatches")
    held = results.get("held_sessions")
    if held and held["opened"]["failed"]:
        failures.append(
            f"idle sessions: {held['opened']['failed']} failed to open: {held['opened']['failure_samples']}"
        )
    return failures
