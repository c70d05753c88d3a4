"""The sandbox against real attacks, with real processes under real bubblewrap, Landlock and cgroups.

Each attack is first run unsandboxed (mode "off") and must succeed there, so that a test would notice an attack
that is simply broken; then it runs under the sandbox and must fail. Every process a test starts is killed at
teardown; every wait is a bounded poll.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from mcp_supervisor.system.cgroups import BackendCgroup, CgroupHost, CgroupLimits, InstanceCgroup
from mcp_supervisor.system.probe import HostCapabilities, probe_host
from mcp_supervisor.system.sandbox import SandboxMode, SandboxPlan, SandboxPolicy, plan_sandbox

T = TypeVar("T")
# Without slirp4netns: the default network falls back to the host's, which plain `subprocess` can run (a backend's
# own namespace is wired up by the worker while bwrap waits: tests/e2e/test_network_wall.py covers it).
HOST = dataclasses.replace(probe_host(), slirp4netns="", slirp_problem="left out by the test")
needs_bwrap = pytest.mark.skipif(HOST.bwrap is None, reason=f"no usable bubblewrap: {HOST.bwrap_problem}")
needs_cgroup = pytest.mark.skipif(HOST.cgroup is None, reason=f"no usable cgroups: {HOST.cgroup_problem}")
needs_landlock = pytest.mark.skipif(HOST.landlock_abi < 1, reason="Landlock is not available on this kernel")
PY = sys.executable


def wait_until(predicate: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def pids_with(token: str) -> set[int]:
    """Host pids of `sleep <token>` exactly (found through /proc: independent of cgroups and namespaces)."""
    wanted = b"sleep\0" + token.encode() + b"\0"
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/cmdline").read_bytes() == wanted:
                    found.add(int(entry))
    return found


def kill_pids(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclasses.dataclass
class Env:
    tmp: Path
    state: Path
    config: Path  # a "config dir" with a secret, inside a readable tree (readPaths)
    app: Path  # that readable tree
    instance: InstanceCgroup | None
    started: list[subprocess.Popen[str]] = dataclasses.field(default_factory=list)
    plans: list[SandboxPlan] = dataclasses.field(default_factory=list)
    generation: int = 0

    def plan(
        self,
        argv: list[str],
        *,
        mode: SandboxMode = "auto",
        policy: SandboxPolicy | None = None,
        host: HostCapabilities = HOST,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        hidden: tuple[str, ...] = (),
    ) -> SandboxPlan:
        self.generation += 1
        cgroup = self.instance.backend("attacker", self.generation) if self.instance is not None else None
        result = plan_sandbox(
            argv[0],
            argv[1:],
            cwd,
            dict(os.environ if env is None else env),
            policy or SandboxPolicy(read_paths=(str(self.app),)),
            mode,
            host,
            state_dir=str(self.state),
            hidden_paths=[str(self.config), *hidden],
            cgroup=cgroup,
            name="attacker",
        )
        result.prepare()
        self.plans.append(result)
        return result

    def run(self, argv: list[str], timeout: float = 60.0, **kwargs: object) -> subprocess.CompletedProcess[str]:
        plan = self.plan(argv, **kwargs)  # type: ignore[arg-type]
        return subprocess.run(
            plan.argv, env=plan.env, cwd=plan.cwd, capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self, argv: list[str], **kwargs: object) -> subprocess.Popen[str]:
        plan = self.plan(argv, **kwargs)  # type: ignore[arg-type]
        process = subprocess.Popen(
            plan.argv, env=plan.env, cwd=plan.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.started.append(process)
        return process


@pytest.fixture
def sbx(tmp_path: Path) -> Iterator[Env]:
    state = tmp_path / "state" / "attacker"
    state.mkdir(parents=True)
    app = tmp_path / "app"
    config = app / "config"
    config.mkdir(parents=True)
    (config / "secret.json").write_text("TOPSECRET")
    (app / "public.txt").write_text("public")
    instance = None
    if HOST.cgroup is not None:
        instance = InstanceCgroup.current(HOST.cgroup, label=f"pytest-{uuid.uuid4().hex[:6]}")
        instance.create()
    env = Env(tmp_path, state, config, app, instance)
    try:
        yield env
    finally:
        for process in env.started:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=10)
        for plan in env.plans:
            plan.cleanup()
        if instance is not None:
            instance.sweep()


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


# --- filesystem -------------------------------------------------------------------------------------------------


@needs_bwrap
def test_hidden_config_dir_is_invisible_even_inside_a_readable_tree(sbx: Env) -> None:
    attack = py(
        f"""
        import os
        print(sorted(os.listdir({str(sbx.config)!r})))
        print(open({str(sbx.config / "secret.json")!r}).read())
        """
    )
    off = sbx.run(attack, mode="off")
    assert off.returncode == 0 and "TOPSECRET" in off.stdout
    on = sbx.run(attack)
    assert on.returncode != 0 and "TOPSECRET" not in on.stdout, on.stderr
    assert on.stdout.startswith("[]") and "FileNotFoundError" in on.stderr  # an empty dir, not a denial
    sibling = sbx.run(py(f"print(open({str(sbx.app / 'public.txt')!r}).read())"))
    assert sibling.stdout.strip() == "public"  # the rest of the tree stays readable


@needs_bwrap
def test_hidden_dir_stays_hidden_through_a_symlinked_grant(sbx: Env) -> None:
    alias = sbx.tmp / "current"
    alias.symlink_to(sbx.app)
    attack = py(f"print(open({str(alias / 'config' / 'secret.json')!r}).read())")
    granted = SandboxPolicy(read_paths=(str(alias),))
    assert "TOPSECRET" in sbx.run(attack, mode="off").stdout
    on = sbx.run(attack, policy=granted)
    assert on.returncode != 0 and "TOPSECRET" not in on.stdout and "FileNotFoundError" in on.stderr
    assert sbx.run(py(f"print(open({str(alias / 'public.txt')!r}).read())"), policy=granted).stdout.strip() == "public"


@needs_bwrap
def test_root_only_host_secrets_are_masked(sbx: Env) -> None:
    attack = py("print(len(open('/etc/shadow').read()))")
    off = sbx.run(attack, mode="off")
    if os.geteuid() != 0:
        pytest.skip("only root can read /etc/shadow unsandboxed")
    assert off.returncode == 0 and int(off.stdout) > 0
    on = sbx.run(attack)
    # /dev/null is bound over the file, on a nodev mount: opening it is refused (or reads nothing).
    assert (on.returncode != 0 and "PermissionError" in on.stderr) or on.stdout.strip() == "0", on.stderr


@needs_bwrap
def test_other_backends_state_is_invisible_own_state_is_writable(sbx: Env) -> None:
    """As in the product: the directory of every backend's state is hidden, the backend's own one is mounted."""
    other = sbx.state.parent / "victim"
    other.mkdir()
    (other / "token").write_text("VICTIM-TOKEN")
    attack = py(
        f"""
        import os
        open(os.path.join(os.environ["HOME"], "mine"), "w").write("x")
        print(sorted(os.listdir({str(sbx.state.parent)!r})))
        print(open({str(other / "token")!r}).read())
        """
    )
    off = sbx.run(attack, mode="off")
    assert "VICTIM-TOKEN" in off.stdout and "victim" in off.stdout
    everything = SandboxPolicy(read_paths=(str(sbx.tmp),))  # the whole test tree readable, state root included
    on = sbx.run(attack, policy=everything, hidden=(str(sbx.state.parent),))
    assert "VICTIM-TOKEN" not in on.stdout and on.returncode != 0
    assert on.stdout.splitlines()[0] == "['attacker']", on.stderr  # only the own state dir's mount point
    assert (sbx.state / "mine").exists()


@needs_bwrap
def test_writes_outside_home_and_tmp_fail_and_inside_succeed(sbx: Env) -> None:
    target = sbx.app / "planted.txt"
    attack = py(f"open({str(target)!r}, 'w').write('x'); print('wrote')")
    off = sbx.run(attack, mode="off")
    assert off.returncode == 0 and target.read_text() == "x"
    target.unlink()
    on = sbx.run(attack)
    assert on.returncode != 0 and "Read-only file system" in on.stderr and not target.exists()
    for path in ("/etc/planted", "/usr/planted", "/planted"):
        denied = sbx.run(py(f"open({path!r}, 'w')"))
        assert denied.returncode != 0, path
    ok = sbx.run(
        py(
            """
            import os, tempfile
            home = os.environ["HOME"]
            open(os.path.join(home, "state.json"), "w").write("{}")
            with tempfile.NamedTemporaryFile(dir="/tmp") as handle:
                handle.write(b"scratch")
            open("/tmp/left-behind", "w").write("x")
            print(home, os.getcwd())
            """
        )
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [str(sbx.state), str(sbx.state)]
    assert (sbx.state / "state.json").exists()
    assert not Path("/tmp/left-behind").exists()  # the sandbox's /tmp was private


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0 or HOST.bwrap is None or not HOST.bwrap.userns, reason="needs root and userns")
def test_run_as_drops_root_so_root_only_files_stay_closed(sbx: Env) -> None:
    """As uid 0 a backend owns every root-owned file it can see; run_as makes the mode bits count again."""
    base = Path(f"/tmp/sbx-run-as-{uuid.uuid4().hex[:8]}")  # not under pytest's 0700 tmp: uid 65534 must reach it
    try:
        (base / "state").mkdir(parents=True)
        os.chown(base / "state", 65534, 65534)
        (base / "data").mkdir()
        (base / "data" / "root-only").write_text("ROOT-ONLY")
        os.chmod(base / "data" / "root-only", 0o600)
        code = f"import os; print(os.getuid()); print(open({str(base / 'data' / 'root-only')!r}).read())"
        argv = ["/usr/bin/python3", "-c", code]
        policy = SandboxPolicy(read_paths=(str(base / "data"),))

        def run(run_as: tuple[int, int] | None) -> subprocess.CompletedProcess[str]:
            plan = plan_sandbox(
                argv[0], argv[1:], None, dict(os.environ), policy, "auto", HOST,
                state_dir=str(base / "state"), hidden_paths=[], run_as=run_as,
            )  # fmt: skip
            return subprocess.run(
                plan.argv, env=plan.env, cwd=plan.cwd, capture_output=True, text=True, timeout=30, check=False
            )

        as_root = run(None)
        assert as_root.returncode == 0 and "ROOT-ONLY" in as_root.stdout, as_root.stderr  # the gap, as reported
        dropped = run((65534, 65534))
        assert dropped.stdout.splitlines()[:1] == ["65534"], dropped.stderr
        assert dropped.returncode != 0 and "ROOT-ONLY" not in dropped.stdout and "PermissionError" in dropped.stderr
    finally:
        for path in (base / "data" / "root-only", base / "data", base / "state"):
            with contextlib.suppress(OSError):
                path.unlink() if path.is_file() else path.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


# --- processes --------------------------------------------------------------------------------------------------


@pytest.fixture
def victim() -> Iterator[int]:
    marker = f"{900 + uuid.uuid4().int % 99}.{uuid.uuid4().int % 10**6}"
    process = subprocess.Popen(["sleep", marker], env={**os.environ, "VICTIM_SECRET": "s3cr3t-env"})
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=10)


@needs_bwrap
def test_other_processes_are_invisible(sbx: Env, victim: int) -> None:
    attack = py(
        f"""
        import os
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        print({victim} in pids, len(pids))
        print(open("/proc/{victim}/environ").read())
        """
    )
    off = sbx.run(attack, mode="off")
    assert off.returncode == 0 and off.stdout.startswith("True") and "s3cr3t-env" in off.stdout
    on = sbx.run(attack)
    assert "s3cr3t-env" not in on.stdout and on.returncode != 0
    listed, count = on.stdout.split()[:2]
    assert listed == "False" and int(count) <= 3  # bwrap's pid 1, the launcher-exec'd python, nothing else
    kill = sbx.run(py(f"import os; os.kill({victim}, 0)"))
    assert kill.returncode != 0 and "ProcessLookupError" in kill.stderr


@needs_bwrap
def test_daemonized_helpers_die_with_the_sandbox_root(sbx: Env) -> None:
    """setsid, a double fork and `env -i` all escape a process group; none escapes the pid namespace."""
    token = f"{800 + uuid.uuid4().int % 99}.{uuid.uuid4().int % 10**6}"
    script = textwrap.dedent(
        f"""
        setsid sleep {token}1 < /dev/null > /dev/null 2>&1 &
        env -i /bin/sh -c 'sleep {token}2 < /dev/null > /dev/null 2>&1 &'
        python3 -c "import os
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execvp('sleep', ['sleep', '{token}3'])
            os._exit(0)
        os.wait()"
        echo started
        exec sleep {token}0
        """
    )
    helpers = [f"{token}1", f"{token}2", f"{token}3"]

    def all_helpers() -> set[int]:
        """Every helper's pid once all three are running, else nothing."""
        found = [pids_with(h) for h in helpers]
        return set().union(*found) if all(found) else set()

    def any_helper() -> set[int]:
        return set().union(*(pids_with(h) for h in helpers))

    off = sbx.start(["/bin/sh", "-c", script], mode="off")
    try:
        escaped = wait_until(all_helpers, 10, "the unsandboxed helpers")
        off.kill()
        off.wait(timeout=10)
        time.sleep(0.3)  # give a (wrong) cascade a chance to happen before asserting survival
        assert any_helper() == escaped  # the attack works without the sandbox: helpers outlive their root
    finally:
        kill_pids(any_helper())

    on = sbx.start(["/bin/sh", "-c", script])
    wait_until(all_helpers, 10, "the sandboxed helpers")
    on.kill()  # SIGKILL to what the worker holds: the outer bwrap
    on.wait(timeout=10)
    wait_until(lambda: not any_helper() and not pids_with(f"{token}0"), 5, "every sandboxed helper to die")


@needs_bwrap
def test_graceful_stop_reaches_the_backend_inside(sbx: Env) -> None:
    process = sbx.start(["/bin/sh", "-c", "trap 'echo got-TERM; exit 0' TERM; echo ready; sleep 300 & wait"])
    plan = sbx.plans[-1]
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    targets = wait_until(lambda: plan.stop_targets(process.pid), 5, "the backend's pid inside the sandbox")
    for pid in targets:
        os.kill(pid, signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0 and out.strip() == "got-TERM"


@needs_bwrap
def test_helpers_die_when_the_backend_exits_on_its_own(sbx: Env) -> None:
    token = f"{700 + uuid.uuid4().int % 99}.{uuid.uuid4().int % 10**6}"
    script = f"setsid sleep {token} < /dev/null > /dev/null 2>&1 & sleep 0.5; exit 3"
    done = sbx.run(["/bin/sh", "-c", script])
    assert done.returncode == 3  # the backend's own status comes through bwrap
    wait_until(lambda: not pids_with(token), 5, "the helper to die with its namespace")


# --- network ----------------------------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def connect_attack(port: int) -> list[str]:
    return py(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5).close(); print('connected')")


@needs_bwrap
def test_network_false_blocks_loopback_tcp(sbx: Env, listener: int) -> None:
    attack = connect_attack(listener)
    off = sbx.run(attack, mode="off")
    assert off.stdout.strip() == "connected", off.stderr
    shared = sbx.run(attack)
    assert shared.stdout.strip() == "connected", shared.stderr  # default: the network is on
    on = sbx.run(attack, policy=SandboxPolicy(network=False))
    assert on.returncode != 0 and "connected" not in on.stdout
    assert "Network is unreachable" in on.stderr or "Connection refused" in on.stderr, on.stderr


@needs_bwrap
@pytest.mark.skipif(HOST.landlock_abi < 6, reason="Landlock ABI < 6 has no abstract unix socket scope")
def test_shared_network_still_blocks_host_abstract_unix_sockets(sbx: Env) -> None:
    name = f"mcp-sbx-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX)
    server.bind("\0" + name)
    server.listen(4)
    try:
        attack = py(f"import socket; s = socket.socket(socket.AF_UNIX); s.connect('\\0{name}'); print('connected')")
        assert sbx.run(attack, mode="off").stdout.strip() == "connected"
        on = sbx.run(attack)
        assert on.returncode != 0 and "PermissionError" in on.stderr, on.stderr
    finally:
        server.close()


# --- limits -----------------------------------------------------------------------------------------------------

FORK_BOMB = """
import os, sys
target = int(sys.argv[1])
read_end, write_end = os.pipe()
children = 0
while children < target:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.close(write_end)
        os.read(read_end, 1)  # parked until the parent closes the pipe
        os._exit(0)
    children += 1
print(children, flush=True)
os.close(write_end)
for _ in range(children):
    os.wait()
"""


@needs_bwrap
@needs_cgroup
@pytest.mark.skipif(HOST.cgroup is not None and "pids" not in HOST.cgroup.controllers, reason="no pids controller")
def test_pids_limit_stops_a_fork_bomb(sbx: Env) -> None:
    off = sbx.run([PY, "-c", FORK_BOMB, "200"], mode="off")
    assert off.returncode == 0 and int(off.stdout) == 200  # forking works without a limit
    on = sbx.run([PY, "-c", FORK_BOMB, "10000"], policy=SandboxPolicy(pids=64), timeout=120)
    assert on.returncode == 0, on.stderr
    assert 0 < int(on.stdout) < 64


@needs_bwrap
@needs_cgroup
@pytest.mark.skipif(HOST.cgroup is not None and "memory" not in HOST.cgroup.controllers, reason="no memory controller")
def test_memory_limit_stops_a_large_allocation(sbx: Env) -> None:
    attack = py("block = b'x' * (256 << 20); print('allocated', len(block) >> 20)")
    off = sbx.run(attack, mode="off")
    assert off.stdout.strip() == "allocated 256", off.stderr
    on = sbx.run(attack, policy=SandboxPolicy(memory_mb=64))
    assert "allocated" not in on.stdout
    assert on.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL) or "MemoryError" in on.stderr, (
        on.returncode,
        on.stderr,
    )


@needs_bwrap
@needs_cgroup
def test_cgroup_tracks_and_kills_what_escaped_the_session(sbx: Env) -> None:
    assert sbx.instance is not None
    token = f"{600 + uuid.uuid4().int % 99}.{uuid.uuid4().int % 10**6}"
    process = sbx.start(["/bin/sh", "-c", f"setsid sleep {token} & exec sleep {token}0"], policy=SandboxPolicy())
    plan = sbx.plans[-1]
    assert plan.cgroup is not None
    cgroup = plan.cgroup
    wait_until(lambda: pids_with(token) and pids_with(token) <= cgroup.pids(), 10, "the helper inside the cgroup")
    assert cgroup.kill_all() >= 2
    wait_until(lambda: not pids_with(token), 5, "everything in the cgroup to die")
    process.wait(timeout=10)


# --- what must keep working ---------------------------------------------------------------------------------------


@needs_bwrap
def test_backend_reads_its_command_script_and_args(sbx: Env) -> None:
    project = sbx.tmp / "srv" / "y"
    (project / "lib").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (project / "lib" / "helper.py").write_text("VALUE = 42\n")
    (project / "server.py").write_text(
        "import sys, json\nsys.path.insert(0, __file__.rsplit('/', 1)[0] + '/lib')\nimport helper\n"
        "print(helper.VALUE, open(sys.argv[1]).read().strip(), len(open('/etc/resolv.conf').read()) >= 0)\n"
    )
    data = sbx.tmp / "data"
    data.mkdir()
    (data / "input.txt").write_text("hello")
    done = sbx.run([PY, str(project / "server.py"), str(data / "input.txt")])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["42", "hello", "True"]


@needs_bwrap
def test_node_runs_a_script_from_a_node_modules_tree(sbx: Env) -> None:
    node = "/usr/bin/node"
    if not os.path.exists(node):
        pytest.skip("node is not installed at /usr/bin/node")
    package = sbx.tmp / "x"
    (package / "node_modules" / "dep").mkdir(parents=True)
    (package / "node_modules" / "dep" / "index.js").write_text("module.exports = 'dep ok';\n")
    (package / "dist").mkdir()
    (package / "dist" / "index.js").write_text(
        "const fs = require('fs'); const os = require('os');\n"
        "fs.writeFileSync(os.homedir() + '/n.txt', 'x');\n"
        "console.log(require('dep'), os.homedir() === process.env.HOME, os.cpus().length > 0);\n"
    )
    done = sbx.run([node, str(package / "dist" / "index.js")])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["dep", "ok", "true", "true"]


@needs_bwrap
def test_exit_status_and_stdio_pass_through(sbx: Env) -> None:
    plan = sbx.plan(py("import sys; line = sys.stdin.readline(); print(line.upper(), end=''); sys.exit(7)"))
    done = subprocess.run(
        plan.argv, env=plan.env, cwd=plan.cwd, input="ping\n", capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 7 and done.stdout == "PING\n"


# --- Landlock alone (bwrap unusable) ----------------------------------------------------------------------------


@needs_landlock
def test_landlock_only_hides_config_blocks_writes_and_other_environ(sbx: Env, victim: int) -> None:
    host = dataclasses.replace(HOST, bwrap=None, bwrap_problem="bwrap disabled for this test")
    read_secret = py(f"print(open({str(sbx.config / 'secret.json')!r}).read())")
    assert "TOPSECRET" in sbx.run(read_secret, mode="off").stdout
    on = sbx.run(read_secret, host=host)
    assert on.returncode != 0 and "PermissionError" in on.stderr and "TOPSECRET" not in on.stdout
    assert sbx.run(py(f"print(open({str(sbx.app / 'public.txt')!r}).read())"), host=host).stdout.strip() == "public"
    write = sbx.run(py(f"open({str(sbx.app / 'planted')!r}, 'w')"), host=host)
    assert write.returncode != 0 and "PermissionError" in write.stderr
    home = sbx.run(py("import os; open(os.environ['HOME'] + '/ok', 'w').write('x'); print('ok')"), host=host)
    assert home.stdout.strip() == "ok", home.stderr
    environ = py(f"print(open('/proc/{victim}/environ').read())")
    assert "s3cr3t-env" in sbx.run(environ, mode="off").stdout
    denied = sbx.run(environ, host=host)
    assert denied.returncode != 0 and "s3cr3t-env" not in denied.stdout
    if host.landlock_abi >= 6:
        signal_attack = sbx.run(py(f"import os; os.kill({victim}, 0)"), host=host)
        assert signal_attack.returncode != 0 and "PermissionError" in signal_attack.stderr


# --- cgroup bookkeeping -----------------------------------------------------------------------------------------


@needs_cgroup
def test_stale_instance_is_swept_and_live_ones_are_not(tmp_path: Path) -> None:
    """After a kill -9 of the supervisor, the next start kills the survivors of the dead instance only."""
    assert HOST.cgroup is not None
    label = f"pytest-{uuid.uuid4().hex[:6]}"
    live = InstanceCgroup.current(HOST.cgroup, label=label)
    dead = InstanceCgroup(HOST.cgroup, f"{label}.999999999.1")  # no such pid: its owner is gone
    token = f"{500 + uuid.uuid4().int % 99}.{uuid.uuid4().int % 10**6}"
    started: list[subprocess.Popen[bytes]] = []
    try:
        cgroups = []
        for instance, suffix in ((live, "1"), (dead, "2")):
            instance.create()
            cgroup = instance.backend("b", 1)
            cgroup.create(CgroupLimits())
            cgroups.append(cgroup)
            started.append(
                subprocess.Popen([*_joining(cgroup), "/bin/sh", "-c", f"env -i setsid sleep {token}{suffix} & wait"])
            )
        wait_until(lambda: all(len(c.pids()) == 2 for c in cgroups), 10, "both instances' shell and sleep")
        stale = InstanceCgroup.stale(HOST.cgroup, label)
        assert [s.instance_id for s in stale] == [dead.instance_id]
        assert stale[0].sweep() >= 2  # the shell and its setsid'd sleep
        wait_until(lambda: not pids_with(f"{token}2"), 5, "the dead instance's survivors to die")
        assert pids_with(f"{token}1")  # the live instance is untouched
        assert not any(os.path.exists(d) for d in dead.dirs)
    finally:
        live.sweep()
        dead.sweep()
        for process in started:
            process.wait(timeout=10)


def _joining(cgroup: BackendCgroup) -> list[str]:
    """The launcher, told only to join this cgroup before it execs."""
    return [HOST.python, "-I", "-S", HOST.launcher, *(a for f in cgroup.procs_files() for a in ("--cgroup", f)), "--"]


def _unified_v2() -> str | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].startswith("cgroup2 "):
            point = fields[0].split()[4]
            if os.access(point, os.W_OK) and Path("/proc/self/cgroup").read_text().count("\n") > 1:
                return point  # hybrid host: a v2 tree next to the v1 controllers, ours to test cgroup.kill on
    return None


@pytest.mark.skipif(_unified_v2() is None, reason="no separate writable cgroup v2 hierarchy (hybrid hosts only)")
def test_cgroup_v2_kill_on_a_hybrid_host() -> None:
    point = _unified_v2()
    assert point is not None
    own = next(
        line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")
    )
    host = CgroupHost(2, ((os.path.normpath(point + own), frozenset()),))
    instance = InstanceCgroup.current(host, label=f"pytest-v2-{uuid.uuid4().hex[:6]}")
    token = f"{400 + uuid.uuid4().int % 99}.{uuid.uuid4().int % 10**6}"
    try:
        instance.create()
        cgroup = instance.backend("b", 1)
        cgroup.create(CgroupLimits())
        process = subprocess.Popen([*_joining(cgroup), "/bin/sh", "-c", f"setsid sleep {token} & exec sleep {token}0"])
        wait_until(lambda: len(cgroup.pids()) == 2, 10, "both processes in the v2 cgroup")
        assert os.path.exists(os.path.join(cgroup.dirs[0], "cgroup.kill"))
        assert cgroup.kill_all() == 2
        process.wait(timeout=10)
        wait_until(lambda: not pids_with(token), 5, "cgroup.kill to finish")
    finally:
        instance.sweep()
