"""Which stdio backends start from the shared package cache (`package_cache.py`): `npx [-y|--yes] <package>` and
`uvx <package>`, with a registry package spec, and nothing else.

Everything this module does not recognise is left exactly as it was: other flags (`--offline`, `--package`,
`-c`, `--from`...), a path, a URL or a git spec, a package that `npx` would take from a `node_modules` of the
backend's own `cwd`, or a server whose `env` chooses its own cache (`npm_config_cache`, `UV_CACHE_DIR`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from mcp_supervisor.config.models import ServerEntry

Tool = Literal["npm", "uv"]

# npm: an optionally scoped name, then an optional @version, tag or range (no path, URL or git spec).
_NPM_SPEC = re.compile(
    r"(?P<name>(?:@[a-z0-9~][a-z0-9._~-]*/)?[a-z0-9~][a-z0-9._~-]*)(?:@(?P<version>[A-Za-z0-9._^~*+<>=|-]+))?"
)
_NPM_EXACT = re.compile(r"\d+\.\d+\.\d+(?:[-+][A-Za-z0-9.+-]+)?")
# PyPI: a name, optional extras, then an optional @version or ==version.
_UV_SPEC = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?:\[[A-Za-z0-9._,-]+\])?"
    r"(?:(?:@|==)(?P<version>[A-Za-z0-9.!+_-]+))?"
)
_NPX_YES = ("-y", "--yes")
# The server chose its own cache: leave it alone.
_OWN_CACHE = {"npm": ("npm_config_cache",), "uv": ("uv_cache_dir", "uv_no_cache")}
# Variables that decide what a fill fetches (registries, indexes, tokens): part of a cache entry's identity, and
# passed to the installer. The ones the cache itself sets are not.
_CONFIG_PREFIX = {"npm": "npm_config_", "uv": "uv_"}
_SET_BY_CACHE = {"npm_config_cache", "npm_config_prefer_offline", "npm_config_update_notifier", "uv_offline"}


@dataclass(frozen=True)
class PackageRequest:
    tool: Tool
    spec: str  # as the backend's command line gives it: `name@version`
    program: str  # npx or uvx, as resolved on the backend's PATH
    pinned: bool  # an exact version: the cached entry never goes stale
    config: tuple[tuple[str, str], ...]  # the tool's own variables from the backend's environment

    @property
    def entry_id(self) -> str:
        """The shared cache entry's name: one per (tool binary, spec, tool configuration)."""
        raw = json.dumps([self.tool, self.program, self.spec, list(self.config)])
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def describe(self) -> str:
        return f"{'npx -y' if self.tool == 'npm' else 'uvx'} {self.spec}"


def recognise(entry: ServerEntry, env: Mapping[str, str]) -> PackageRequest | None:
    """The package an npx or uvx backend runs, or None. `env` is the backend's environment (for PATH and the
    tool's configuration variables)."""
    if entry.type != "stdio" or not entry.command:
        return None
    tool: Tool | None = {"npx": "npm", "uvx": "uv"}.get(os.path.basename(entry.command))  # type: ignore[assignment]
    if tool is None:
        return None
    lowered = {name.lower(): value for name, value in {**env, **entry.env}.items()}
    if any(name in lowered for name in _OWN_CACHE[tool]):
        return None
    spec = _npm_spec(entry) if tool == "npm" else _uv_spec(entry)
    if spec is None:
        return None
    program = shutil.which(entry.command, path=env.get("PATH")) if os.sep not in entry.command else entry.command
    if program is None:
        return None
    version = spec[1]
    pinned = version is not None and (tool == "uv" or _NPM_EXACT.fullmatch(version) is not None)
    prefix = _CONFIG_PREFIX[tool]
    config = tuple(
        sorted((k, v) for k, v in env.items() if k.lower().startswith(prefix) and k.lower() not in _SET_BY_CACHE)
    )
    return PackageRequest(tool, spec[0], os.path.realpath(program), pinned, config)


def _npm_spec(entry: ServerEntry) -> tuple[str, str | None] | None:
    args = list(entry.args)
    while args and args[0] in _NPX_YES:
        args.pop(0)
    if not args:
        return None
    match = _NPM_SPEC.fullmatch(args[0])
    if match is None:
        return None
    if entry.cwd and _installed_locally(entry.cwd, match["name"]):
        return None  # npx runs the project's own copy, found from its cwd up
    return args[0], match["version"]


def _uv_spec(entry: ServerEntry) -> tuple[str, str | None] | None:
    if not entry.args:
        return None
    match = _UV_SPEC.fullmatch(entry.args[0])
    return None if match is None else (entry.args[0], match["version"])


def _installed_locally(cwd: str, name: str) -> bool:
    directory = os.path.abspath(cwd)
    while True:
        if os.path.exists(os.path.join(directory, "node_modules", name, "package.json")):
            return True
        parent = os.path.dirname(directory)
        if parent == directory:
            return False
        directory = parent
