"""The package cache's rules without a registry: which commands it takes, one fill per entry, the copy's safety."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.supervisor.package_cache import PackageCache, PackageFetchError
from mcp_supervisor.supervisor.package_specs import PackageRequest, recognise


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, str]:
    """A PATH with an npx and a uvx (recognition resolves the command, never runs it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("npx", "uvx"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return {"PATH": str(bin_dir)}


def entry(command: str, *args: str, **fields: Any) -> ServerEntry:
    return ServerEntry(key="k", type="stdio", command=command, args=list(args), **fields)


@pytest.mark.parametrize(
    ("command", "args", "spec", "pinned"),
    [
        (
            "npx",
            ["-y", "@modelcontextprotocol/server-memory@2026.8.31"],
            "@modelcontextprotocol/server-memory@2026.8.31",
            True,
        ),
        ("npx", ["--yes", "pkg", "--flag"], "pkg", False),
        ("npx", ["pkg@^1.2"], "pkg@^1.2", False),
        ("uvx", ["mcp-server-time"], "mcp-server-time", False),
        ("uvx", ["mcp-server-fetch==2025.4.7", "--arg"], "mcp-server-fetch==2025.4.7", True),
        ("uvx", ["markitdown-mcp@0.0.1a4"], "markitdown-mcp@0.0.1a4", True),
    ],
)
def test_npx_and_uvx_commands_with_a_registry_package_are_recognised(
    tools: dict[str, str], command: str, args: list[str], spec: str, pinned: bool
) -> None:
    request = recognise(entry(command, *args), tools)
    assert request is not None
    assert (request.tool, request.spec, request.pinned) == ("npm" if command == "npx" else "uv", spec, pinned)
    assert request.program == os.path.realpath(Path(tools["PATH"]) / command)


@pytest.mark.parametrize(
    ("command", "args", "fields"),
    [
        ("npx", ["--offline", "--yes", "pkg"], {}),  # other flags: left alone
        ("npx", ["-p", "pkg", "bin"], {}),
        ("npx", ["./local"], {}),
        ("npx", ["git+https://example.invalid/x.git"], {}),
        ("npx", ["-y"], {}),
        ("npx", ["-y", "pkg"], {"env": {"npm_config_cache": "/srv/npm"}}),  # chose its own cache
        ("npx", ["-y", "pkg"], {"env": {"NPM_CONFIG_CACHE": "/srv/npm"}}),
        ("uvx", ["--from", "pkg", "cmd"], {}),
        ("uvx", ["pkg"], {"env": {"UV_CACHE_DIR": "/srv/uv"}}),
        ("node", ["-y", "pkg"], {}),
        ("uv", ["tool", "run", "pkg"], {}),
    ],
)
def test_everything_else_is_left_alone(
    tools: dict[str, str], command: str, args: list[str], fields: dict[str, Any]
) -> None:
    assert recognise(entry(command, *args, **fields), tools) is None


def test_a_package_installed_in_the_cwd_is_left_to_npx(tmp_path: Path, tools: dict[str, str]) -> None:
    project = tmp_path / "project"
    (project / "node_modules" / "pkg").mkdir(parents=True)
    (project / "node_modules" / "pkg" / "package.json").write_text("{}")
    (project / "sub").mkdir()
    assert recognise(entry("npx", "-y", "pkg", cwd=str(project / "sub")), tools) is None
    assert recognise(entry("npx", "-y", "other", cwd=str(project / "sub")), tools) is not None


def test_the_tools_registry_variables_name_another_entry(tools: dict[str, str]) -> None:
    plain = recognise(entry("npx", "-y", "pkg@1.0.0"), tools)
    other = recognise(entry("npx", "-y", "pkg@1.0.0"), {**tools, "npm_config_registry": "http://127.0.0.1:1/"})
    assert plain is not None and other is not None
    assert plain.entry_id != other.entry_id
    assert other.config == (("npm_config_registry", "http://127.0.0.1:1/"),)


class FakeInstaller:
    """Writes a file into the staging cache the way npm would, and counts the fills."""

    def __init__(self, code: int = 0, delay: float = 0.0) -> None:
        self.code, self.delay, self.calls = code, delay, 0

    async def __call__(self, argv: list[str], env: dict[str, str], home: Path) -> tuple[int | None, str]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        cache = Path(env.get("npm_config_cache") or env["UV_CACHE_DIR"])
        assert cache.is_relative_to(home)
        (cache / "_npx").mkdir()
        (cache / "_npx" / "pkg.js").write_text("fetched")
        return self.code, "npm error 404 Not Found - GET https://registry.example/pkg" if self.code else ""


async def run(argv: list[str], env: dict[str, str], timeout_s: float) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(*argv, env=env)
    return await process.wait(), ""


def request(spec: str = "pkg@1.0.0") -> PackageRequest:
    return PackageRequest("npm", spec, "/usr/bin/npx", True, ())


def homes(tmp_path: Path, *keys: str) -> list[Path]:
    paths = [tmp_path / "state" / key for key in keys]
    for path in paths:
        path.mkdir(parents=True)
    return paths


@pytest.mark.anyio
async def test_one_fill_serves_every_backend_each_with_its_own_copy(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path / "state", run, 10.0)
    installer = FakeInstaller(delay=0.2)
    a, b = homes(tmp_path, "a", "b")
    envs = await asyncio.gather(*(cache.prepare(request(), home, installer, None) for home in (a, b)))
    assert installer.calls == 1
    assert [env["npm_config_cache"] for env in envs] == [str(a / ".npm"), str(b / ".npm")]
    assert envs[0]["npm_config_prefer_offline"] == "true"
    (a / ".npm" / "_npx" / "pkg.js").write_text("changed by a")  # its own copy only
    assert (b / ".npm" / "_npx" / "pkg.js").read_text() == "fetched"
    assert (cache.entry_dir(request()) / "_npx" / "pkg.js").read_text() == "fetched"
    await cache.prepare(request(), a, installer, None)  # a new start: a fresh copy, no new fill
    assert installer.calls == 1 and (a / ".npm" / "_npx" / "pkg.js").read_text() == "fetched"


@pytest.mark.anyio
async def test_a_failed_fill_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path / "state", run, 10.0)
    (home,) = homes(tmp_path, "a")
    with pytest.raises(
        PackageFetchError, match=r"Fetching packages \(npx -y pkg@1.0.0\) failed with exit code 1: .*404"
    ):
        await cache.prepare(request(), home, FakeInstaller(code=1), None)
    assert not cache.entry_dir(request()).exists()
    assert list((cache.root / ".tmp").iterdir()) == []


@pytest.mark.anyio
async def test_without_network_nothing_is_fetched_and_the_backend_starts_as_before(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path / "state", run, 10.0)
    (home,) = homes(tmp_path, "a")
    assert await cache.prepare(request(), home, None, None) == {}
    assert not (home / ".npm").exists()


@pytest.mark.anyio
async def test_a_backend_without_network_waits_for_the_fetch_of_one_started_with_it(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path / "state", run, 10.0)
    offline, online = homes(tmp_path, "offline", "online")
    installer = FakeInstaller(delay=0.2)
    envs = await asyncio.gather(  # the one without network first, as in a config that lists it first
        cache.prepare(request(), offline, None, None), cache.prepare(request(), online, installer, None)
    )
    assert installer.calls == 1 and envs[0]["npm_config_cache"] == str(offline / ".npm")


@pytest.mark.anyio
async def test_the_copy_replaces_a_planted_symlink_and_never_follows_it(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path / "state", run, 10.0)
    (home,) = homes(tmp_path, "a")
    await cache.prepare(request(), home, FakeInstaller(), None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (home / ".npm").rename(tmp_path / "moved")
    (home / ".npm").symlink_to(elsewhere)  # what a hostile backend leaves in its HOME for the next start
    await cache.prepare(request(), home, FakeInstaller(), None)
    assert not (home / ".npm").is_symlink() and (home / ".npm" / "_npx" / "pkg.js").exists()
    assert list(elsewhere.iterdir()) == []


@pytest.mark.anyio
async def test_a_home_that_is_a_symlink_gets_no_copy(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path / "state", run, 10.0)
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "a").symlink_to(target)
    with pytest.raises(PackageFetchError, match="cannot take the package cache copy"):
        await cache.prepare(request(), tmp_path / "state" / "a", FakeInstaller(), None)
    assert list(target.iterdir()) == []
