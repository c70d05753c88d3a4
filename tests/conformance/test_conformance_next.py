"""The MCP conformance pre-release with the 2026-07-28 scenarios (`@modelcontextprotocol/conformance@0.2.0-alpha.12`,
locked in tests/npm as the npm alias `conformance-next`), server mode, at both spec versions it scores.

Each leg is `server --url URL --suite all --spec-version V`, the invocation the python-sdk's own CI runs for its
everything-server: every scenario the suite marks applicable at V (the pending ones included), at V's wire (the
stateful handshake for 2025-11-25, stateless per-request `_meta` for 2026-07-28). A bare `--suite all` would add
the extension scenarios (tasks-*, sep-2640-skills-*), which no `--spec-version` selects and which the SDK itself
does not pass yet; they are not part of what a spec version requires.

- The direct baseline: tests/fixtures/conformance_server.py served over Streamable HTTP by the SDK itself
  (`--http PORT`). Every scenario of both legs passes, and the scenario lists are pinned here (40 at 2026-07-28,
  33 at 2025-11-25), so a scenario added or renamed upstream shows as a failure rather than passing silently.
- Through the gateway: the real supervisor with the same fixture as its one stdio backend, `namePrefix: ""` (as in
  test_conformance.py). One test per scenario and spec version, asserting 0 failed checks; and one per spec version
  asserting the run reported exactly the scenarios of the direct run.

Until the gateway serves the 2026-07-28 era (issue 13), its 2026-07-28 leg fails: every modern request is
answered as a handshake-era request without a session. There is no expected-failures list: the failing tests are
the gateway's to-do list, each with the scenario's failed checks and the tail of the supervisor's log.

The suite needs Node >= 22; `scripts/install-npm-tools.sh` (`make npm-tools`) installs both from the lock into
.tools/npm (see tests/npm_tools.py). Without them these tests fail (they do not skip).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.suite import SuiteRun, assert_scenario_passed, describe, run_suite
from tests.e2e.conftest import ROOT, RunningSupervisor, write_config
from tests.helpers import free_port, port_open, stop_process, wait_until
from tests.npm_tools import (
    CONFORMANCE_NEXT,
    CONFORMANCE_NEXT_COMMAND,
    CONFORMANCE_NEXT_ENTRY,
    INSTALL_HINT,
    NODE,
    installed_version,
    locked_version,
)

pytestmark = pytest.mark.e2e

CONFORMANCE_NEXT_VERSION = locked_version(CONFORMANCE_NEXT)
FIXTURE = ROOT / "tests" / "fixtures" / "conformance_server.py"
# A leg takes about 2 s directly. A scenario waits at most the suite's per-scenario timeout (30 s) for what it
# expects, so a gateway that never answers some request makes a leg slow, not endless.
LEG_TIMEOUT = 900.0

MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"
SPEC_VERSIONS = [MODERN, HANDSHAKE]

# What `server --suite all --spec-version V` of 0.2.0-alpha.12 runs (`conformance list --server --spec-version V`).
SCENARIOS: dict[str, list[str]] = {
    MODERN: [
        "server-stateless",
        "completion-complete",
        "tools-list",
        "tools-call-simple-text",
        "tools-call-image",
        "tools-call-audio",
        "tools-call-embedded-resource",
        "tools-call-mixed-content",
        "tools-call-error",
        "tools-call-with-progress",
        "json-schema-2020-12",
        "server-sse-multiple-streams",
        "resources-list",
        "resources-read-text",
        "resources-read-binary",
        "resources-templates-read",
        "sep-2164-resource-not-found",
        "prompts-list",
        "prompts-get-simple",
        "prompts-get-with-args",
        "prompts-get-embedded-resource",
        "prompts-get-with-image",
        "dns-rebinding-protection",
        "caching",
        "http-header-validation",
        "http-custom-header-server-validation",
        "input-required-result-basic-elicitation",
        "input-required-result-basic-sampling",
        "input-required-result-basic-list-roots",
        "input-required-result-request-state",
        "input-required-result-multiple-input-requests",
        "input-required-result-multi-round",
        "input-required-result-missing-input-response",
        "input-required-result-non-tool-request",
        "input-required-result-result-type",
        "input-required-result-unsupported-methods",
        "input-required-result-tampered-state",
        "input-required-result-capability-check",
        "input-required-result-ignore-extra-params",
        "input-required-result-validate-input",
    ],
    HANDSHAKE: [
        "server-initialize",
        "server-session-lifecycle",
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
        "json-schema-2020-12",
        "elicitation-sep1034-defaults",
        "server-sse-polling",
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
    ],
}
SCENARIO_COUNTS = {MODERN: 40, HANDSHAKE: 33}


def leg_args(spec_version: str) -> list[str]:
    return ["--suite", "all", "--spec-version", spec_version]


def missing_tools() -> str | None:
    if not (NODE.exists() and CONFORMANCE_NEXT_ENTRY.exists()):
        return f"{CONFORMANCE_NEXT_ENTRY} or {NODE} is missing"
    try:
        version = subprocess.run([str(NODE), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError as exc:
        return f"{NODE} does not run: {exc}"
    if not re.match(r"v(2[2-9]|[3-9]\d)\.", version):
        return f"{NODE} is {version or 'unknown'}, the suite needs Node >= 22"
    installed = installed_version(CONFORMANCE_NEXT)
    if installed != CONFORMANCE_NEXT_VERSION:
        return f"{CONFORMANCE_NEXT} is {installed}, these tests pin {CONFORMANCE_NEXT_VERSION}"
    return None


def not_installed(problem: str) -> SuiteRun:
    return SuiteRun(error=f"The MCP conformance pre-release is not installed ({problem}). {INSTALL_HINT}")


def log_tail(path: Path, lines: int = 80) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------------------------
# The direct baseline: the fixture over Streamable HTTP, both legs against one server process


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SuiteRun]]:
    """Both legs against the fixture served directly by the SDK; the server is stopped before the tests look."""
    problem = missing_tools()
    if problem:
        yield {version: not_installed(problem) for version in SPEC_VERSIONS}
        return
    workdir = tmp_path_factory.mktemp("conformance-next-direct")
    port, log_path = free_port(), workdir / "server.log"
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            [sys.executable, str(FIXTURE), "--http", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT)
        )
    try:
        wait_until(lambda: port_open(port) or server.poll() is not None, 30, what="the fixture over HTTP")
        if server.poll() is not None:
            problem = f"the fixture exited with {server.returncode}:\n{log_tail(log_path)}"
            yield {version: SuiteRun(error=problem) for version in SPEC_VERSIONS}
            return
        url = f"http://127.0.0.1:{port}/mcp"
        runs = {}
        for version in SPEC_VERSIONS:
            leg_dir = workdir / version
            leg_dir.mkdir()
            runs[version] = run_suite(
                CONFORMANCE_NEXT_COMMAND, url, leg_args(version), leg_dir, LEG_TIMEOUT, lambda: log_tail(log_path)
            )
    finally:
        stop_process(server)
    yield runs


@pytest.mark.parametrize("spec_version", SPEC_VERSIONS)
def test_direct_baseline_passes_every_scenario(direct: dict[str, SuiteRun], spec_version: str) -> None:
    """The fixture itself passes the whole leg when served by the SDK: what the gateway is measured against."""
    run = direct[spec_version]
    if run.error:
        pytest.fail(run.error, pytrace=False)
    failures = [
        f"{scenario}: {len(run.failed(scenario))} of {len(checks)} checks failed\n"
        + "\n".join(describe(check) for check in run.failed(scenario))
        for scenario, checks in sorted(run.checks.items())
        if run.failed(scenario) or not checks
    ]
    assert not failures, "directly, at --spec-version " + spec_version + ":\n" + "\n".join(failures)
    assert sorted(run.checks) == sorted(SCENARIOS[spec_version]), f"the suite ran {sorted(run.checks)}"
    assert len(run.checks) == SCENARIO_COUNTS[spec_version]


# --------------------------------------------------------------------------------------------------------------
# Through the gateway: one supervisor per leg, started inside the first test of that leg


@pytest.fixture(scope="module")
def gateway_runs() -> dict[str, SuiteRun]:
    return {}


def gateway_run(
    runs: dict[str, SuiteRun], spec_version: str, factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> SuiteRun:
    """The leg at `spec_version` through the gateway, run once, inside the first test that asks (its supervisor is
    stopped, and its whole process tree checked to be gone, after that test)."""
    if spec_version not in runs:
        problem = missing_tools()
        if problem:
            runs[spec_version] = not_installed(problem)
            return runs[spec_version]
        workdir = tmp_path_factory.mktemp(f"conformance-next-gateway-{spec_version}")
        config_dir = workdir / "config"
        entry = {"type": "stdio", "command": sys.executable, "args": [str(FIXTURE)], "namePrefix": ""}
        write_config(config_dir, {"conformance": entry})
        running: RunningSupervisor = factory(config_dir)
        running.wait_linked({"conformance"})
        runs[spec_version] = run_suite(
            CONFORMANCE_NEXT_COMMAND,
            running.url,
            leg_args(spec_version),
            workdir,
            LEG_TIMEOUT,
            lambda: running.log_tail(80),
        )
    return runs[spec_version]


@pytest.mark.parametrize(
    ("spec_version", "scenario"),
    [(version, scenario) for version in SPEC_VERSIONS for scenario in SCENARIOS[version]],
)
def test_gateway_scenario(
    gateway_runs: dict[str, SuiteRun],
    supervisor_factory: Any,
    tmp_path_factory: pytest.TempPathFactory,
    spec_version: str,
    scenario: str,
) -> None:
    run = gateway_run(gateway_runs, spec_version, supervisor_factory, tmp_path_factory)
    assert_scenario_passed(run, scenario, f"through the gateway at --spec-version {spec_version}")


@pytest.mark.parametrize("spec_version", SPEC_VERSIONS)
def test_gateway_runs_as_many_scenarios_as_directly(
    gateway_runs: dict[str, SuiteRun],
    direct: dict[str, SuiteRun],
    supervisor_factory: Any,
    tmp_path_factory: pytest.TempPathFactory,
    spec_version: str,
) -> None:
    run = gateway_run(gateway_runs, spec_version, supervisor_factory, tmp_path_factory)
    if run.error:
        pytest.fail(run.error, pytrace=False)
    assert sorted(run.checks) == sorted(SCENARIOS[spec_version]), (
        f"through the gateway the suite ran {sorted(run.checks)}"
    )
    if not direct[spec_version].error:
        assert sorted(run.checks) == sorted(direct[spec_version].checks)
