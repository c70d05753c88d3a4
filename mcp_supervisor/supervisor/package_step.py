"""The step before an npx or uvx backend's worker starts: its package from the shared cache (package_cache.py),
fetched if needed by the sandboxed installer, and its own copy of it. Run as a task off the supervisor's loop;
the fetch and the copy are helper processes (helpers.py) the supervisor reaps like its workers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.supervisor.backend_launch import BackendLauncher, stdio_environment
from mcp_supervisor.supervisor.helpers import HelperProcesses
from mcp_supervisor.supervisor.package_cache import Installer, PackageCache
from mcp_supervisor.supervisor.package_specs import PackageRequest, recognise
from mcp_supervisor.system import run_planned


class PackageStep:
    def __init__(self, settings: Settings, helpers: HelperProcesses) -> None:
        self.helpers = helpers
        self.cache = PackageCache(settings.state_dir, self._run, settings.package_fetch_timeout_s)

    @staticmethod
    def request(entry: ServerEntry) -> PackageRequest | None:
        """The package a stdio backend runs with npx or uvx, or None: it starts as it always did."""
        return recognise(entry, stdio_environment(entry)) if entry.type == "stdio" else None

    async def prepare(
        self,
        launcher: BackendLauncher,
        entry: ServerEntry,
        servers: Mapping[str, ServerEntry],
        request: PackageRequest,
    ) -> dict[str, str]:
        """The variables the backend starts with. Raises PackageFetchError, SandboxUnavailable or OSError."""
        home = launcher.state_dir(entry)
        owner = launcher.run_as(entry)
        installer = self._installer(launcher, entry, servers) if entry.sandbox.network else None
        return await self.cache.prepare(request, home, installer, owner)

    def _installer(
        self, launcher: BackendLauncher, entry: ServerEntry, servers: Mapping[str, ServerEntry]
    ) -> Installer:
        async def install(argv: list[str], env: dict[str, str], home: Path) -> tuple[int | None, str]:
            plan = launcher.plan_installer(entry, servers, argv, env, home)
            # A plan with a network of its own is wired by a process of its own (system/run_planned.py).
            planned = run_planned.command(plan.argv, plan.network) if plan.network is not None else plan.argv
            return await self.helpers.run(planned, plan.env, plan.cwd, self.cache.fetch_timeout_s)

        return install

    async def _run(self, argv: list[str], env: dict[str, str], timeout_s: float) -> tuple[int | None, str]:
        return await self.helpers.run(argv, env, None, timeout_s)
