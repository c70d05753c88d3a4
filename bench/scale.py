"""The "scale" section of `make bench` (issue 17): N lean stdio backends (tests/fixtures/tiny_server.py, 20
tools each), against the same N bare backends started without us.

Per N (20 and 100 by default, `--scale-repeat` times, bare and supervised alternating so that drift on a shared
machine hits both alike; medians reported):
- start-up: from spawning the supervisor until /health/backends shows all N RUNNING and linked; bare: from
  spawning N backends at once until each answered initialize and tools/list; "bare+sandbox": the same N bare
  backends, each through the sandbox launch the supervisor plans (its outer stage, bubblewrap, its own network
  namespace), started as a worker starts it (stdio_connection.spawn), without our processes: the floor of what
  the sandbox costs by itself; and again with `network: false`, whose difference is the network's start-up
  cost, next to slirp4netns' USS and RSS per backend (issue 22);
- USS (and PSS) of our own processes (supervisor, gateway, zygote, workers; not the backends, not bubblewrap),
  3 s after start-up, and per role; bare: the USS of the N bare backends;
- idle CPU of the whole tree (ours and the backends) over `--scale-idle-seconds`, in % of one core; bare: of
  the bare backends over the same window;
- tools/list of N x 20 tools (`--list-calls` sequential calls, one session, every page);
- hot reload of one changed backend out of N: from the file's rename until that backend's next generation is
  RUNNING and linked, and whether every other backend kept its pid and generation.
`--scale-max` (500 by default, 0 to skip) is measured once: start-up, USS and idle CPU.

The era probe's cost (issue 13): PROBE_BACKENDS lean backends (handshake-era: they answer `server/discover`
with -32601 at once) started with `"protocol": "auto"` (probe, then the handshake) and pinned `"legacy"` (the
handshake only), alternating, `--scale-repeat` times: start-up until RUNNING, and each worker's own account
of its negotiation (the `(in X ms)` of its ready line).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
from bare import SETTLE_S, TOOLS_PER_BACKEND, _bare, _cpu, _mem, _network_cost, sandboxed_launch

TARGET_STARTUP_EXTRA_S = 1.0
TARGET_USS_PER_WORKER_MB = 5.0
TARGET_LIST_P50_MS = 5.0
TARGET_RELOAD_S = 0.5
TARGET_IDLE_CPU_PERCENT = 2.0
PROBE_BACKENDS = 20
_NEGOTIATED = re.compile(rb"is ready: .*era, \S+ \(in ([0-9.]+) ms\)")


def _whole_tree(root: int) -> list[psutil.Process]:
    try:
        process = psutil.Process(root)
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def _ours(supervisor: Any) -> dict[str, psutil.Process]:
    """supervisor, gateway, zygote and workers: the processes of the tree that are our own code."""
    health = supervisor.health()
    root = psutil.Process(supervisor.process.pid)
    found = {"supervisor": root, "gateway": psutil.Process(health["gateway"]["pid"])}
    for child in root.children():
        with contextlib.suppress(psutil.Error):
            if "zygote" in " ".join(child.cmdline()):
                found["zygote"] = child
    for item in health["backends"]:
        with contextlib.suppress(psutil.Error, TypeError):  # one being restarted (a start timeout at 500)
            found[f"worker[{item['key']}]"] = psutil.Process(item["pid"])
    return found


def _reload_one(h: ModuleType, supervisor: Any) -> dict[str, Any]:
    """Change one backend's entry; seconds until its next generation is RUNNING+linked; the others untouched."""
    before = {item["key"]: item for item in supervisor.health()["backends"]}
    key = supervisor.keys[len(supervisor.keys) // 2]
    path = supervisor.config_dir / "mcp_server.json"
    config = json.loads(path.read_text())
    config["mcpServers"][key]["args"] = [*config["mcpServers"][key]["args"], "--name", f"changed-{time.time_ns()}"]
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(config, indent=2))
    started = time.perf_counter()
    os.replace(staged, path)  # the editor's way: a rename

    def reloaded() -> dict[str, Any] | None:
        now = {item["key"]: item for item in supervisor.health()["backends"]}
        item = now.get(key, {})
        ok = item.get("generation", 0) > before[key]["generation"] and item.get("state") == "RUNNING" and item["linked"]
        return now if ok else None

    now = h.wait_for(reloaded, 30.0, f"{key} reloaded to RUNNING", interval=0.005)
    elapsed = time.perf_counter() - started
    touched = [
        other
        for other, item in before.items()
        if other != key and (now[other]["pid"] != item["pid"] or now[other]["generation"] != item["generation"])
    ]
    return {"seconds": elapsed, "others_touched": touched}


def _supervised(h: ModuleType, procs: Any, workdir: Path, name: str, count: int, config: Any) -> dict[str, Any]:
    supervisor = h.Supervisor(
        procs, workdir, name, backends=count, server=h.LEAN_SERVER, extra_tools=TOOLS_PER_BACKEND - 1
    )
    supervisor.start()
    try:
        elapsed = supervisor.wait_running(max(60.0, count * 0.5))
        time.sleep(SETTLE_S)
        ours = _ours(supervisor)
        uss = pss = 0.0
        by_role: dict[str, float] = {}
        for label, process in ours.items():
            one_uss, one_pss = _mem(process)
            uss += one_uss
            pss += one_pss
            role = label.split("[")[0]
            by_role[role] = by_role.get(role, 0.0) + one_uss
        workers = [label for label in ours if label.startswith("worker")]
        health = supervisor.health()["backends"]
        methods = {item.get("start_method", "") for item in health}
        restarts = sum(item.get("restarts", 0) for item in health)
        tree = _whole_tree(supervisor.process.pid)
        before = _cpu(tree)
        time.sleep(config.scale_idle_seconds)
        idle = (_cpu(tree) - before) / config.scale_idle_seconds * 100
        row: dict[str, Any] = {
            "seconds": elapsed,
            "uss_mb": uss,
            "pss_mb": pss,
            "uss_per_worker_mb": uss / max(1, len(workers)),
            "worker_uss_mb_max": max((_mem(ours[label])[0] for label in workers), default=0.0),
            "uss_mb_by_role": {role: round(value, 1) for role, value in sorted(by_role.items())},
            "idle_cpu_percent": idle,
            "start_methods": sorted(methods),
            "restarts": restarts,
        }
        if count <= config.scale_list_max:
            url = f"{supervisor.base}/mcp"
            expected = count * TOOLS_PER_BACKEND
            listed = h.loadgen(
                ["list", "--url", url, "-N", str(config.list_calls), "--expect-tools", str(expected)], 300
            )
            row["list_p50_ms"] = listed["latency_ms"]["p50"]
            row["list_p90_ms"] = listed["latency_ms"]["p90"]
            row["reload"] = _reload_one(h, supervisor)
        return row
    finally:
        supervisor.stop()


def _probe_cost(h: ModuleType, procs: Any, workdir: Path, config: Any) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"auto": [], "legacy": []}
    for attempt in range(config.scale_repeat):
        for protocol in ("auto", "legacy"):
            h.log(f"scale: era probe cost, {PROBE_BACKENDS} lean backends, protocol {protocol} (run {attempt + 1})")
            supervisor = h.Supervisor(
                procs,
                workdir,
                f"probe-{protocol}-{attempt}",
                backends=PROBE_BACKENDS,
                server=h.LEAN_SERVER,
                extra_tools=TOOLS_PER_BACKEND - 1,
                entry={"protocol": protocol},
            )
            supervisor.start()
            try:
                seconds = supervisor.wait_running(max(60.0, PROBE_BACKENDS * 0.5))
                negotiations = [float(m) for m in _NEGOTIATED.findall(supervisor.log_path.read_bytes())]
            finally:
                supervisor.stop()
            runs[protocol].append(
                {
                    "seconds": seconds,
                    "negotiation_ms_p50": statistics.median(negotiations) if negotiations else None,
                    "negotiation_ms_max": max(negotiations) if negotiations else None,
                    "workers": len(negotiations),
                }
            )
    return {
        "backends": PROBE_BACKENDS,
        **{
            f"{protocol}_{field}": _median(rows, field)
            for protocol, rows in runs.items()
            for field in ("seconds", "negotiation_ms_p50", "negotiation_ms_max")
        },
        "all_runs": runs,
    }


def _median(rows: list[dict[str, Any]], field: str) -> float | None:
    values = [row[field] for row in rows if row.get(field) is not None]
    return round(statistics.median(values), 3) if values else None


def run_scale(h: ModuleType, procs: Any, workdir: Path, config: Any, results: dict[str, Any]) -> None:
    section: dict[str, Any] = {"repeat": config.scale_repeat, "idle_seconds": config.scale_idle_seconds, "rows": {}}
    results["scale"] = section
    sizes = [int(value) for value in config.scale_sizes.split(",") if value]
    launch, offline = sandboxed_launch(h, workdir), sandboxed_launch(h, workdir, network=False)
    for count in sizes:
        bare_runs, sandboxed_runs, offline_runs, our_runs = [], [], [], []
        for attempt in range(config.scale_repeat):
            h.log(f"scale: {count} bare lean backends (run {attempt + 1})")
            bare_runs.append(asyncio.run(_bare(h, procs.marker, count, config.scale_idle_seconds)))
            if launch is not None:
                h.log(f"scale: {count} bare lean backends, each in the planned sandbox (run {attempt + 1})")
                sandboxed_runs.append(asyncio.run(_bare(h, procs.marker, count, 1.0, launch)))
            if offline is not None and launch is not None and launch.network is not None:
                h.log(f"scale: {count} bare lean backends, in the sandbox with network false (run {attempt + 1})")
                offline_runs.append(asyncio.run(_bare(h, procs.marker, count, 1.0, offline)))
            h.log(f"scale: {count} supervised lean backends (run {attempt + 1})")
            row = _supervised(h, procs, workdir, f"scale-{count}-{attempt}", count, config)
            our_runs.append(row)
            h.log(
                f"scale: {count} RUNNING in {row['seconds']:.2f} s (bare {bare_runs[-1]['seconds']:.2f}"
                + (f", in the sandbox {sandboxed_runs[-1]['seconds']:.2f}" if sandboxed_runs else "")
                + "), "
                f"USS {row['uss_mb']:.0f} MB ({row['uss_per_worker_mb']:.2f}/worker, PSS {row['pss_mb']:.0f}), "
                f"idle {row['idle_cpu_percent']:.2f} % of a core, list p50 {row.get('list_p50_ms', '-')} ms, "
                f"reload {row.get('reload', {}).get('seconds', '-')}"
            )
        section["rows"][str(count)] = _summarize(count, bare_runs, our_runs, sandboxed_runs, offline_runs)
    section["probe"] = _probe_cost(h, procs, workdir, config)
    if config.scale_max:
        count = config.scale_max
        h.log(f"scale: {count} bare lean backends (once)")
        bare = asyncio.run(_bare(h, procs.marker, count, config.scale_idle_seconds))
        sandboxed = []
        if launch is not None:
            h.log(f"scale: {count} bare lean backends, each in the planned sandbox (once)")
            sandboxed.append(asyncio.run(_bare(h, procs.marker, count, 1.0, launch)))
        h.log(f"scale: {count} supervised lean backends (once)")
        row = _supervised(h, procs, workdir, f"scale-{count}", count, config)
        section["rows"][str(count)] = _summarize(count, [bare], [row], sandboxed)


def _summarize(
    count: int,
    bare: list[dict[str, Any]],
    ours: list[dict[str, Any]],
    sandboxed: list[dict[str, Any]],
    offline: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    reloads = [row["reload"] for row in ours if "reload" in row]
    roles = sorted({role for row in ours for role in row.get("uss_mb_by_role", {})})
    summary = {
        "backends": count,
        "runs": len(ours),
        "seconds": _median(ours, "seconds"),
        "bare_seconds": _median(bare, "seconds"),
        "bare_sandboxed_seconds": _median(sandboxed, "seconds"),
        "uss_mb_by_role": {
            role: round(statistics.median(row["uss_mb_by_role"].get(role, 0.0) for row in ours), 1) for role in roles
        },
        "uss_mb": _median(ours, "uss_mb"),
        "pss_mb": _median(ours, "pss_mb"),
        "uss_per_worker_mb": _median(ours, "uss_per_worker_mb"),
        "worker_uss_mb_max": _median(ours, "worker_uss_mb_max"),
        "bare_uss_mb": _median(bare, "uss_mb"),
        "idle_cpu_percent": _median(ours, "idle_cpu_percent"),
        "bare_idle_cpu_percent": _median(bare, "idle_cpu_percent"),
        "list_p50_ms": _median(ours, "list_p50_ms"),
        "list_p90_ms": _median(ours, "list_p90_ms"),
        "reload_seconds": round(statistics.median(r["seconds"] for r in reloads), 3) if reloads else None,
        "reload_others_touched": sorted({key for r in reloads for key in r["others_touched"]}),
        "start_methods": sorted({method for row in ours for method in row["start_methods"]}),
        "restarts": max(row["restarts"] for row in ours),
        "all_runs": ours,
        "all_bare_runs": bare,
        "all_bare_sandboxed_runs": sandboxed,
        "network": _network_cost(count, sandboxed, offline or []),
    }
    return summary


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = (results.get("scale") or {}).get("rows", {})
    row = rows.get("100")
    if not row:
        return []
    found: list[dict[str, Any]] = []

    def add(name: str, measured: str, holds: bool) -> None:
        found.append({"target": name, "measured": measured, "holds": holds, "detail": ""})

    extra = row["seconds"] - row["bare_seconds"]
    floor = row.get("bare_sandboxed_seconds")
    add(
        f"scale: 100 lean backends RUNNING <= bare + {TARGET_STARTUP_EXTRA_S:g} s",
        f"{row['seconds']:.2f} s (bare {row['bare_seconds']:.2f} s, +{extra:.2f} s"
        + (f"; bare in the sandbox {floor:.2f} s" if floor else "")
        + ")",
        extra <= TARGET_STARTUP_EXTRA_S,
    )
    roles = ", ".join(f"{role} {mb:.0f}" for role, mb in row.get("uss_mb_by_role", {}).items())
    add(
        f"scale: USS of our processes <= {TARGET_USS_PER_WORKER_MB:g} MB per worker at 100",
        f"{row['uss_per_worker_mb']:.2f} MB/worker ({row['uss_mb']:.0f} MB: {roles}; "
        f"bare backends {row['bare_uss_mb']:.0f} MB)",
        row["uss_per_worker_mb"] <= TARGET_USS_PER_WORKER_MB,
    )
    if row.get("list_p50_ms") is not None:
        add(
            f"scale: tools/list 100 x 20 tools p50 <= {TARGET_LIST_P50_MS:g} ms",
            f"{row['list_p50_ms']:.2f} ms",
            row["list_p50_ms"] <= TARGET_LIST_P50_MS,
        )
    if row.get("reload_seconds") is not None:
        untouched = not row["reload_others_touched"]
        add(
            f"scale: 1 of 100 hot-reloaded to RUNNING <= {TARGET_RELOAD_S:g} s, the other 99 untouched",
            f"{row['reload_seconds']:.3f} s, others touched: {row['reload_others_touched'] or 'none'}",
            row["reload_seconds"] <= TARGET_RELOAD_S and untouched,
        )
    add(
        f"scale: idle CPU of the tree with 100 backends <= {TARGET_IDLE_CPU_PERCENT:g} % of a core",
        f"{row['idle_cpu_percent']:.2f} % (bare backends {row['bare_idle_cpu_percent']:.2f} %)",
        row["idle_cpu_percent"] <= TARGET_IDLE_CPU_PERCENT,
    )
    return found


def report(results: dict[str, Any]) -> list[str]:
    rows = (results.get("scale") or {}).get("rows", {})
    if not rows:
        return []
    lines = [
        "",
        f"Scale: lean stdio backends ({TOOLS_PER_BACKEND} tools each), medians of "
        f"{results['scale']['repeat']} alternating runs (the largest N once); ratios to the bare backends",
        f"{'N':>5} {'RUNNING s':>10} {'bare s':>7} {'+sbx s':>7} {'ratio':>6} {'USS MB':>7} {'/worker':>8} "
        f"{'PSS MB':>7} {'bare USS':>8} {'idle %':>7} {'list p50':>9} {'reload s':>9}  started by",
    ]
    for count, row in rows.items():
        ratio = row["seconds"] / row["bare_seconds"] if row["bare_seconds"] else None
        lines.append(
            f"{count:>5} {row['seconds']:>10.2f} {row['bare_seconds']:>7.2f} "
            f"{row.get('bare_sandboxed_seconds') or 0:>7.2f} {ratio or 0:>6.1f} {row['uss_mb']:>7.0f} "
            f"{row['uss_per_worker_mb']:>8.2f} {row['pss_mb']:>7.0f} {row['bare_uss_mb']:>8.0f} "
            f"{row['idle_cpu_percent']:>7.2f} {row['list_p50_ms'] or 0:>9.2f} {row['reload_seconds'] or 0:>9.3f}  "
            f"{','.join(row['start_methods'])}"
        )
    probe = results["scale"].get("probe")
    if probe:
        lines += [
            "",
            f"Era probe (server/discover before the handshake), {probe['backends']} lean handshake-era backends: "
            f"RUNNING in {probe['auto_seconds']:.2f} s with the probe, {probe['legacy_seconds']:.2f} s pinned legacy; "
            f"a worker's negotiation p50 {probe['auto_negotiation_ms_p50']:.2f} ms vs "
            f"{probe['legacy_negotiation_ms_p50']:.2f} ms (max {probe['auto_negotiation_ms_max']:.1f} vs "
            f"{probe['legacy_negotiation_ms_max']:.1f} ms)",
        ]
    lines.append(
        "USS by role (MB): "
        + "; ".join(
            f"{count}: " + ", ".join(f"{role} {mb:.1f}" for role, mb in row.get("uss_mb_by_role", {}).items())
            for count, row in rows.items()
        )
    )
    lines.append("(+sbx s: the same bare backends, each started through the sandbox the supervisor plans)")
    for count, row in rows.items():
        net = row.get("network")
        if net:
            lines.append(
                f"Sandbox network (own namespace, slirp4netns) at {count}: {net['seconds']:.2f} s vs "
                f"{net['offline_seconds']:.2f} s with network false, +{net['startup_ms_per_backend']:.1f} ms of "
                f"start-up per backend; slirp4netns USS {net['slirp_uss_mb_per_backend']:.2f} MB, RSS "
                f"{net['slirp_rss_mb_per_backend']:.2f} MB per backend; per call: nothing (stdio pipes untouched)"
            )
    return lines
