"""plan_sandbox is pure: these tests build HostCapabilities by hand and check the argv and the per-feature account.

Paths are real files in tmp_path (the planner looks up which paths exist), nothing is executed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import msgspec
import pytest

from mcp_supervisor.system.cgroups import BackendCgroup, CgroupHost, CgroupLimits, InstanceCgroup
from mcp_supervisor.system.landlock import expand_allowed
from mcp_supervisor.system.launch import Spec, parse
from mcp_supervisor.system.network import BLOCK_FD, INFO_FD
from mcp_supervisor.system.probe import BwrapSupport, HostCapabilities
from mcp_supervisor.system.sandbox import FEATURES, SandboxPlan, SandboxPolicy, SandboxUnavailable, plan_sandbox

PYTHON = "/usr/bin/python3.11"
SHELL = "/bin/sh"
LAUNCHER = "/opt/mcp/mcp_supervisor/system/launch.py"
CGROUP_V2 = CgroupHost(2, (("/sys/fs/cgroup/system.slice/mcp.service", frozenset({"memory", "pids", "cpu"})),))
CGROUP_V1 = CgroupHost(
    1,
    (
        ("/sys/fs/cgroup/memory", frozenset({"memory"})),
        ("/sys/fs/cgroup/pids", frozenset({"pids"})),
        ("/sys/fs/cgroup/cpu,cpuacct", frozenset({"cpu"})),
    ),
)
FULL = HostCapabilities(
    euid=0,
    bwrap=BwrapSupport("/usr/bin/bwrap", userns=True),
    bwrap_problem="",
    landlock_abi=7,
    cgroup=CGROUP_V2,
    cgroup_problem="",
    python=PYTHON,
    launcher=LAUNCHER,
    shell=SHELL,
    system_trees=("/usr", "/etc"),
    system_links=(("/bin", "usr/bin"), ("/lib", "usr/lib")),
    extra_read=("/sys/devices/system/cpu",),
    secret_files=("/etc/shadow",),
    slirp4netns="/usr/bin/slirp4netns",
    slirp_problem="",
)
# The user-mode network is missing: the backend shares the host's network, as before issue 22.
SHARED = dataclasses.replace(
    FULL, slirp4netns="", slirp_problem="slirp4netns is not installed (Debian package slirp4netns)"
)
NO_BWRAP = dataclasses.replace(FULL, bwrap=None, bwrap_problem="bubblewrap (bwrap) is not installed")
NOTHING = dataclasses.replace(NO_BWRAP, landlock_abi=0, cgroup=None, cgroup_problem="no writable cgroup")


@dataclasses.dataclass
class Split:
    """A plan's argv cut into its stages: the outer stage's spec, bwrap's options, the program."""

    outer: Spec
    shell_stage: bool
    bwrap: list[str]
    program: list[str]


def split(plan: SandboxPlan) -> Split:
    argv = plan.argv
    if argv[:2] == [SHELL, "-c"]:
        end = argv.index("--", 4)
        outer = Spec()
        outer.cgroup_procs, outer.rlimits, rest = argv[4:end], [("RLIMIT_CORE", 0, 0)], argv[end + 1 :]
    else:
        assert argv[:4] == [PYTHON, "-I", "-S", LAUNCHER]
        outer, rest = parse(argv[4:])
    shell_stage = argv[0] == SHELL
    if not rest or rest[0] != "/usr/bin/bwrap":
        return Split(outer, shell_stage, [], rest)
    end = rest.index("--")
    return Split(outer, shell_stage, rest[:end], rest[end + 1 :])


def pairs(options: list[str], flag: str) -> list[str]:
    """The first argument of each occurrence of `flag`."""
    return [options[i + 1] for i, word in enumerate(options) if word == flag]


def index_of(options: list[str], *words: str) -> int:
    for i in range(len(options) - len(words) + 1):
        if tuple(options[i : i + len(words)]) == words:
            return i
    raise AssertionError(f"{words} not in {options}")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "state" / "me"
    directory.mkdir(parents=True)
    return directory


def plan(
    state: Path,
    command: str = "/usr/bin/node",
    args: list[str] | None = None,
    *,
    host: HostCapabilities = FULL,
    policy: SandboxPolicy | None = None,
    mode: str = "auto",
    cwd: str | None = None,
    hidden: list[str] | None = None,
    cgroup: BackendCgroup | None = None,
    run_as: tuple[int, int] | None = None,
) -> SandboxPlan:
    return plan_sandbox(
        command,
        list(args or []),
        cwd,
        {"PATH": "/usr/bin:/bin", "TMPDIR": "/run/user/0/tmp", "SECRET": "own"},
        policy or SandboxPolicy(),
        mode,  # type: ignore[arg-type]
        host,
        state_dir=str(state),
        hidden_paths=list(hidden or []),
        cgroup=cgroup,
        run_as=run_as,
        name="demo",
    )


# --- off and disabled -------------------------------------------------------------------------------------------


def test_off_leaves_argv_env_and_cwd_alone(state: Path) -> None:
    result = plan(state, "node", ["server.js"], mode="off", cwd="/srv/app")
    assert result.argv == ["node", "server.js"]
    assert result.env["TMPDIR"] == "/run/user/0/tmp" and "HOME" not in result.env
    assert result.cwd == "/srv/app" and result.method == "none" and result.enforced == {}
    assert set(result.not_enforced) == set(FEATURES)
    assert all("SANDBOX is off" in reason for reason in result.not_enforced.values())


def test_disabled_policy_even_in_required_mode(state: Path) -> None:
    result = plan(state, "node", ["x"], mode="required", policy=SandboxPolicy(enabled=False))
    assert result.argv == ["node", "x"] and result.method == "none"
    assert all('"enabled": false' in reason and "demo" in reason for reason in result.not_enforced.values())


# --- bubblewrap -------------------------------------------------------------------------------------------------


def test_bwrap_flags_as_root_with_userns(state: Path) -> None:
    result = plan(state, "/usr/bin/node", ["-e", "0"])
    parts = split(result)
    for flag in ("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"):
        assert flag in parts.bwrap
    assert "--as-pid-1" not in parts.bwrap  # bwrap stays pid 1 and reaps; its exit kills the namespace
    assert index_of(parts.bwrap, "--unshare-user", "--disable-userns") >= 0
    assert index_of(parts.bwrap, "--cap-drop", "ALL") >= 0
    assert index_of(parts.bwrap, "--unshare-net", "--info-fd", INFO_FD, "--block-fd", BLOCK_FD) >= 0  # own network
    assert index_of(parts.bwrap, "--ro-bind", "/usr", "/usr") >= 0
    assert index_of(parts.bwrap, "--symlink", "usr/bin", "/bin") >= 0
    assert index_of(parts.bwrap, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp") >= 0
    assert parts.program == ["/usr/bin/node", "-e", "0"]
    assert result.method == "bwrap"
    assert set(result.enforced) >= {"filesystem", "processes", "privileges"}
    assert parts.outer.rlimits == [("RLIMIT_CORE", 0, 0)]


def test_env_home_is_state_dir_and_tmpdir_private(state: Path) -> None:
    result = plan(state)
    assert result.env["HOME"] == str(state) and result.env["TMPDIR"] == "/tmp" and result.env["SECRET"] == "own"
    parts = split(result)
    assert index_of(parts.bwrap, "--bind", str(state), str(state)) > 0
    assert pairs(parts.bwrap, "--chdir") == [str(state)]  # no cwd given: the state dir
    assert result.cwd == str(state)


def test_non_root_gets_no_cap_drop_and_root_without_userns_is_reported(state: Path) -> None:
    non_root = dataclasses.replace(FULL, euid=1000)
    assert "--cap-drop" not in split(plan(state, host=non_root)).bwrap
    assert "privileges" not in plan(state, host=non_root).not_enforced
    root_no_userns = dataclasses.replace(FULL, bwrap=BwrapSupport("/usr/bin/bwrap", userns=False))
    result = plan(state, host=root_no_userns)
    assert "--unshare-user" not in split(result).bwrap
    assert "uid 0" in result.not_enforced["privileges"]


def test_run_as_unprivileged_needs_userns(state: Path) -> None:
    root_no_userns = dataclasses.replace(FULL, bwrap=BwrapSupport("/usr/bin/bwrap", userns=False))
    result = plan(state, host=root_no_userns, run_as=(65534, 65534))
    assert result.method == "landlock"  # bwrap as uid 65534 would need a user namespace
    result = plan(state, run_as=(65534, 65534))
    parts = split(result)
    assert result.method == "bwrap" and parts.outer.run_as == (65534, 65534) and not parts.shell_stage
    assert "--cap-drop" not in parts.bwrap and "uid 65534" in result.enforced["privileges"]
    assert "privileges" not in result.not_enforced


def test_network_off_unshares_net_and_needs_only_the_sh_stage(state: Path) -> None:
    result = plan(state, policy=SandboxPolicy(network=False))
    parts = split(result)
    assert "--unshare-net" in parts.bwrap
    assert "network namespace" in result.enforced["network"] and "network" not in result.not_enforced
    # Abstract unix sockets are per network namespace already: no Landlock, so the ~1 ms sh stage suffices.
    assert parts.shell_stage and parts.outer.landlock_abi == 0


def test_shared_network_gets_a_landlock_scope_before_bwrap(state: Path) -> None:
    parts = split(plan(state, host=SHARED))
    assert not parts.shell_stage and parts.outer.to_args()[-4:] == ["--landlock", "7", "--no-fs", "--scope"]
    assert LAUNCHER not in parts.bwrap and PYTHON not in parts.program  # nothing of ours runs inside
    assert "--unshare-net" not in parts.bwrap
    old = dataclasses.replace(SHARED, landlock_abi=5)
    result = plan(state, host=old)
    assert split(result).shell_stage and "slirp4netns is not installed" in result.not_enforced["network"]


# --- paths ------------------------------------------------------------------------------------------------------


def test_args_file_grants_its_project_root_and_dirs_and_options(tmp_path: Path, state: Path) -> None:
    project = tmp_path / "x"
    (project / "dist").mkdir(parents=True)
    (project / "node_modules").mkdir()
    (project / "dist" / "index.js").write_text("")
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "settings").mkdir()
    conf = tmp_path / "settings" / "conf.json"
    conf.write_text("{}")
    result = plan(state, "/usr/bin/node", [str(project / "dist" / "index.js"), str(data), f"--config={conf}", "stdio"])
    ro = pairs(split(result).bwrap, "--ro-bind")
    assert str(project) in ro  # node resolves ../node_modules from dist/
    assert str(data) in ro
    assert str(tmp_path / "settings") in ro  # conf.json's dir (no project marker above it)
    assert not any(p.endswith("/stdio") for p in ro)


def test_relative_args_resolve_against_cwd_and_cwd_is_readable(tmp_path: Path, state: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "server.py").write_text("")
    (app / "pyproject.toml").write_text("")
    result = plan(state, "/usr/bin/python3", ["./server.py"], cwd=str(app))
    parts = split(result)
    assert str(app) in pairs(parts.bwrap, "--ro-bind") and pairs(parts.bwrap, "--chdir") == [str(app)]
    assert parts.program == ["/usr/bin/python3", "./server.py"]


def test_command_in_venv_and_node_modules_bin_grant_their_prefix(tmp_path: Path, state: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    script = venv / "bin" / "mcp-server-time"
    script.write_text("#!/usr/bin/env python3\n")
    script.chmod(0o755)
    result = plan(state, str(script))
    assert str(venv) in pairs(split(result).bwrap, "--ro-bind")

    project = tmp_path / "proj"
    (project / "node_modules" / ".bin").mkdir(parents=True)
    (project / "node_modules" / "pkg" / "dist").mkdir(parents=True)
    target = project / "node_modules" / "pkg" / "dist" / "cli.js"
    target.write_text("#!/usr/bin/env node\n")
    link = project / "node_modules" / ".bin" / "pkg"
    link.symlink_to("../pkg/dist/cli.js")
    result = plan(state, str(link))
    assert str(project) in pairs(split(result).bwrap, "--ro-bind")


def test_command_is_resolved_through_path(tmp_path: Path, state: Path) -> None:
    bindir = tmp_path / "tools" / "bin"
    bindir.mkdir(parents=True)
    tool = bindir / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    result = plan_sandbox(
        "mytool",
        ["--flag"],
        None,
        {"PATH": f"{bindir}:/usr/bin"},
        SandboxPolicy(),
        "auto",
        FULL,
        state_dir=str(state),
        hidden_paths=[],
    )
    parts = split(result)
    assert parts.program == [str(tool), "--flag"]
    assert str(tmp_path / "tools") in pairs(parts.bwrap, "--ro-bind")


def test_read_and_write_paths_and_missing_ones_warn(tmp_path: Path, state: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    policy = SandboxPolicy(read_paths=(str(ro), str(tmp_path / "missing")), write_paths=(str(rw),))
    result = plan(state, policy=policy)
    parts = split(result)
    assert str(ro) in pairs(parts.bwrap, "--ro-bind") and str(rw) in pairs(parts.bwrap, "--bind")
    assert any("missing" in w for w in result.warnings)


def test_whole_filesystem_arg_is_refused_with_a_warning(state: Path) -> None:
    result = plan(state, "/usr/bin/node", ["/"])
    assert "/" not in pairs(split(result).bwrap, "--ro-bind")
    assert any("whole filesystem" in w for w in result.warnings)


# --- hidden paths -----------------------------------------------------------------------------------------------


def test_hidden_dir_inside_a_readable_tree_is_masked_after_the_bind(tmp_path: Path, state: Path) -> None:
    tree = tmp_path / "srv"
    (tree / "config").mkdir(parents=True)
    (tree / "config" / "mcp_server.json").write_text("{}")
    (tree / "token").write_text("t")
    result = plan(
        state,
        policy=SandboxPolicy(read_paths=(str(tree),)),
        hidden=[str(tree / "config"), str(tree / "token"), str(tmp_path / "elsewhere-not-existing")],
    )
    options = split(result).bwrap
    bind_at = index_of(options, "--ro-bind", str(tree), str(tree))
    mask_at = index_of(options, "--tmpfs", str(tree / "config"))
    assert bind_at < mask_at < index_of(options, "--remount-ro", str(tree / "config"))
    assert index_of(options, "--ro-bind", "/dev/null", str(tree / "token")) > bind_at
    assert index_of(options, "--ro-bind", "/dev/null", "/etc/shadow") > 0  # host secrets, always
    assert str(tmp_path / "elsewhere-not-existing") not in options


def test_hidden_dir_reached_through_a_symlinked_grant_is_masked_there_too(tmp_path: Path, state: Path) -> None:
    real = tmp_path / "releases" / "v2"
    (real / "config").mkdir(parents=True)
    alias = tmp_path / "current"
    alias.symlink_to(real)
    options = split(plan(state, policy=SandboxPolicy(read_paths=(str(alias),)), hidden=[str(real / "config")])).bwrap
    assert index_of(options, "--ro-bind", str(alias), str(alias)) < index_of(options, "--tmpfs", str(alias / "config"))


def test_hidden_path_wins_over_write_paths_and_args(tmp_path: Path, state: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "s.json").write_text("{}")
    result = plan(
        state,
        "/usr/bin/node",
        [str(config / "s.json")],
        policy=SandboxPolicy(write_paths=(str(config),)),
        hidden=[str(config)],
    )
    options = split(result).bwrap
    assert index_of(options, "--tmpfs", str(config)) > index_of(options, "--bind", str(config), str(config))


def test_own_state_dir_inside_hidden_state_root_stays_usable(tmp_path: Path, state: Path) -> None:
    state_root = state.parent
    (state_root / "other").mkdir()
    result = plan(state, policy=SandboxPolicy(read_paths=(str(tmp_path),)), hidden=[str(state_root)])
    options = split(result).bwrap
    mask = index_of(options, "--tmpfs", str(state_root))
    mount_point = index_of(options, "--dir", str(state))
    remount = index_of(options, "--remount-ro", str(state_root))
    own = index_of(options, "--bind", str(state), str(state))
    assert mask < mount_point < remount < own


def test_hidden_outside_every_bound_tree_is_not_mounted(tmp_path: Path, state: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    options = split(plan(state, hidden=[str(config)])).bwrap
    assert str(config) not in options  # /tmp is a fresh tmpfs: nothing of the host's /tmp is there to hide


# --- limits -----------------------------------------------------------------------------------------------------


def backend_cgroup(host: CgroupHost) -> BackendCgroup:
    return InstanceCgroup(host, "mcp.1.2").backend("demo", 3)


def test_limits_with_cgroup_v2(state: Path) -> None:
    cgroup = backend_cgroup(CGROUP_V2)
    result = plan(state, policy=SandboxPolicy(memory_mb=64, pids=64, cpus=0.5), cgroup=cgroup)
    assert result.cgroup is cgroup
    assert result.limits.memory_bytes == 64 * 1024 * 1024 and result.limits.pids == 64 and result.limits.cpus == 0.5
    assert split(result).outer.cgroup_procs == [
        "/sys/fs/cgroup/system.slice/mcp.service/mcp-supervisor/mcp.1.2/demo-3/cgroup.procs"
    ]
    assert {"memory", "pids", "cpu"} <= set(result.enforced)


def test_limits_with_cgroup_v1_join_the_tracker_and_the_limiting_hierarchies(state: Path) -> None:
    result = plan(state, policy=SandboxPolicy(pids=10, cpus=1), cgroup=backend_cgroup(CGROUP_V1))
    assert split(result).outer.cgroup_procs == [
        "/sys/fs/cgroup/pids/mcp-supervisor/mcp.1.2/demo-3/cgroup.procs",
        "/sys/fs/cgroup/cpu,cpuacct/mcp-supervisor/mcp.1.2/demo-3/cgroup.procs",
    ]
    assert "cgroup v1" in result.enforced["pids"]
    tracked_only = split(plan(state, cgroup=backend_cgroup(CGROUP_V1))).outer.cgroup_procs
    assert tracked_only == ["/sys/fs/cgroup/pids/mcp-supervisor/mcp.1.2/demo-3/cgroup.procs"]
    with_memory = split(plan(state, policy=SandboxPolicy(memory_mb=64), cgroup=backend_cgroup(CGROUP_V1)))
    assert len(with_memory.outer.cgroup_procs) == 2


def test_unrequested_limits_are_listed_but_not_required(state: Path) -> None:
    result = plan(state, mode="required")
    assert result.not_enforced["memory"].startswith("no limit set")
    assert split(result).outer.cgroup_procs == []  # no cgroup handed over


def test_no_cgroup_means_limits_not_enforced_and_no_rlimit_as(state: Path) -> None:
    host = dataclasses.replace(FULL, cgroup=None, cgroup_problem="no writable cgroup v1 memory or pids hierarchy")
    result = plan(state, host=host, policy=SandboxPolicy(memory_mb=64, pids=64), cgroup=backend_cgroup(CGROUP_V2))
    assert result.cgroup is None and result.limits.memory_bytes is None
    assert "RLIMIT_AS" in result.not_enforced["memory"] and "RLIMIT_NPROC" in result.not_enforced["pids"]
    assert [r[0] for r in split(result).outer.rlimits] == ["RLIMIT_CORE"]


# --- required ---------------------------------------------------------------------------------------------------


def test_required_refuses_missing_limits_naming_each(state: Path) -> None:
    host = dataclasses.replace(FULL, cgroup=None, cgroup_problem="no writable cgroup v1 memory or pids hierarchy")
    with pytest.raises(SandboxUnavailable) as caught:
        plan(state, host=host, mode="required", policy=SandboxPolicy(memory_mb=64, cpus=1.0))
    message = str(caught.value)
    assert "demo" in message and "SANDBOX=required" in message
    assert "memory (" in message and "cpu (" in message and "pids (" not in message
    assert "no writable cgroup" in message and message.endswith(".")


def test_required_accepts_a_full_host(state: Path) -> None:
    result = plan(
        state,
        mode="required",
        policy=SandboxPolicy(memory_mb=64, pids=32, network=False),
        cgroup=backend_cgroup(CGROUP_V2),
    )
    assert result.method == "bwrap"


def test_required_refuses_landlock_only(state: Path) -> None:
    with pytest.raises(SandboxUnavailable, match=r"filesystem .*processes .*bubblewrap \(bwrap\) is not installed"):
        plan(state, host=NO_BWRAP, mode="required")


def test_required_refuses_nothing_and_auto_says_why(state: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="network"):
        plan(state, host=NOTHING, mode="required", policy=SandboxPolicy(network=False))
    result = plan(state, host=NOTHING, policy=SandboxPolicy(network=False))
    assert result.method == "limits-only" and split(result).program == ["/usr/bin/node"]
    assert "not installed" in result.not_enforced["filesystem"] and "network" in result.not_enforced


# --- Landlock only ----------------------------------------------------------------------------------------------


def test_landlock_only_spec(tmp_path: Path, state: Path) -> None:
    config, ro, rw = tmp_path / "config", tmp_path / "ro", tmp_path / "rw"
    for directory in (config, ro, rw):
        directory.mkdir()
    result = plan(
        state,
        host=NO_BWRAP,
        policy=SandboxPolicy(network=False, read_paths=(str(ro),), write_paths=(str(rw),)),
        hidden=[str(config)],
    )
    parts = split(result)
    assert result.method == "landlock" and parts.program == ["/usr/bin/node"]
    spec = parts.outer
    assert spec.landlock_abi == 7 and spec.deny_tcp and spec.scope and spec.own_proc and spec.filesystem
    assert {"/usr", "/etc", str(ro)} <= set(spec.read) and "/proc" not in spec.read
    assert {"/tmp", str(rw)} <= set(spec.write) and spec.own == [str(state)]
    assert str(config) in spec.hidden and "/etc/shadow" in spec.hidden
    assert "TCP" in result.enforced["network"] and "UDP" in result.not_enforced["network"]


# --- policy model -----------------------------------------------------------------------------------------------


def test_policy_decodes_camel_case_and_rejects_unknown_fields() -> None:
    policy = msgspec.json.decode(
        b'{"enabled": true, "network": false, "readPaths": ["/a"], "writePaths": ["/b"], "memoryMb": 64, "pids": 10,'
        b' "cpus": 0.5}',
        type=SandboxPolicy,
    )
    assert policy == SandboxPolicy(
        network=False, read_paths=("/a",), write_paths=("/b",), memory_mb=64, pids=10, cpus=0.5
    )
    with pytest.raises(msgspec.ValidationError, match="memory"):
        msgspec.json.decode(b'{"memory": 64}', type=SandboxPolicy)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"pids": 0}', type=SandboxPolicy)


def test_state_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        plan(tmp_path / "nope")


def test_plan_has_no_side_effects(tmp_path: Path, state: Path) -> None:
    before = sorted(os.listdir(tmp_path))
    plan(state, policy=SandboxPolicy(memory_mb=64), cgroup=backend_cgroup(CGROUP_V2))
    assert sorted(os.listdir(tmp_path)) == before


def test_launcher_options_round_trip() -> None:
    spec = Spec()
    spec.cgroup_procs = ["/sys/fs/cgroup/x/cgroup.procs"]
    spec.rlimits = [("RLIMIT_CORE", 0, 0), ("RLIMIT_NOFILE", 1024, 4096)]
    spec.run_as = (65534, 65533)
    spec.landlock_abi, spec.filesystem, spec.scope, spec.deny_tcp = 6, False, True, True
    spec.read, spec.write, spec.own, spec.hidden, spec.own_proc = ["/usr"], ["/tmp"], ["/s"], ["/etc/x"], True
    parsed, program = parse([*spec.to_args(), "--", "/bin/prog", "--", "-x"])
    assert vars(parsed) == vars(spec) and program == ["/bin/prog", "--", "-x"]
    with pytest.raises(ValueError, match="unknown option"):
        parse(["--bogus", "--", "x"])
    with pytest.raises(ValueError, match="no program"):
        parse(["--scope", "--"])


# --- cgroup and Landlock helpers, on fake trees -------------------------------------------------------------------


def test_cgroup_v2_instance_and_backend_on_a_fake_tree(tmp_path: Path) -> None:
    """The v2 sequence that this host (v1) cannot run for real: evacuate to a leaf, hand controllers down, limit."""
    base = tmp_path / "service"
    base.mkdir()
    (base / "cgroup.procs").write_text("4242\n")
    (base / "cgroup.subtree_control").write_text("")
    host = CgroupHost(2, ((str(base), frozenset({"memory", "pids", "cpu"})),))
    instance = InstanceCgroup(host, "mcp.1.2")
    for level in (base / "mcp-supervisor", base / "mcp-supervisor" / "mcp.1.2"):
        level.mkdir()
        (level / "cgroup.subtree_control").write_text("")  # the kernel makes these files; a fake tree cannot
    instance.create()
    assert (base / "supervisor" / "cgroup.procs").read_text() == "4242"  # moved out of the base first
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (base / "mcp-supervisor" / "mcp.1.2" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    backend = instance.backend("my server/1", 3)
    assert backend.name.startswith("my_server_1~") and backend.name.endswith("-3")
    (Path(backend.dirs[0])).mkdir()
    (Path(backend.dirs[0]) / "memory.swap.max").write_text("max")
    backend.create(CgroupLimits(memory_bytes=64 << 20, pids=32, cpus=0.5))
    leaf = Path(backend.dirs[0])
    assert (leaf / "memory.max").read_text() == str(64 << 20) and (leaf / "memory.swap.max").read_text() == "0"
    assert (leaf / "pids.max").read_text() == "32" and (leaf / "cpu.max").read_text() == "50000 100000"


def test_cgroup_v1_limits_on_a_fake_tree(tmp_path: Path) -> None:
    bases = []
    for controller in ("memory", "pids", "cpu"):
        (tmp_path / controller).mkdir()
        bases.append((str(tmp_path / controller), frozenset({controller})))
    host = CgroupHost(1, tuple(bases))
    instance = InstanceCgroup(host, "mcp.1.2")
    instance.create()
    backend = instance.backend("b", 1)
    memory_dir = Path(backend.dirs[0])
    memory_dir.mkdir()
    (memory_dir / "memory.memsw.limit_in_bytes").write_text("")
    backend.create(CgroupLimits(memory_bytes=1 << 20, pids=5, cpus=2))
    assert (memory_dir / "memory.limit_in_bytes").read_text() == (
        memory_dir / "memory.memsw.limit_in_bytes"
    ).read_text()
    assert (Path(backend.dirs[1]) / "pids.max").read_text() == "5"
    assert (Path(backend.dirs[2]) / "cpu.cfs_quota_us").read_text() == "200000"


def test_landlock_expansion_subtracts_hidden_paths_through_symlinks(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "secret").mkdir(parents=True)
    (tree / "a" / "ok").mkdir()
    (tree / "b").mkdir()
    (tree / "file").write_text("")
    (tree / "alias").symlink_to(tree / "a")  # leads to the tree holding the hidden dir: must not grant it
    granted = expand_allowed([str(tree)], [str(tree / "a" / "secret")])
    assert sorted(granted) == sorted([str(tree / "a" / "ok"), str(tree / "b"), str(tree / "file")])
    assert expand_allowed([str(tree / "a" / "secret")], [str(tree / "a")]) == []
    assert expand_allowed([str(tree / "b")], [str(tree / "a")]) == [str(tree / "b")]


def test_cgroup_base_is_found_from_inside_our_own_tree() -> None:
    from mcp_supervisor.system.cgroups import _join

    assert _join("/sys/fs/cgroup", "/", "/system.slice/mcp.service") == "/sys/fs/cgroup/system.slice/mcp.service"
    inside = "/system.slice/mcp.service/mcp-supervisor/mcp.1.2/supervisor"
    assert _join("/sys/fs/cgroup", "/", inside) == "/sys/fs/cgroup/system.slice/mcp.service"
    assert _join("/sys/fs/cgroup/pids", "/", "/mcp-supervisor/x.1.2/supervisor") == "/sys/fs/cgroup/pids"
    assert _join("/sys/fs/cgroup/memory", "/docker/abc", "/docker/abc/app") == "/sys/fs/cgroup/memory/app"
