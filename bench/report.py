"""The table `make bench` prints from a run's results."""

from __future__ import annotations

from typing import Any

from harness import LEAN_SERVER

# Report


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def report(results: dict[str, Any]) -> str:
    lines: list[str] = []
    for section in (
        _preamble,
        _load_table,
        _failed_rows,
        _cpu,
        _raw_vs_sdk,
        _idle_and_startup,
        _sandbox_and_lists,
        _targets_and_logs,
    ):
        lines.extend(section(results))
    import auth_cost
    import peers
    import scale

    lines.extend(auth_cost.report(results))
    lines.extend(peers.report(results))
    lines.extend(scale.report(results))
    if results["failures"]:
        lines.append("")
        lines.append("FAILURES:")
        lines.extend(f"  {failure}" for failure in results["failures"])
    return "\n".join(lines)


def _preamble(results: dict[str, Any]) -> list[str]:
    """What ran where, and how to read the table."""
    lines: list[str] = []
    m = results["machine"]
    lines.append(
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, mcp {m['packages'].get('mcp', '?')}; load average at start "
        f"{m['load_average_at_start']}, at end {m.get('load_average_at_end')}"
    )
    cfg = results["config"]
    lines.append(
        f"Load: N={cfg['calls']} echo calls per run, spread over S sessions; p50/p90/p99 in ms"
        + (f"; medians of {cfg['repeat']} runs, direct and gateway alternating" if cfg.get("repeat", 1) > 1 else "")
    )
    lines.append(
        "Ratios are gateway/direct: 'p50 x' = gateway p50 / direct p50, 'p50 +ms' = the absolute difference, "
        "'calls/s x' = gateway calls/s / direct calls/s"
    )
    lines.append(
        "Clients: raw and sdk speak the handshake era (initialize, then Mcp-Session-Id); modern is the SDK client "
        'pinned to 2026-07-28 (Client(url, mode="2026-07-28"): no handshake, no session)'
    )
    lines.append("")
    return lines


def _load_table(results: dict[str, Any]) -> list[str]:
    """One row per (transport, client, S): direct and gateway side by side."""
    lines: list[str] = []
    header = (
        f"{'transport':<9} {'client':<6} {'S':>3} | {'direct p50/p90/p99':>20} {'calls/s':>7} | "
        f"{'gateway p50/p90/p99':>20} {'calls/s':>7} | {'p50 x':>6} {'p50 +ms':>7} {'calls/s x':>9} | "
        f"{'err/mism d':>10} {'err/mism g':>10} | {'peak RSS MB: direct be | gw / worker / be':>38} | "
        f"{'CPU-s/1000 calls: direct be | gw / worker / be':>46}"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for pair in results["load"]:
        d, g, r = pair["direct"], pair["gateway"], pair["ratio"]
        dl, gl = d["latency_ms"], g["latency_ms"]
        dp, gp = d["processes"], g["processes"]
        lines.append(
            f"{'/' + pair['transport']:<9} {pair['mode']:<6} {pair['sessions']:>3} | "
            f"{dl['p50']:>6.2f}/{dl['p90']:>6.2f}/{dl['p99']:>6.1f} {d['calls_per_s']:>7.0f} | "
            f"{gl['p50']:>6.2f}/{gl['p90']:>6.2f}/{gl['p99']:>6.1f} {g['calls_per_s']:>7.0f} | "
            f"{fmt(r['p50_ratio']):>6} {_delta(r['p50_delta_ms']):>7} {fmt(r['throughput_ratio']):>9} | "
            f"{d['errors']:>4}/{d['mismatches']:<5} {g['errors']:>4}/{g['mismatches']:<5} | "
            f"{dp['backend']['peak_rss_mb']:>9.1f} | {gp['gateway']['peak_rss_mb']:>6.1f} / "
            f"{gp['worker']['peak_rss_mb']:>5.1f} / {gp['backend']['peak_rss_mb']:>5.1f} | "
            f"{dp['backend']['cpu_s_per_1k']:>18.3f} | {gp['gateway']['cpu_s_per_1k']:>5.3f} / "
            f"{gp['worker']['cpu_s_per_1k']:>6.3f} / {gp['backend']['cpu_s_per_1k']:>5.3f}"
        )
    return lines


def _failed_rows(results: dict[str, Any]) -> list[str]:
    """The rows with failed calls, each with its first error."""
    lines: list[str] = []
    failed_rows = [
        (side, pair)
        for pair in results["load"]
        for side in ("direct", "gateway")
        if pair[side]["errors"] or pair[side]["mismatches"] or pair[side]["sessions_failed"]
    ]
    if failed_rows:
        lines.append("")
        lines.append(
            "Rows with failed calls (counted as errors above; a side without a successful call has no latency):"
        )
        for side, pair in failed_rows:
            run = pair[side]
            first = run["error_samples"][0] if run["error_samples"] else "no sample"
            lines.append(
                f"  {side} /{pair['transport']} {pair['mode']} S={pair['sessions']}: {run['errors']} errors and "
                f"{run['mismatches']} mismatches of {run['calls']} calls, {run['sessions_failed']} of "
                f"{run['sessions'] * len(run.get('repeats') or [run])} sessions failed; first: {first}"
            )
    return lines


def _cpu(results: dict[str, Any]) -> list[str]:
    """The load generator's CPU and the gateway's processes' CPU seconds."""
    lines: list[str] = []
    lines.append("")
    lines.append("Load generator CPU (% of one core, direct / gateway), and CPU seconds of the gateway's processes:")
    for pair in results["load"]:
        gp = pair["gateway"]["processes"]
        lines.append(
            f"  /{pair['transport']} {pair['mode']:<6} S={pair['sessions']:<3} loadgen "
            f"{pair['direct']['loadgen_cpu_pct']:>4.0f}% / {pair['gateway']['loadgen_cpu_pct']:>4.0f}%   "
            f"CPU s: direct backend {pair['direct']['processes']['backend']['cpu_s']:.2f} | gateway "
            f"{gp['gateway']['cpu_s']:.2f}, worker {gp['worker']['cpu_s']:.2f}, backend {gp['backend']['cpu_s']:.2f}"
        )
    return lines


def _raw_vs_sdk(results: dict[str, Any]) -> list[str]:
    """The raw client against the SDK client, direct."""
    lines: list[str] = []
    raw_vs_sdk = results.get("raw_vs_sdk_direct")
    if raw_vs_sdk:
        lines.append("")
        lines.append("Raw client vs SDK client, direct (calls/s raw / sdk = speed-up; p50 raw vs sdk):")
        for row in raw_vs_sdk:
            lines.append(
                f"  /{row['transport']} S={row['sessions']:<3} {row['raw_calls_per_s']:.0f} / "
                f"{row['sdk_calls_per_s']:.0f} = {row['speedup']:.2f}x; p50 {row['raw_p50_ms']:.2f} vs "
                f"{row['sdk_p50_ms']:.2f} ms"
            )
    return lines


def _idle_and_startup(results: dict[str, Any]) -> list[str]:
    """Idle memory and start-up times."""
    lines: list[str] = []
    lines.append("")
    lines.append("Idle memory (RSS / USS MB):")
    for name, section in results["idle"].items():
        parts = ", ".join(f"{label} {value['rss_mb']}/{value['uss_mb']}" for label, value in section.items())
        lines.append(f"  {name}: {parts}")
    startup = results.get("startup")
    if startup:
        lines.append(
            f"Start-up: {startup['backends']} stdio backends RUNNING+linked in "
            f"{startup['seconds_to_all_running']:.2f} s (bare backends without the supervisor: 1 in "
            f"{startup['bare_backends_seconds']['1']:.2f} s, {startup['backends']} in "
            f"{startup['bare_backends_seconds'][str(startup['backends'])]:.2f} s);"
            f" idle gateway {startup['idle_gateway']['rss_mb']} MB RSS / {startup['idle_gateway']['uss_mb']} MB USS;"
            f" workers max {startup['idle_worker_max_rss_mb']} MB RSS / {startup['idle_worker_max_uss_mb']} MB USS;"
            f" supervisor {startup['idle_supervisor']['rss_mb']} MB RSS; backends max"
            f" {startup['idle_backend_max_rss_mb']} MB RSS"
        )
        lean = startup.get("lean_backend")
        if lean:
            lines.append(
                f"Start-up with a lean stdio backend (no SDK, {LEAN_SERVER.name}): {startup['backends']} RUNNING+linked"
                f" in {lean['seconds_to_all_running']:.2f} s ({startup['backends']} bare lean backends:"
                f" {lean['bare_backends_seconds']:.2f} s): the supervisor's, gateway's and workers' own start-up"
            )
    return lines


def _sandbox_and_lists(results: dict[str, Any]) -> list[str]:
    """The sandbox's cost, tools/list latency and held idle sessions."""
    lines: list[str] = []
    cost = results.get("sandbox_cost")
    if cost:
        lines.append(
            f"Sandbox ({', '.join(cost['methods_seen'])}) vs SANDBOX=off: {cost['backends']} lean backends RUNNING in "
            f"{cost['auto']['startup_s']:.2f} vs {cost['off']['startup_s']:.2f} s ({cost['startup_ratio']:.2f}x); "
            f"S=1 /mcp raw p50 {cost['auto']['p50_ms']:.2f} vs {cost['off']['p50_ms']:.2f} ms "
            f"({cost['p50_delta_ms']:+.2f} ms)"
        )
    listed = results.get("tools_list")
    if listed:
        latency = listed["latency_ms"]
        lines.append(
            f"tools/list: {listed['backends']} backends x {listed['tools_per_backend']} tools = "
            f"{'/'.join(str(count) for count in listed['tools'])} tools "
            f"in {listed['pages']} page(s), {listed['ok']} calls: p50 {latency['p50']:.2f} / p90 {latency['p90']:.2f} "
            f"/ p99 {latency['p99']:.2f} ms, gateway CPU {listed.get('gateway_cpu_ms_per_list', 0):.2f} ms per list, "
            f"errors {listed['errors']}, mismatches {listed['mismatches']}; "
            f"{listed['backends']} backends RUNNING in {listed['seconds_to_all_running']:.2f} s; "
            f"gateway idle {listed['idle_gateway']['rss_mb']} MB RSS"
        )
    held = results.get("held_sessions")
    if held:
        opened = held["opened"]
        lines.append(
            f"Idle client sessions: {opened['held_mcp']} /mcp + {opened['held_sse']} /sse held "
            f"({opened['failed']} failed, opened in {opened['open_s']:.1f} s; gateway counted "
            f"{held['gateway_sessions_counted']}): gateway RSS {held['gateway_before']['rss_mb']} -> "
            f"{held['gateway_held']['rss_mb']} MB (USS {held['gateway_held']['uss_mb']} MB), "
            f"{held['per_session_kb']} KB/session; after release {held['gateway_after_release']['rss_mb']} MB"
        )
    return lines


def _targets_and_logs(results: dict[str, Any]) -> list[str]:
    """Each target's verdict, and the ERROR lines found in the logs."""
    lines: list[str] = []
    lines.append("")
    lines.append("Targets (issue 7; the 2026-07-28 rows: issue 13):")
    for target in results["targets"]:
        verdict = {True: "HOLDS", False: "MISSED", None: "n/a"}[target["holds"]]
        detail = f"  [{target['detail']}]" if target["detail"] else ""
        lines.append(f"  {verdict:<6} {target['target']}: {target['measured']}{detail}")
    logged = {name: found for name, found in results.get("log_errors", {}).items() if found["count"]}
    if logged:
        lines.append("")
        lines.append("ERROR lines in the logs (product side; numbers blanked):")
        for name, found in logged.items():
            for text, count in found["kinds"].items():
                lines.append(f"  {name}: {count} x {text}")
    return lines
