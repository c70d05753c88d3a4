"""The official MCP conformance suite (`@modelcontextprotocol/conformance`, server mode) against the gateway.

The real supervisor is started with one backend, tests/fixtures/conformance_server.py (every fixture tool,
resource and prompt the scenarios name), exposed with `namePrefix: ""`. The suite's whole active set of
server scenarios runs once against the gateway's /mcp, and each scenario is one test here, failing with that
scenario's failed checks. There is no expected-failures list: every active scenario must pass.

The suite needs Node >= 22; `scripts/install-npm-tools.sh` (`make npm-tools`) installs both from the lock in
tests/npm into .tools/npm (see tests/npm_tools.py). Without them these tests fail (they do not skip).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, RunningSupervisor, write_config
from tests.npm_tools import INSTALL_HINT, NPM_BIN, installed_version, locked_version

pytestmark = pytest.mark.e2e

CONFORMANCE_VERSION = locked_version("@modelcontextprotocol/conformance")
TOOLS_BIN = NPM_BIN
FIXTURE = ROOT / "tests" / "fixtures" / "conformance_server.py"
SUITE_TIMEOUT = 900.0  # seconds; a scenario whose server->client request is never relayed waits 60 s (client timeout)

# `--suite active` of 0.1.16: every server scenario except the pending ones (json-schema-2020-12,
# server-sse-polling). Pinned with the version, so that a scenario the run did not report fails visibly.
ACTIVE_SCENARIOS = [
    "server-initialize",
    "logging-set-level",
    "ping",
    "completion-complete",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-sampling",
    "tools-call-elicitation",
    "elicitation-sep1034-defaults",
    "server-sse-multiple-streams",
    "elicitation-sep1330-enums",
    "resources-list",
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
    "dns-rebinding-protection",
]

# <output dir>/server-<scenario>-<ISO timestamp with ':' and '.' as '-'>/checks.json
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


@dataclass
class SuiteRun:
    """One run of the suite: the checks each scenario reported, or why there are none."""

    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    error: str | None = None  # the suite could not run at all
    output_dir: Path | None = None
    stdout_tail: str = ""
    supervisor_log: str = ""
    seconds: float = 0.0


def missing_tools() -> str | None:
    node, cli = TOOLS_BIN / "node", TOOLS_BIN / "conformance"
    if not (node.exists() and cli.exists()):
        return f"{cli} or {node} is missing"
    try:
        version = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError as exc:
        return f"{node} does not run: {exc}"
    if not re.match(r"v(2[2-9]|[3-9]\d)\.", version):
        return f"{node} is {version or 'unknown'}, the suite needs Node >= 22"
    installed = installed_version("@modelcontextprotocol/conformance")
    if installed != CONFORMANCE_VERSION:
        return f"@modelcontextprotocol/conformance is {installed}, these tests pin {CONFORMANCE_VERSION}"
    return None


def read_checks(output_dir: Path) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for checks_file in sorted(output_dir.glob("*/checks.json")):
        match = RESULT_DIR.match(checks_file.parent.name)
        if match:
            results[match["scenario"]] = json.loads(checks_file.read_text())
    return results


def run_suite(factory: Any, workdir: Path) -> SuiteRun:
    problem = missing_tools()
    if problem:
        return SuiteRun(
            error=f"The MCP conformance suite is not installed ({problem}). {INSTALL_HINT}"
        )
    config_dir, output_dir = workdir / "config", workdir / "results"
    output_dir.mkdir(parents=True)
    # Handshake era: the fixture's tools ask the client with server->client requests and it announces resource
    # updates on its session, neither of which the 2026-07-28 era has.
    entry = {"type": "stdio", "command": sys.executable, "args": [str(FIXTURE)], "namePrefix": "", "protocol": "legacy"}
    write_config(config_dir, {"conformance": entry})
    running: RunningSupervisor = factory(config_dir)
    running.wait_linked({"conformance"})

    env = {**os.environ, "PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    command = [str(TOOLS_BIN / "conformance"), "server", "--url", running.url, "--suite", "active"]
    command += ["-o", str(output_dir)]
    started = time.monotonic()
    run = SuiteRun(output_dir=output_dir)
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=SUITE_TIMEOUT, cwd=str(workdir)
        )
        stdout, stderr = completed.stdout, completed.stderr
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = f"the suite did not finish within {SUITE_TIMEOUT:.0f} s"
    run.seconds = time.monotonic() - started
    (workdir / "conformance.stdout.txt").write_text(stdout)
    (workdir / "conformance.stderr.txt").write_text(stderr)
    run.stdout_tail = "\n".join((stdout + stderr).splitlines()[-40:])
    run.supervisor_log = running.log_tail(80)
    run.checks = read_checks(output_dir)
    if not run.checks:
        run.error = f"The conformance suite reported no scenario.\n{run.stdout_tail}"
    return run


@pytest.fixture(scope="module")
def suite_cache() -> dict[str, SuiteRun]:
    return {}


@pytest.fixture
def suite(
    suite_cache: dict[str, SuiteRun], supervisor_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> SuiteRun:
    """The suite runs once, inside the first test that asks (its supervisor is stopped and checked after it)."""
    if "run" not in suite_cache:
        suite_cache["run"] = run_suite(supervisor_factory, tmp_path_factory.mktemp("conformance"))
    return suite_cache["run"]


def describe(check: dict[str, Any]) -> str:
    line = f"  [{check.get('id')}] {check.get('name')}: {check.get('description')}"
    if check.get("errorMessage"):
        line += f"\n      error: {check['errorMessage']}"
    if check.get("details"):
        details = json.dumps(check["details"], separators=(",", ":"))
        line += f"\n      details: {details[:1500]}{'…' if len(details) > 1500 else ''}"
    return line


@pytest.mark.parametrize("scenario", ACTIVE_SCENARIOS)
def test_scenario(suite: SuiteRun, scenario: str) -> None:
    if suite.error:
        pytest.fail(suite.error, pytrace=False)
    checks = suite.checks.get(scenario)
    if checks is None:
        pytest.fail(
            f"scenario {scenario} reported no result (results in {suite.output_dir})\n{suite.stdout_tail}",
            pytrace=False,
        )
    failed = [check for check in checks if check.get("status") == "FAILURE"]
    if failed:
        pytest.fail(
            f"conformance scenario {scenario}: {len(failed)} of {len(checks)} checks failed\n"
            + "\n".join(describe(check) for check in failed)
            + f"\nresults: {suite.output_dir}\n--- supervisor log (tail) ---\n{suite.supervisor_log}",
            pytrace=False,
        )
    assert checks, f"scenario {scenario} ran no check"


def test_suite_ran_exactly_the_active_scenarios(suite: SuiteRun) -> None:
    """A scenario added or renamed upstream must show here, not pass silently."""
    if suite.error:
        pytest.fail(suite.error, pytrace=False)
    assert sorted(suite.checks) == sorted(ACTIVE_SCENARIOS), f"suite ran {sorted(suite.checks)}"
