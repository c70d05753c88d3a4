"""`make bench`: mcp-supervisor measured side by side with a direct connection to the same backend, on loopback.

In one go:
- load: direct (the echo backend over Streamable HTTP, or over legacy SSE, one process) vs the gateway
  (`mcp-supervisor start`, the same backend behind a worker over stdio), for S in {1, 16, 64} sessions over `/mcp`
  and `/sse`, with the lean raw client and with the official SDK client (both in the handshake era); and the
  2026-07-28 era: S in {1, 64} over `/mcp` with the SDK client pinned to it (`Client(url, mode="2026-07-28")`, the
  `modern` client), against the same direct SDK server (which serves both eras) and the gateway. Peak RSS of the
  gateway, the worker and the backend during each run (sampled by a background thread);
- start-up time of 20 stdio backends to all RUNNING and linked, and the idle RSS/USS of the gateway and workers;
- `tools/list` latency with 50 backends x 20 tools (1000 tools);
- what a credential costs: S=1 `tools/call` p50 direct, through the gateway with a static key, and with an
  OAuth JWT validated against a local issuer (`bench/auth_cost.py`);
- idle RSS of the gateway and its worker, and the gateway's RSS holding 1000 idle client sessions
  (500 initialized `/mcp` sessions with their GET streams + 500 open `/sse` streams).

It prints a table with the ratios gateway/direct and writes everything to `bench/results/<timestamp>.json`.
Every process it starts is stopped at the end (process groups, then any survivor of the supervisor's tree), and
every wait is a bounded poll. The exit status is 1 when a run had errors or mismatched replies (the product
answered wrongly), or when a measurement could not be made; a missed performance target is reported, not fatal.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import harness
from harness import BENCH, BenchFailure, Processes, Supervisor, idle_memory, log
from load_runs import ERAS, correctness_failures, raw_vs_sdk, run_load_matrix
from report import report
from runs import hold_idle_sessions, log_errors, machine, run_sandbox_cost, run_startup, run_tools_list
from targets import evaluate_targets


def _section_args(parser: argparse.ArgumentParser) -> None:
    """The scale and peers sections' options."""
    parser.add_argument("--scale-sizes", default="20,100", help="scale section: lean backend counts (default 20,100)")
    parser.add_argument("--scale-repeat", type=int, default=2, help="scale runs per size, bare and ours alternating")
    parser.add_argument("--scale-idle-seconds", type=float, default=20.0, help="idle CPU window (default 20 s)")
    parser.add_argument("--scale-max", type=int, default=500, help="lean backends measured once (0: skip)")
    parser.add_argument("--scale-list-max", type=int, default=100, help="tools/list + reload up to this many")
    parser.add_argument(
        "--peers",
        default="fastmcp,mcp-proxy,contextforge",
        help="peer gateways measured beside this one (bench/peers.py; each installed from PyPI into a scratch venv)",
    )
    parser.add_argument("--peers-dir", default=None, help="where the peers' scratch venvs live (bench/peers.py)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-N", "--calls", type=int, default=2000, help="echo calls per load run (default 2000)")
    parser.add_argument("--quick", action="store_true", help="N=200, 50 tools/list calls, 100+100 idle sessions")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per (transport, S, client), direct and gateway alternating; medians"
    )
    parser.add_argument("--sessions", default="1,16,64", help="comma-separated S values (default 1,16,64)")
    parser.add_argument(
        "--modes",
        default="raw,sdk,modern",
        help="client modes: raw, sdk (handshake era, every transport and S), modern (the SDK client pinned to "
        "2026-07-28, /mcp only, at --modern-sessions); default all three",
    )
    parser.add_argument(
        "--modern-sessions", default="1,64", help="S values of the modern (2026-07-28) rows (default 1,64)"
    )
    parser.add_argument("--transports", default="mcp,sse", help="mcp, sse (default both)")
    parser.add_argument("--startup-backends", type=int, default=20)
    parser.add_argument("--list-backends", type=int, default=50)
    parser.add_argument("--list-tools", type=int, default=20, help="tools per backend (echo, sleep + trivial ones)")
    parser.add_argument("--list-calls", type=int, default=200)
    parser.add_argument("--idle-mcp", type=int, default=500, help="idle /mcp sessions to hold")
    parser.add_argument("--idle-sse", type=int, default=500, help="idle /sse streams to hold")
    parser.add_argument(
        "--direct-json-response",
        action="store_true",
        help="the direct Streamable HTTP backend answers plain JSON (SDK json_response) instead of SSE-framed",
    )
    parser.add_argument(
        "--supervisor",
        default=harness.SUPERVISOR,
        help="the mcp-supervisor executable measured (default: this venv's); another build's, e.g. a worktree's "
        "`.venv/bin/mcp-supervisor`, compares two versions under the same harness and clients",
    )
    parser.add_argument("--results-dir", default=str(BENCH / "results"))
    parser.add_argument("--work-dir", help="config directories and logs (default: a temporary directory, removed)")
    _section_args(parser)
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated: load, peers, startup, sandbox, auth, tools-list, idle-sessions, scale",
    )
    config = parser.parse_args(argv)
    if config.quick:
        config.calls = min(config.calls, 200)
        config.list_calls = min(config.list_calls, 50)
        config.idle_mcp = min(config.idle_mcp, 100)
        config.idle_sse = min(config.idle_sse, 100)
        config.scale_sizes, config.scale_repeat, config.scale_max = "20,100", 1, 0
        config.scale_idle_seconds = min(config.scale_idle_seconds, 10.0)
    config.sessions = [int(value) for value in config.sessions.split(",") if value]
    config.modes = [value for value in config.modes.split(",") if value]
    unknown = sorted(set(config.modes) - set(ERAS))
    if unknown:
        parser.error(f"unknown client modes {unknown}: choose from {sorted(ERAS)}")
    config.modern_sessions = [int(value) for value in config.modern_sessions.split(",") if value]
    config.transports = [value for value in config.transports.split(",") if value]
    config.skip = {value for value in config.skip.split(",") if value}
    return config


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    harness.SUPERVISOR = config.supervisor
    started = time.time()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results_dir = Path(config.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # the gateway inherits it: 1000 idle sessions are 1000+ sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = _results_skeleton(config, stamp)
    own_workdir = config.work_dir is None
    workdir = Path(tempfile.mkdtemp(prefix="mcp-bench-")) if own_workdir else Path(config.work_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Processes(str(workdir))
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        _measure(procs, workdir, config, results)
    except Exception as exc:
        detail = str(exc) if isinstance(exc, BenchFailure) else traceback.format_exc()
        results["failures"].append(f"measurement failed: {detail}")
        log(f"FAILED: {detail}")
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous_handler)
        _keep_logs(workdir, results_dir / f"{stamp}-logs", results)
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    results["raw_vs_sdk_direct"] = raw_vs_sdk(results)
    results["failures"].extend(correctness_failures(results))
    results["targets"] = evaluate_targets(results)
    results["duration_s"] = round(time.time() - started, 1)
    results["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    out = results_dir / f"{stamp}.json"
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    print(f"\nJSON: {out} (took {results['duration_s']:.0f} s; supervisor logs in {results_dir / (stamp + '-logs')})")
    return 1 if results["failures"] else 0


def _results_skeleton(config: argparse.Namespace, stamp: str) -> dict[str, Any]:
    """What a run records about itself before measuring anything."""
    return {
        "timestamp": stamp,
        "machine": machine(),
        "config": {
            "supervisor": config.supervisor,
            "calls": config.calls,
            "repeat": config.repeat,
            "sessions": config.sessions,
            "modes": config.modes,
            "modern_sessions": config.modern_sessions,
            "transports": config.transports,
            "startup_backends": config.startup_backends,
            "list_backends": config.list_backends,
            "list_tools_per_backend": config.list_tools,
            "list_calls": config.list_calls,
            "idle_sessions": {"mcp": config.idle_mcp, "sse": config.idle_sse},
            "direct_backend": "bench/echo_server.py --http / --sse"
            + (" (--json-response)" if config.direct_json_response else " (SDK default: SSE-framed answers)"),
            "gateway_backend": "bench/echo_server.py over stdio behind one worker",
        },
        "load": [],
        "idle": {},
        "failures": [],
        "log_errors": {},
    }


def _measure(procs: Processes, workdir: Path, config: argparse.Namespace, results: dict[str, Any]) -> None:
    """Every section not in --skip, in order; each adds its part to `results`."""
    if "load" not in config.skip:
        gateway = run_load_matrix(procs, workdir, config, results)
        if "idle-sessions" not in config.skip:
            log(f"holding {config.idle_mcp} /mcp + {config.idle_sse} /sse idle sessions on the gateway")
            results["held_sessions"] = hold_idle_sessions(gateway, config.idle_mcp, config.idle_sse, 120.0)
        gateway.stop()
    if "peers" not in config.skip:
        import peers

        config.peers_dir = config.peers_dir or str(peers.DEFAULT_DIR)
        peers.run_peers(harness, procs, workdir, config, results)
    if "load" in config.skip and "idle-sessions" not in config.skip:
        gateway = Supervisor(procs, workdir, "gateway-1", backends=1)
        gateway.start()
        gateway.wait_running(60)
        results["idle"]["gateway_1_backend_fresh"] = idle_memory(gateway.tree())
        results["held_sessions"] = hold_idle_sessions(gateway, config.idle_mcp, config.idle_sse, 120.0)
        gateway.stop()
    if "startup" not in config.skip:
        run_startup(procs, workdir, config.startup_backends, results)
    if "sandbox" not in config.skip:
        run_sandbox_cost(procs, workdir, config, results)
    if "auth" not in config.skip:
        import auth_cost

        auth_cost.run_auth_cost(harness, procs, workdir, config, results)
    if "tools-list" not in config.skip:
        run_tools_list(procs, workdir, config.list_backends, config.list_tools, config.list_calls, results)
    if "scale" not in config.skip:
        import scale

        scale.run_scale(harness, procs, workdir, config, results)


def _keep_logs(workdir: Path, logs_dir: Path, results: dict[str, Any]) -> None:
    """Copy the supervisors' and direct backends' logs next to the results, counting their ERROR lines."""
    with contextlib.suppress(OSError):
        for path in [*workdir.glob("*/supervisor.log"), *workdir.glob("direct-*.log"), *workdir.glob("peer-*.log")]:
            logs_dir.mkdir(exist_ok=True)
            shutil.copy(path, logs_dir / "__".join(path.relative_to(workdir).parts))
            results["log_errors"][path.parent.name if path.name == "supervisor.log" else path.stem] = log_errors(path)


if __name__ == "__main__":
    sys.exit(main())
