"""The sandbox's file system as an allowlist: every path granted to another backend is hidden from this one, unless
it is granted to this one too or is a system directory; this backend's own grants inside a neighbour's stay.

Pure planning (HostCapabilities built by hand, real paths in tmp_path), plus the launcher's Landlock rule list.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_supervisor.system import landlock
from mcp_supervisor.system.launch import parse
from mcp_supervisor.system.probe import SYSTEM_TREES
from mcp_supervisor.system.sandbox import SandboxPlan, SandboxPolicy, backend_grants, plan_sandbox
from tests.unit.test_sandbox_plan import FULL, NO_BWRAP, index_of, pairs, split


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "state" / "me"
    directory.mkdir(parents=True)
    return directory


@pytest.fixture
def opt(tmp_path: Path) -> Path:
    """An /opt-like tree: a neighbour's server next to its .env, its cwd, data and output directories."""
    root = tmp_path / "opt"
    for name in ("neighbour", "neighbour-work", "neighbour-data", "neighbour-out", "shared", "mine"):
        (root / name).mkdir(parents=True)
    (root / "neighbour" / "server.py").write_text("print('hi')\n")
    (root / "neighbour" / ".env").write_text("GITHUB_TOKEN=x\n")
    (root / "shared" / "mine.txt").write_text("mine")
    return root


def neighbour_grants(opt: Path, state: Path) -> list[str]:
    policy = SandboxPolicy(
        read_paths=(str(opt / "neighbour-data"), str(opt / "shared")), write_paths=(str(opt / "neighbour-out"),)
    )
    return backend_grants(
        "/usr/bin/python3", [str(opt / "neighbour" / "server.py")], str(opt / "neighbour-work"), "/usr/bin", policy,
        str(state.parent / "neighbour"),
    )  # fmt: skip


def plan(state: Path, opt: Path, neighbours: list[str], host: object = FULL, **policy: object) -> SandboxPlan:
    return plan_sandbox(
        "/usr/bin/node",
        [],
        None,
        {"PATH": "/usr/bin:/bin"},
        SandboxPolicy(**policy),  # type: ignore[arg-type]
        "auto",
        host,  # type: ignore[arg-type]
        state_dir=str(state),
        hidden_paths=[],
        neighbours=neighbours,
    )


def test_opt_and_srv_are_not_system_trees() -> None:
    assert "/opt" not in SYSTEM_TREES and "/srv" not in SYSTEM_TREES and "/usr" in SYSTEM_TREES


def test_a_backends_grants_are_its_command_args_cwd_read_and_write_paths(opt: Path, state: Path) -> None:
    grants = neighbour_grants(opt, state)
    for name in ("neighbour", "neighbour-work", "neighbour-data", "neighbour-out", "shared"):
        assert str(opt / name) in grants, grants
    assert any(p.startswith("/usr") for p in grants)  # python3's directory: system, which is never hidden


def test_every_grant_of_a_neighbour_inside_a_granted_tree_is_masked(opt: Path, state: Path) -> None:
    result = plan(state, opt, neighbour_grants(opt, state), read_paths=(str(opt),))
    options = split(result).bwrap
    bind = index_of(options, "--ro-bind", str(opt), str(opt))
    for name in ("neighbour", "neighbour-work", "neighbour-data", "neighbour-out", "shared"):
        mask = index_of(options, "--tmpfs", str(opt / name))
        assert bind < mask < index_of(options, "--remount-ro", str(opt / name))
    assert "/usr" not in pairs(options, "--tmpfs")  # the system stays whole
    assert "5 path(s) hidden" in result.enforced["filesystem"] or "path(s) hidden" in result.enforced["filesystem"]


def test_own_grant_inside_a_neighbours_path_is_bound_again_after_the_mask(opt: Path, state: Path) -> None:
    mine = opt / "shared" / "mine.txt"
    result = plan(state, opt, neighbour_grants(opt, state), read_paths=(str(opt), str(mine)))
    options = split(result).bwrap
    mask = index_of(options, "--tmpfs", str(opt / "shared"))
    again = index_of(options, "--ro-bind", str(mine), str(mine))
    assert mask < again < index_of(options, "--remount-ro", str(opt / "shared"))


def test_own_writable_grant_inside_a_neighbours_path_stays_writable(opt: Path, state: Path) -> None:
    out = opt / "shared" / "out"
    out.mkdir()
    options = split(plan(state, opt, neighbour_grants(opt, state), write_paths=(str(out),))).bwrap
    # shared is not under any of this backend's trees here: nothing to mask, the own bind is plain
    assert index_of(options, "--bind", str(out), str(out)) > 0
    under_opt = plan(state, opt, neighbour_grants(opt, state), read_paths=(str(opt),), write_paths=(str(out),))
    options = split(under_opt).bwrap
    binds = [i for i in range(len(options)) if options[i : i + 3] == ["--bind", str(out), str(out)]]
    assert index_of(options, "--tmpfs", str(opt / "shared")) < binds[-1]  # bound again, writable, over the mask


def test_a_path_granted_to_both_stays_visible(opt: Path, state: Path) -> None:
    result = plan(state, opt, neighbour_grants(opt, state), read_paths=(str(opt), str(opt / "shared")))
    options = split(result).bwrap
    assert str(opt / "shared") not in pairs(options, "--tmpfs")
    assert str(opt / "neighbour") in pairs(options, "--tmpfs")


def test_system_directories_and_tmp_are_never_hidden(opt: Path, state: Path, tmp_path: Path) -> None:
    result = plan(state, opt, ["/usr", "/usr/lib", "/etc/ssl", "/", "/tmp", str(tmp_path)], read_paths=(str(opt),))
    options = split(result).bwrap
    masks = set(pairs(options, "--tmpfs"))
    assert not masks & {"/usr", "/usr/lib", "/etc/ssl", "/"}
    # tmp_path holds this backend's grants: nothing of it shows but them, so there is nothing to mask
    assert str(tmp_path) not in masks and index_of(options, "--ro-bind", str(opt), str(opt)) > 0


def test_landlock_gets_the_neighbours_and_grants_own_paths_inside_them_again(opt: Path, state: Path) -> None:
    mine = opt / "shared" / "mine.txt"
    result = plan(state, opt, neighbour_grants(opt, state), host=NO_BWRAP, read_paths=(str(opt), str(mine)))
    spec, _ = parse(result.argv[4 : result.argv.index("--") + 2])
    assert str(opt / "neighbour") in spec.neighbours and str(opt / "shared") in spec.neighbours
    readable, _ = landlock.rules(spec.read, spec.write, spec.own, spec.hidden, spec.neighbours)
    assert str(mine) in readable and str(opt / "mine") in readable
    assert not any(p == str(opt / "neighbour") or p.startswith(str(opt / "neighbour") + "/") for p in readable)
    assert str(opt) not in readable  # replaced by its entries, minus the neighbour's


def test_landlock_rules_hidden_wins_over_own_grants_inside_neighbours(tmp_path: Path) -> None:
    tree, secret = tmp_path / "n", tmp_path / "n" / "mine" / "config"
    secret.mkdir(parents=True)
    readable, writable = landlock.rules([str(tree / "mine")], [], [], [str(secret)], [str(tree)])
    assert str(tree) not in readable and str(secret) not in readable and str(tree / "mine") not in readable
    assert readable == [] and writable == []  # mine holds only the hidden dir: nothing else to grant
