"""Install commands run in the sandbox of the backend they install (docs/sandbox.md, "Installs").

The plan is the backend's own (`BackendLauncher.plan_install`, hence `plan_sandbox`): its network policy, its
readPaths, its environment (never the gateway's secrets), its HOME; the config, runtime and log directories and
every other backend's files out of sight; other processes invisible. Writable besides HOME and /tmp: only the
install directory, in one of two ways.

- bubblewrap: the commands run in a staging directory (`.install-<key>-…` in the target's parent) shown in the
  sandbox in place of the target's parent, so they see an empty tools folder where they may create the target as
  they like (`git clone URL <key>`, `mkdir <key>`). When every command succeeded, the target is moved into place
  and the rest is dropped; a failed install leaves nothing behind, so it can be run again.
- Landlock alone: it cannot show a directory elsewhere, so the target is created first, empty, and granted
  writable; it is removed again when the install fails.

With the sandbox off (SANDBOX=off, `"enabled": false`) the commands run as before, in the target's parent.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_supervisor.config.loader import parse_server_entry
from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.errors import ConfigError, SupervisorError
from mcp_supervisor.supervisor.backend_launch import BackendLauncher
from mcp_supervisor.system.sandbox import SandboxPlan

log = logging.getLogger("mcp_supervisor.admin.installs")


class InstallSandboxError(SupervisorError):
    """The install's sandbox could not be planned (SANDBOX=required on a host that falls short, a bad entry)."""


@dataclass
class InstallRun:
    """How to run the commands of one install, and what to do with their result."""

    target: Path
    plan_of: Callable[[str], SandboxPlan]  # command -> the plan that runs it
    staging: Path | None = None  # bwrap: holds what the commands wrote in place of the target's parent
    created: bool = False  # Landlock: the target was created for the commands (removed again on failure)
    method: str = "none"
    _closed: bool = field(default=False, repr=False)

    def commit(self) -> None:
        """Every command succeeded: the target into place, the rest dropped."""
        if self._closed or self.staging is None:
            self._closed = True
            return
        self._closed = True
        try:
            built = self.staging / self.target.name
            if built.is_dir() and not built.is_symlink():
                os.rename(built, self.target)  # OSError (the target appeared meanwhile): the install fails
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def discard(self) -> None:
        """A command failed or the install was cancelled: nothing of it stays."""
        if self._closed:
            return
        self._closed = True
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
        elif self.created:
            shutil.rmtree(self.target, ignore_errors=True)


class InstallSandbox:
    def __init__(
        self,
        settings: Settings,
        runtime_dir: Path,
        log_dir: Path,
        servers: Callable[[], Mapping[str, ServerEntry]],
    ) -> None:
        """`servers`: the configured backends, asked at each install (their files are hidden from it)."""
        self._launcher = BackendLauncher(settings, runtime_dir, log_dir, None)
        self._servers = servers

    def prepare(self, key: str, raw: Mapping[str, Any], target: Path) -> InstallRun:
        """Plan the install of `key` into `target` (which does not exist; its parent does)."""
        try:
            entry = parse_server_entry(key, dict(raw), "the install request")
        except ConfigError as exc:
            raise InstallSandboxError(str(exc)) from None
        servers = self._servers()
        parent = str(target.parent)
        launcher = self._launcher
        try:
            probe = launcher.plan_install(entry, servers, "true", parent)
        except (SupervisorError, OSError) as exc:
            raise InstallSandboxError(str(exc)) from None
        if probe.method == "none":
            return InstallRun(target, lambda command: launcher.plan_install(entry, servers, command, parent))
        if probe.method == "bwrap":
            staging = Path(tempfile.mkdtemp(prefix=f".install-{key}-", dir=parent))
            mounts = [(str(staging), parent)]
            return InstallRun(
                target,
                lambda command: launcher.plan_install(entry, servers, command, parent, mounts=mounts),
                staging=staging,
                method="bwrap",
            )
        target.mkdir(mode=0o755)
        writable = [str(target)]
        return InstallRun(
            target,
            lambda command: launcher.plan_install(entry, servers, command, parent, writable=writable),
            created=True,
            method=probe.method,
        )
