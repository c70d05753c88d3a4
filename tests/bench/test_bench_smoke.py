"""Smoke test of `make bench`: the benchmark's own entry point in a tiny configuration, so it never rots.

Same code path as `make bench` (`bench/run.py`, which starts the real supervisor, direct backends, the load
generator in all three client modes), only smaller: N=40 calls, S in {1, 4} for the handshake-era clients and S=1
for the 2026-07-28 one, 3 backends for start-up, 5 x 5 tools, 10 + 10 idle sessions, the auth row (static key and
OAuth JWT). It checks correctness (no errors, every reply matched), that the JSON is written, and that nothing the
benchmark started is left running. Performance targets are not asserted here.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"

pytestmark = pytest.mark.e2e


def started_by(work_dir: Path) -> list[str]:
    """Processes still carrying the benchmark's marker for this work directory."""
    left = []
    for process in psutil.process_iter(["pid", "name"]):
        with contextlib.suppress(psutil.Error):
            if process.environ().get("MCP_BENCH_WORKDIR") == str(work_dir) and process.status() != "zombie":
                left.append(f"{process.pid} {' '.join(process.cmdline())}")
    return left


def test_bench_smoke(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    work_dir = tmp_path / "work"
    command = [
        sys.executable,
        str(RUN),
        *("-N", "40", "--sessions", "1,4", "--modes", "raw,sdk,modern", "--modern-sessions", "1"),
        *("--transports", "mcp,sse"),
        *("--startup-backends", "3", "--list-backends", "5", "--list-tools", "5", "--list-calls", "20"),
        *("--idle-mcp", "10", "--idle-sse", "10"),
        *("--scale-sizes", "3", "--scale-repeat", "1", "--scale-idle-seconds", "1", "--scale-max", "0"),
        *("--scale-list-max", "3"),
        *("--skip", "peers"),  # the peers are installed from PyPI: no network in tests
        *("--results-dir", str(results_dir), "--work-dir", str(work_dir)),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    try:
        stdout, stderr = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # run.py stops everything it started on SIGTERM
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(f"the benchmark did not finish within 180 s\n{stdout}\n{stderr[-4000:]}")
    output = f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr[-4000:]}"

    written = sorted(results_dir.glob("*.json"))
    assert len(written) == 1, output
    results = json.loads(written[0].read_text())

    runs = {(pair["transport"], pair["sessions"], pair["mode"]) for pair in results["load"]}
    handshake_rows = {(t, s, m) for t in ("mcp", "sse") for s in (1, 4) for m in ("raw", "sdk")}
    assert runs == handshake_rows | {("mcp", 1, "modern")}
    for pair in results["load"]:
        for side in ("direct", "gateway"):
            run = pair[side]
            where = f"{side} /{pair['transport']} {pair['mode']} S={pair['sessions']}: {run['error_samples']}"
            assert run["errors"] == 0 and run["mismatches"] == 0 and run["sessions_failed"] == 0, where
            assert run["ok"] == 40, where
            assert run["calls_per_s"] > 0 and run["latency_ms"]["p50"] > 0, where
        assert pair["gateway"]["processes"]["gateway"]["peak_rss_mb"] > 0
        assert pair["gateway"]["processes"]["worker"]["peak_rss_mb"] > 0
        assert pair["gateway"]["processes"]["backend"]["peak_rss_mb"] > 0
        assert pair["direct"]["processes"]["backend"]["peak_rss_mb"] > 0
        assert set(pair["ratio"]) == {"p50_ratio", "p50_delta_ms", "throughput_ratio"}
    assert results["failures"] == [], output
    assert process.returncode == 0, output

    assert results["startup"]["backends"] == 3
    assert results["startup"]["seconds_to_all_running"] > 0
    assert len(results["startup"]["idle_workers"]) == 3
    assert results["idle"]["gateway_1_backend_fresh"]["gateway"]["uss_mb"] > 0

    listed = results["tools_list"]
    assert listed["tools"] == [25] and listed["errors"] == 0 and listed["mismatches"] == 0
    assert listed["ok"] == 20

    held = results["held_sessions"]
    assert held["opened"] == {**held["opened"], "held_mcp": 10, "held_sse": 10, "failed": 0}
    assert held["gateway_sessions_counted"] >= 20

    auth = results["auth_cost"]  # direct, static key and OAuth JWT (a local issuer) at S=1
    assert set(auth["p50_ms"]) == {"direct", "key", "jwt"} and all(v > 0 for v in auth["p50_ms"].values()), auth
    assert "/jwks" in auth["issuer_fetches"], auth

    assert results["targets"], "the targets were not evaluated"
    assert "Ratios are gateway/direct" in stdout, output
    assert started_by(work_dir) == [], "the benchmark left processes running"
