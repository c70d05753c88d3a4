"""Smoke test of bench/tool_search.py (the tool-search part of `make bench`), so it never rots: one round, its
table printed and its JSON written. Performance targets are not asserted here; the accuracy target is, in
tests/unit/test_tool_search.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_tool_search_bench_runs() -> None:
    before = set((ROOT / "bench" / "results").glob("tool_search-*.json"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tool_search.py"), "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "top-5" in done.stdout and "search mode" in done.stdout
    written = set((ROOT / "bench" / "results").glob("tool_search-*.json")) - before
    try:
        assert len(written) <= 1  # one per second at most: a run in the same second replaces its file
        results = json.loads(sorted((ROOT / "bench" / "results").glob("tool_search-*.json"))[-1].read_text())
        assert results["accuracy"]["tasks"] >= 60 and results["size"]["view"] == 1000
        assert results["cost"]["view"] == 2000
    finally:
        for path in written:
            path.unlink()
