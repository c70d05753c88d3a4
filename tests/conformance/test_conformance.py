"""The official MCP conformance suite (`@modelcontextprotocol/conformance`, server mode) against the gateway.

The real supervisor is started with one backend, tests/fixtures/conformance_server.py (every fixture tool,
resource and prompt the scenarios name), exposed with `namePrefix: ""`. The suite's whole active set of
server scenarios runs once against the gateway's /mcp, and each scenario is one test here, failing with that
scenario's failed checks. There is no expected-failures list: every active scenario must pass.

The suite needs Node >= 22; `scripts/install-npm-tools.sh` (`make npm-tools`) installs both from the lock in
tests/npm into .tools/npm (see tests/npm_tools.py). Without them these tests fail (they do not skip).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.suite import SuiteRun, assert_scenario_passed, run_suite
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


def run_active_suite(factory: Any, workdir: Path) -> SuiteRun:
    problem = missing_tools()
    if problem:
        return SuiteRun(error=f"The MCP conformance suite is not installed ({problem}). {INSTALL_HINT}")
    config_dir = workdir / "config"
    entry = {"type": "stdio", "command": sys.executable, "args": [str(FIXTURE)], "namePrefix": ""}
    write_config(config_dir, {"conformance": entry})
    running: RunningSupervisor = factory(config_dir)
    running.wait_linked({"conformance"})
    command = [str(TOOLS_BIN / "conformance")]
    return run_suite(command, running.url, ["--suite", "active"], workdir, SUITE_TIMEOUT, lambda: running.log_tail(80))


@pytest.fixture(scope="module")
def suite_cache() -> dict[str, SuiteRun]:
    return {}


@pytest.fixture
def suite(
    suite_cache: dict[str, SuiteRun], supervisor_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> SuiteRun:
    """The suite runs once, inside the first test that asks (its supervisor is stopped and checked after it)."""
    if "run" not in suite_cache:
        suite_cache["run"] = run_active_suite(supervisor_factory, tmp_path_factory.mktemp("conformance"))
    return suite_cache["run"]


@pytest.mark.parametrize("scenario", ACTIVE_SCENARIOS)
def test_scenario(suite: SuiteRun, scenario: str) -> None:
    assert_scenario_passed(suite, scenario, "through the gateway")


def test_suite_ran_exactly_the_active_scenarios(suite: SuiteRun) -> None:
    """A scenario added or renamed upstream must show here, not pass silently."""
    if suite.error:
        pytest.fail(suite.error, pytrace=False)
    assert sorted(suite.checks) == sorted(ACTIVE_SCENARIOS), f"suite ran {sorted(suite.checks)}"
