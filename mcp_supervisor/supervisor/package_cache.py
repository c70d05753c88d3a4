"""The shared package cache of npx and uvx backends: fetched once, by a sandboxed installer, copied to each start.

Design: docs/architecture.md, "The package cache".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from mcp_supervisor.errors import SupervisorError
from mcp_supervisor.supervisor.package_specs import PackageRequest
from mcp_supervisor.tasks import BackgroundTasks

log = logging.getLogger("mcp_supervisor.supervisor")

CACHE_DIR_NAME = ".package-cache"  # not a valid server key: no backend's HOME can be it
REFRESH_S = 24 * 3600.0
COPY_TIMEOUT_S = 120.0
# Where each tool's copy goes in a backend's HOME (one level: no intermediate directory to plant a link on).
_COPY_NAME = {"npm": ".npm", "uv": ".uv-cache"}

# (argv, extra environment, staging HOME) -> the fill's exit code (None: timed out) and output.
Installer = Callable[[list[str], dict[str, str], Path], Awaitable[tuple[int | None, str]]]
Runner = Callable[[list[str], dict[str, str], float], Awaitable[tuple[int | None, str]]]


class PackageFetchError(SupervisorError):
    """A package could not be fetched into, or copied from, the shared cache."""


class PackageCache:
    def __init__(self, state_dir: Path, run: Runner, fetch_timeout_s: float) -> None:
        self.root = state_dir / CACHE_DIR_NAME
        self._run = run
        self.fetch_timeout_s = fetch_timeout_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._swept: asyncio.Future[None] | None = None
        self._removals = BackgroundTasks()

    def entry_dir(self, request: PackageRequest) -> Path:
        return self.root / request.tool / request.entry_id

    async def prepare(
        self, request: PackageRequest, home: Path, installer: Installer | None, owner: tuple[int, int] | None
    ) -> dict[str, str]:
        """Fill the shared entry if needed (`installer` None: this backend has no network to fill it with), then
        give `home` its own copy. The variables to start the backend with; {} when there is nothing to copy.
        Raises PackageFetchError."""
        await self._sweep_once()
        entry = self.entry_dir(request)
        lock = self._locks.setdefault(request.entry_id, asyncio.Lock())
        if installer is None:  # one turn, so that a backend of the same start that can fetch takes the lock first
            await asyncio.sleep(0)
        async with lock:  # one fill per entry; the others wait for it
            if installer is not None and self._stale(request, entry):
                await self._fill(request, entry, installer)
        if not _present(entry):
            log.warning("%s is not in the package cache and this backend has no network.", request.describe())
            return {}
        copy = await self._copy(request, entry, home, owner)  # in parallel: an entry is never changed in place
        if request.tool == "npm":
            return {
                "npm_config_cache": str(copy),
                "npm_config_prefer_offline": "true",
                "npm_config_update_notifier": "false",
            }
        return {"UV_CACHE_DIR": str(copy), "UV_OFFLINE": "1"}

    def _stale(self, request: PackageRequest, entry: Path) -> bool:
        try:
            age = time.time() - entry.stat().st_mtime
        except FileNotFoundError:
            return True
        return not request.pinned and age > REFRESH_S

    async def _sweep_once(self) -> None:
        """Fills and copies an earlier supervisor left half done go, once, before any new one starts."""
        if self._swept is None:
            self._swept = asyncio.ensure_future(asyncio.to_thread(_sweep, self.root))
        await asyncio.shield(self._swept)

    def _remove_later(self, path: Path) -> None:
        self._removals.spawn(asyncio.to_thread(shutil.rmtree, path, True))

    def _staging(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / ".tmp"))

    async def _fill(self, request: PackageRequest, entry: Path, installer: Installer) -> None:
        staging = self._staging(f"fill-{request.entry_id}-")
        cache = staging / "cache"
        cache.mkdir()
        env = dict(request.config)  # the registries and tokens the backend would use
        if request.tool == "npm":
            argv = [request.program, "--yes", "--package", request.spec, "--call", "true"]
            env |= {"npm_config_cache": str(cache), "npm_config_update_notifier": "false"}
            env |= {"npm_config_fund": "false", "npm_config_audit": "false"}
        else:
            argv = [request.program, "--from", request.spec, "python", "-S", "-c", "pass"]
            env |= {"UV_CACHE_DIR": str(cache), "UV_NO_PROGRESS": "1"}
        started = time.monotonic()
        try:
            log.info("Fetching %s into the package cache.", request.describe())
            code, output = await installer(argv, env, staging)
            if code != 0:
                raise PackageFetchError(_failure(request, code, output, self.fetch_timeout_s))
            old = _publish(cache, entry, self._staging(f"old-{request.entry_id}-"))
            if old is not None:  # copies may still read it: it goes once they are bound to be over
                asyncio.get_running_loop().call_later(2 * COPY_TIMEOUT_S, self._remove_later, old)
            log.info("Fetched %s in %.1f s.", request.describe(), time.monotonic() - started)
        except PackageFetchError:
            if _present(entry):  # a refresh failed: the entry we have still serves
                log.warning("Refreshing %s failed; the cached one stays.", request.describe())
                return
            raise
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _copy(self, request: PackageRequest, entry: Path, home: Path, owner: tuple[int, int] | None) -> Path:
        started = time.monotonic()
        staging = self._staging(f"copy-{request.entry_id}-")
        try:
            copy = staging / "copy"
            await self._command(["cp", "-a", "--reflink=auto", str(entry), str(copy)], request)
            if owner is not None and os.geteuid() == 0:
                await self._command(["chown", "-R", f"{owner[0]}:{owner[1]}", str(copy)], request)
            target = _replace_in(home, _COPY_NAME[request.tool], copy, staging)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        log.info("Copied %s from the package cache in %.2f s.", request.describe(), time.monotonic() - started)
        return target

    async def _command(self, argv: list[str], request: PackageRequest) -> None:
        # Our own environment handed to our own copy command (cp/tar), not a setting read.
        code, output = await self._run(argv, dict(os.environ), COPY_TIMEOUT_S)
        if code != 0:
            raise PackageFetchError(
                f"Copying {request.describe()} from the package cache failed ({argv[0]}: "
                f"{'timed out' if code is None else f'exit code {code}'}): {_tail(output)}"
            )


def _sweep(root: Path) -> None:
    shutil.rmtree(root / ".tmp", ignore_errors=True)
    for path in (root, root / ".tmp"):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _present(entry: Path) -> bool:
    return entry.is_dir()


def _publish(cache: Path, entry: Path, trash: Path) -> Path | None:
    """Make a complete fill the entry (a rename: readers see the old one or the new one, never a half). The
    directory that holds the entry it replaced, if any; else `trash` is removed."""
    entry.parent.mkdir(mode=0o700, exist_ok=True)
    old = None
    if os.path.lexists(entry):  # a refresh: the old entry goes once the new one is whole
        os.rename(entry, trash / "entry")
        old = trash
    else:
        trash.rmdir()
    os.rename(cache, entry)
    os.utime(entry)  # its age is the fill's
    return old


def _replace_in(home: Path, name: str, new: Path, trash: Path) -> Path:
    """Put `new` at home/name in place of whatever the backend left there (moved into `trash`), by name inside
    an open `home`: a symlink at home/name is moved, never followed. OSError when home itself is a link."""
    try:
        home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise PackageFetchError(f"The backend's HOME {home} cannot take the package cache copy: {exc}.") from None
    trash_fd = os.open(trash, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.rename(name, "previous", src_dir_fd=home_fd, dst_dir_fd=trash_fd)
        try:
            os.rename(new, name, dst_dir_fd=home_fd)
        except OSError as exc:  # the backend (an older generation still running) put something back meanwhile
            raise PackageFetchError(f"Could not place the package cache copy in {home}: {exc}.") from None
    finally:
        os.close(home_fd)
        os.close(trash_fd)
    return home / name


def _failure(request: PackageRequest, code: int | None, output: str, timeout_s: float) -> str:
    if code is None:
        return f"Fetching packages ({request.describe()}) did not finish within {timeout_s:g} s: {_tail(output)}"
    return f"Fetching packages ({request.describe()}) failed with exit code {code}: {_tail(output)}"


def _tail(output: str, lines: int = 6) -> str:
    kept = [line.strip() for line in output.strip().splitlines() if line.strip()][-lines:]
    return " / ".join(kept) or "no output"
