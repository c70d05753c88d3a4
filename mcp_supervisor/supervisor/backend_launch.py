"""How each stdio backend is started: its environment, its sandbox, its cgroup. Decided here, in the supervisor,
which alone knows every path a backend must not see; the worker only execs the resulting `Launch`.

Per generation of a stdio backend:
- the environment: the proxy's, minus the gateway's secrets and the tree's own variables, with the server's
  `env` over it (mcp-proxy-server's rule), and our venv's bin last on PATH;
- a state directory of its own, `<state dir>/<key>`, which is its HOME;
- the hidden paths: the config dir, the runtime dir, the log dir, the state dir of every backend (its own is
  mounted back), and every path granted to another backend (its command's directory, its args paths, cwd,
  installDirectory, readPaths, writePaths) unless this one is granted it too;
- the sandbox plan (`system/sandbox.py`), and a cgroup `<instance>/<key>-<generation>` the backend joins
  before it execs (limits, and a tracker that `setsid` and `env -i` cannot leave).
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import msgspec

from mcp_supervisor.config.models import ServerEntry, oauth_secret_names
from mcp_supervisor.config.settings import Settings, without_gateway_secrets
from mcp_supervisor.protocol.messages import SandboxReport
from mcp_supervisor.protocol.spawn import Launch
from mcp_supervisor.system.cgroups import BackendCgroup, InstanceCgroup
from mcp_supervisor.system.exposure import exposure, measures_of
from mcp_supervisor.system.sandbox import (
    SandboxMode,
    SandboxPlan,
    SandboxUnavailable,
    backend_grants,
    plan_sandbox,
    probe_host,
)
from mcp_supervisor.system.sandbox_policy import SandboxPolicy, resolve_run_as

log = logging.getLogger("mcp_supervisor.supervisor")
_GRANTS_CACHE_SIZE = 4096

# The gateway's own configuration, which tells a backend where the front door is and how it is guarded (the CLI
# even sets PORT and HOST for the tree): not a backend's business. A server's own `env` may still set any of them.
GATEWAY_ONLY_ENV = frozenset(
    {
        "PORT",
        "HOST",
        "ALLOWED_HOSTS",
        "ALLOWED_ORIGINS",
        "FORWARDED_ALLOW_IPS",
        "ENABLE_ADMIN_UI",
        "ENABLE_WEB_TERMINAL",
        "ADMIN_USERNAME",
        "AUDIT_LOG",
        "AUDIT_ARGUMENTS",
        "OAUTH_ISSUER",
        "OAUTH_RESOURCE",
        "OAUTH_INTROSPECTION_URL",
        "OAUTH_CLIENT_ID",
        "OAUTH_REQUIRED_SCOPES",
    }
)


def stdio_environment(
    entry: ServerEntry, base: Mapping[str, str] | None = None, withheld: frozenset[str] = frozenset()
) -> dict[str, str]:
    """mcp-proxy-server merges a server's `env` over the proxy's whole environment (minus the gateway's own secrets and
    settings, and minus `withheld`: the variables that hold remote backends' OAuth client secrets).

    Our own bin directory goes last on PATH, so servers installed next to mcp-supervisor (in its venv) are
    found even when the venv is not activated.
    """
    inherited = without_gateway_secrets(os.environ if base is None else base)
    kept = {name: value for name, value in inherited.items() if name not in withheld and name not in GATEWAY_ONLY_ENV}
    env = {**kept, **entry.env}
    own_bin = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if own_bin not in path.split(os.pathsep):
        env["PATH"] = f"{path}{os.pathsep}{own_bin}" if path else own_bin
    return env


class BackendLauncher:
    def __init__(self, settings: Settings, runtime_dir: Path, log_dir: Path, instance: InstanceCgroup | None) -> None:
        self._settings = settings
        self._instance = instance
        self._always_hidden = [str(settings.config_dir), str(runtime_dir), str(log_dir), str(settings.state_dir)]
        self.host = probe_host()
        self._grants_cache: dict[bytes, list[str]] = {}

    def state_dir(self, entry: ServerEntry) -> Path:
        """The backend's own state directory (its HOME under a sandbox), created if needed."""
        state_dir = self._settings.state_dir / entry.key
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return state_dir

    def plan(
        self,
        entry: ServerEntry,
        generation: int,
        servers: Mapping[str, ServerEntry],
        extra_env: Mapping[str, str] | None = None,
    ) -> tuple[Launch, SandboxReport, SandboxPlan]:
        """Raises SandboxUnavailable (SANDBOX=required and the host falls short), or OSError for a state
        directory or cgroup the host refuses. `extra_env`: variables set unless the server's `env` sets them
        (the package cache's)."""
        assert entry.command is not None
        mode: SandboxMode = self._settings.sandbox_mode  # type: ignore[assignment]
        state_dir = self.state_dir(entry)
        run_as = self._run_as(entry, state_dir)
        instance = self._instance
        cgroup = instance.backend(entry.key, generation) if instance is not None and self._needs_cgroup(entry) else None
        env = stdio_environment(entry, withheld=oauth_secret_names(servers))
        env |= {name: value for name, value in (extra_env or {}).items() if name not in entry.env}
        plan = plan_sandbox(
            entry.command,
            list(entry.args),
            entry.cwd,
            env,
            _with_roots_readable(entry),
            mode,
            self.host,
            state_dir=str(state_dir),
            hidden_paths=self._always_hidden,
            neighbours=self._neighbours(entry, servers),
            cgroup=cgroup,
            run_as=run_as,
            name=entry.key,
        )
        for warning in plan.warnings:
            log.warning("worker[%s] sandbox: %s", entry.key, warning)
        launch = launch_of(plan)
        report = sandbox_report(mode, plan)
        return launch, report, plan

    def run_as(self, entry: ServerEntry) -> tuple[int, int] | None:
        """The (uid, gid) the backend will run as, if another; SandboxUnavailable as `plan` raises it."""
        return self._run_as(entry, self.state_dir(entry))

    def plan_installer(
        self,
        entry: ServerEntry,
        servers: Mapping[str, ServerEntry],
        argv: list[str],
        env: Mapping[str, str],
        home: Path,
    ) -> SandboxPlan:
        """The sandbox of a package fetch for `entry` (supervisor/package_cache.py): the backend's own network
        policy and hidden paths, nothing writable but `home` (the fetch's staging directory), always sandboxed
        where the host can (SANDBOX=off does not turn off the installer's sandbox), no limits, not `runAs`. Its
        environment holds no secret: the proxy's minus the gateway's and OAuth's, and of the server's `env`
        only PATH and the tool's own variables (registries), which `env` brings."""
        mode: SandboxMode = "required" if self._settings.sandbox_mode == "required" else "auto"
        kept = {name: value for name, value in entry.env.items() if name == "PATH"}
        base = stdio_environment(msgspec.structs.replace(entry, env=kept), withheld=oauth_secret_names(servers))
        return plan_sandbox(
            argv[0],
            argv[1:],
            None,
            {**base, **env},
            SandboxPolicy(network=entry.sandbox.network),
            mode,
            self.host,
            state_dir=str(home),
            hidden_paths=self._always_hidden,
            neighbours=self._neighbours(entry, servers),
            name=f"{entry.key} (package fetch)",
        )

    def _run_as(self, entry: ServerEntry, state_dir: Path) -> tuple[int, int] | None:
        """The uid and gid of `sandbox.runAs`, whose HOME (the state dir) is then theirs; None without one, or
        when the backend is not sandboxed (the uid drop is a step of the sandbox's launch)."""
        if entry.sandbox.run_as is None or not entry.sandbox.enabled or self._settings.sandbox_mode == "off":
            return None
        uid, gid = resolve_run_as(entry.sandbox.run_as, entry.key)
        if os.geteuid() == 0:
            os.chown(state_dir, uid, gid)
        closed = _closed_to(state_dir.parent, uid, gid)
        if closed is not None:
            raise SandboxUnavailable(
                f'The backend {entry.key} was not started: "runAs" uid {uid} cannot reach its HOME {state_dir} '
                f"({closed} is closed to it); set MCP_SUPERVISOR_STATE_DIR to a directory it can reach."
            )
        return uid, gid

    def plan_install(
        self,
        entry: ServerEntry,
        servers: Mapping[str, ServerEntry],
        command: str,
        cwd: str,
        *,
        writable: Sequence[str] = (),
        mounts: Sequence[tuple[str, str]] = (),
    ) -> SandboxPlan:
        """The sandbox one of `entry`'s install commands runs in (`/bin/sh -c command` in `cwd`): the backend's own,
        with its network policy, readPaths and environment, but writable only `writable` or `mounts` (its install
        directory) besides HOME and /tmp. Raises SandboxUnavailable and ValueError as `plan_sandbox` does."""
        state_dir = self._settings.state_dir / entry.key
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        policy = msgspec.structs.replace(_with_roots_readable(entry), write_paths=tuple(writable))
        return plan_sandbox(
            "/bin/sh",
            ["-c", command],
            cwd,
            stdio_environment(entry, withheld=oauth_secret_names(servers)),
            policy,
            self._settings.sandbox_mode,  # type: ignore[arg-type]
            self.host,
            state_dir=str(state_dir),
            hidden_paths=self._always_hidden,
            neighbours=self._neighbours(entry, servers),
            mounts=mounts,
            name=f"{entry.key} (install)",
        )

    def _needs_cgroup(self, entry: ServerEntry) -> bool:
        """A cgroup of its own when the backend has limits, or when no pid namespace will track its tree.
        Creating one costs ~9 ms per start on cgroup v1 hosts, for nothing a bubblewrap pid namespace (whose
        processes all die with it) does not already give."""
        policy = entry.sandbox
        limited = policy.memory_mb is not None or policy.pids is not None or policy.cpus is not None
        bwrap = self.host.bwrap
        pid_namespace = bwrap is not None and (self.host.euid == 0 or bwrap.userns) and policy.enabled
        return limited or not pid_namespace or self._settings.sandbox_mode == "off"

    def _neighbours(self, entry: ServerEntry, servers: Mapping[str, ServerEntry]) -> list[str]:
        """Every path granted to another backend (command directory, args paths, cwd, readPaths, writePaths) and
        its install directory: the planner hides them, except those this backend is granted too."""
        paths: list[str] = []
        for key, other in servers.items():
            if key != entry.key and other.command is not None:
                paths += self._grants_of(other)
        return paths

    def _grants_of(self, entry: ServerEntry) -> list[str]:
        # Cached per entry: every start of every backend asks for all the others' (a few stat and shebang reads).
        cache_key = msgspec.json.encode(entry)
        cached = self._grants_cache.get(cache_key)
        if cached is None:
            assert entry.command is not None
            install = self._settings.tools_folder / (entry.installDirectory or entry.key)
            cached = [
                *backend_grants(
                    entry.command,
                    list(entry.args),
                    entry.cwd,
                    stdio_environment(entry).get("PATH"),
                    _with_roots_readable(entry),
                    str(self._settings.state_dir / entry.key),
                ),
                *([entry.cwd] if entry.cwd else []),
                str(install),
            ]
            if len(self._grants_cache) > _GRANTS_CACHE_SIZE:
                self._grants_cache.clear()
            self._grants_cache[cache_key] = cached
        return cached


def launch_of(plan: SandboxPlan) -> Launch:
    """The `Launch` a worker execs for a plan (the worker runs the stage itself when it can, see spawn)."""
    return Launch(
        argv=tuple(plan.argv),
        env=plan.env,
        cwd=plan.cwd,
        stage=tuple(plan.stage.to_args()) if plan.stage is not None else (),
        program=tuple(plan.program),
        network=plan.network,
    )


def sandbox_report(mode: str, plan: SandboxPlan) -> SandboxReport:
    """What `status` and the admin show of a plan: the per-feature account and its exposure score."""
    measures = measures_of(plan.measures, plan.enforced, plan.not_enforced)
    scored = exposure(measures)
    return SandboxReport(
        mode=mode,
        method=plan.method,
        enforced=dict(plan.enforced),
        not_enforced=dict(plan.not_enforced),
        exposure=scored.score,
        exposure_factors=scored.factors,
        measures=tuple(measures),
    )


def _closed_to(directory: Path, uid: int, gid: int) -> Path | None:
    """The first of `directory` and its ancestors that `uid` may not enter (by the mode bits), or None."""
    for path in (directory, *directory.parents):
        info = path.stat()
        bit = stat.S_IXUSR if info.st_uid == uid else stat.S_IXGRP if info.st_gid == gid else stat.S_IXOTH
        if not info.st_mode & bit:
            return path
    return None


def cleanup_cgroup(cgroup: BackendCgroup | None, label: str) -> None:
    """Kill what a backend generation left in its cgroup (helpers that daemonized, however started) and
    remove the cgroup: only that generation's processes, never another backend's or a newer generation's."""
    if cgroup is None:
        return
    try:
        killed = cgroup.kill_all()
        cgroup.remove()
    except OSError as exc:
        log.warning("%s: could not clean up its cgroup: %s", label, exc)
        return
    if killed:
        log.info("%s: killed %d process(es) left in its cgroup.", label, killed)


def _with_roots_readable(entry: ServerEntry) -> SandboxPolicy:
    """The backend's sandbox policy, with its configured roots readable: they are where it is told to work."""
    paths = tuple(unquote(urlparse(uri).path) for uri in entry.roots)
    if not paths:
        return entry.sandbox
    return msgspec.structs.replace(entry.sandbox, read_paths=(*entry.sandbox.read_paths, *paths))
