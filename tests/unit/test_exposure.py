"""The exposure score: 0 fully confined, 10 nothing enforced, computed from the plan's measures (system/exposure.py)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import msgspec

from mcp_supervisor.protocol.messages import SandboxReport
from mcp_supervisor.supervisor.backend_launch import sandbox_report
from mcp_supervisor.system import exposure as m
from mcp_supervisor.system.cgroups import BackendCgroup, InstanceCgroup
from mcp_supervisor.system.sandbox import SandboxPlan, SandboxPolicy, plan_sandbox
from tests.unit.test_sandbox_plan import CGROUP_V2, FULL, NO_BWRAP, NOTHING, SHARED

ALL = sorted({measure for factor in m.FACTORS for measure in factor.reduced_by})
DOCS = Path(__file__).resolve().parents[2] / "docs" / "sandbox.md"


def planned(
    state: Path, host: object = FULL, mode: str = "auto", cgroup: BackendCgroup | None = None, **policy: object
) -> SandboxPlan:
    return plan_sandbox(
        "/usr/bin/node",
        [],
        None,
        {"PATH": "/usr/bin"},
        SandboxPolicy(**policy),  # type: ignore[arg-type]
        mode,  # type: ignore[arg-type]
        host,  # type: ignore[arg-type]
        state_dir=str(state),
        hidden_paths=[],
        cgroup=cgroup,
    )


def test_weights_add_up_to_ten_and_nothing_enforced_scores_ten() -> None:
    assert abs(sum(f.weight for f in m.FACTORS) - 10.0) < 1e-9
    assert m.exposure([]).score == 10.0
    assert m.exposure(["unknown:measure"]).score == 10.0
    assert m.exposure(ALL).score == 0.0


def test_unsandboxed_plans_score_ten(tmp_path: Path) -> None:
    assert sandbox_report("off", planned(tmp_path, mode="off")).exposure == 10.0
    assert sandbox_report("auto", planned(tmp_path, enabled=False)).exposure == 10.0


def test_the_score_is_monotone_in_the_measures() -> None:
    rng = random.Random(22)
    for _ in range(2000):
        subset = {measure for measure in ALL if rng.random() < 0.5}
        base = m.exposure(subset).score
        for extra in set(ALL) - subset:
            assert m.exposure(subset | {extra}).score <= base, (subset, extra)


def test_default_sandbox_as_root_with_a_network_namespace_scores_at_most_two(tmp_path: Path) -> None:
    """This machine: root, bubblewrap with a user namespace, cgroups, and slirp4netns, which gives each backend a
    network namespace of its own by default."""
    report = sandbox_report("auto", planned(tmp_path))
    assert report.exposure is not None and report.exposure <= 2.0, report
    assert m.NET_NAMESPACE in report.measures
    # Without any network: as low; the host's network shared (no slirp4netns) weighs heavily.
    assert (sandbox_report("auto", planned(tmp_path, network=False)).exposure or 99) <= 2.0
    shared = sandbox_report("auto", planned(tmp_path, host=SHARED))
    assert shared.exposure is not None and shared.exposure >= report.exposure + 2.5, shared


def test_weaker_methods_score_higher(tmp_path: Path) -> None:
    scores = [
        sandbox_report("auto", planned(tmp_path, host=host, network=False)).exposure
        for host in (FULL, NO_BWRAP, NOTHING)
    ]
    assert scores == sorted(scores) and len(set(scores)) == 3, scores
    cgroup = InstanceCgroup(CGROUP_V2, "mcp.1.2").backend("demo", 3)
    limited = sandbox_report("auto", planned(tmp_path, cgroup=cgroup, network=False, memory_mb=256, pids=64, cpus=1.0))
    assert limited.exposure is not None and limited.exposure < (scores[0] or 0), limited


def test_factors_add_up_to_the_score(tmp_path: Path) -> None:
    report = sandbox_report("auto", planned(tmp_path, host=NO_BWRAP))
    assert report.exposure is not None
    assert abs(sum(report.exposure_factors.values()) - report.exposure) < 0.1
    assert set(report.exposure_factors) == {factor.name for factor in m.FACTORS}


def test_a_report_from_a_peer_without_the_score_decodes() -> None:
    old = msgspec.msgpack.encode({"mode": "auto", "method": "bwrap"})
    report = msgspec.msgpack.decode(old, type=SandboxReport)
    assert report.exposure is None and report.measures == () and report.exposure_factors == {}


def test_the_documented_scale_matches_the_weights() -> None:
    section = DOCS.read_text().split("## Exposure score", 1)[1].split("\n## ", 1)[0]
    for factor in m.FACTORS:
        row = re.search(rf"^\| {re.escape(factor.name)} \| ([0-9.]+) \|", section, re.MULTILINE)
        assert row is not None and float(row.group(1)) == factor.weight, factor.name
