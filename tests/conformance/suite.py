"""Running the official MCP conformance suite (`@modelcontextprotocol/conformance`, server mode) and reading its
results: shared by the 0.1.16 leg (test_conformance.py) and the 2026-07-28 pre-release legs
(test_conformance_next.py).

The suite writes one directory per scenario, `<output dir>/server-<scenario>-<ISO time>/checks.json`; a check's
`status` is SUCCESS, FAILURE, WARNING, SKIPPED or INFO, and only FAILURE fails a scenario.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.npm_tools import NPM_BIN

# <output dir>/server-<scenario>-<ISO timestamp with ':' and '.' as '-'>/checks.json
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


@dataclass
class SuiteRun:
    """One run of the suite: the checks each scenario reported, or why there are none."""

    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    error: str | None = None  # the suite could not run at all
    output_dir: Path | None = None
    stdout_tail: str = ""
    server_log: str = ""  # the tail of the log of what was tested (the supervisor's, or the direct server's)
    seconds: float = 0.0

    def failed(self, scenario: str) -> list[dict[str, Any]]:
        return [check for check in self.checks.get(scenario, []) if check.get("status") == "FAILURE"]

    def check_count(self) -> dict[str, int]:
        """How many checks of each status the whole run reported."""
        counts: dict[str, int] = {}
        for checks in self.checks.values():
            for check in checks:
                status = str(check.get("status"))
                counts[status] = counts.get(status, 0) + 1
        return counts


def read_checks(output_dir: Path) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for checks_file in sorted(output_dir.glob("*/checks.json")):
        match = RESULT_DIR.match(checks_file.parent.name)
        if match:
            results[match["scenario"]] = json.loads(checks_file.read_text())
    return results


def run_suite(
    command: Sequence[str], url: str, args: Sequence[str], workdir: Path, timeout: float, server_log: Callable[[], str]
) -> SuiteRun:
    """`<command> server --url URL <args> -o <workdir>/results`, bounded by `timeout`; its stdout and stderr are kept
    in `workdir` (conformance.stdout.txt, conformance.stderr.txt)."""
    output_dir = workdir / "results"
    output_dir.mkdir(parents=True)
    env = {**os.environ, "PATH": f"{NPM_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    full = [*command, "server", "--url", url, *args, "-o", str(output_dir)]
    started = time.monotonic()
    run = SuiteRun(output_dir=output_dir)
    try:
        completed = subprocess.run(full, capture_output=True, text=True, env=env, timeout=timeout, cwd=str(workdir))
        stdout, stderr = completed.stdout, completed.stderr
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the suite before raising
        stdout = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = f"the suite did not finish within {timeout:.0f} s"
    run.seconds = time.monotonic() - started
    (workdir / "conformance.stdout.txt").write_text(stdout)
    (workdir / "conformance.stderr.txt").write_text(stderr)
    run.stdout_tail = "\n".join((stdout + stderr).splitlines()[-40:])
    run.server_log = server_log()
    run.checks = read_checks(output_dir)
    if not run.checks:
        run.error = f"The conformance suite reported no scenario.\n{run.stdout_tail}"
    return run


def describe(check: dict[str, Any], limit: int = 1500) -> str:
    line = f"  [{check.get('id')}] {check.get('name')}: {check.get('description')}"
    if check.get("errorMessage"):
        line += f"\n      error: {check['errorMessage']}"
    if check.get("details"):
        details = json.dumps(check["details"], separators=(",", ":"))
        line += f"\n      details: {details[:limit]}{'…' if len(details) > limit else ''}"
    return line


def assert_scenario_passed(run: SuiteRun, scenario: str, where: str, log_name: str = "supervisor log") -> None:
    """Fail (with the scenario's failed checks and the tail of the log) unless `scenario` reported checks and none
    of them failed."""
    if run.error:
        pytest.fail(run.error, pytrace=False)
    checks = run.checks.get(scenario)
    if checks is None:
        pytest.fail(
            f"scenario {scenario} reported no result {where} (results in {run.output_dir})\n{run.stdout_tail}",
            pytrace=False,
        )
    failed = run.failed(scenario)
    if failed:
        pytest.fail(
            f"conformance scenario {scenario} {where}: {len(failed)} of {len(checks)} checks failed\n"
            + "\n".join(describe(check) for check in failed)
            + f"\nresults: {run.output_dir}\n--- {log_name} (tail) ---\n{run.server_log}",
            pytrace=False,
        )
    assert checks, f"scenario {scenario} ran no check {where}"
