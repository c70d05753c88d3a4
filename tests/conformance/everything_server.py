"""The python-sdk's own everything-server, taken from the `mcp` sdist that uv.lock pins (URL and sha256).

The sdist ships `examples/servers/everything-server/` (the server the SDK's CI scores the conformance suites
with); no wheel does. It is downloaded once into .tools/pypi/ (checked against the lock's sha256; a file that
does not match is fetched again and checked again), and that one directory is extracted to
.tools/everything-server-<version>/. It runs with the test venv's python: its imports (mcp, click, starlette,
uvicorn, anyio, httpx2, pydantic) are all in the locked test group already. The lock being the pin, `make lock`
moves the server along with the SDK it tests.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tomllib
import urllib.request
from pathlib import Path

from tests.e2e.conftest import ROOT

TOOLS = ROOT / ".tools"
EXAMPLE = "examples/servers/everything-server/"


def locked_sdist(package: str = "mcp") -> tuple[str, str, str]:
    """(version, URL, sha256) of `package`'s sdist in uv.lock."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    for entry in lock["package"]:
        if entry["name"] == package and "sdist" in entry:
            sdist = entry["sdist"]
            algorithm, _, digest = sdist["hash"].partition(":")
            assert algorithm == "sha256", sdist["hash"]
            return str(entry["version"]), str(sdist["url"]), digest
    raise AssertionError(f"uv.lock has no sdist of {package}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, digest: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and _sha256(target) == digest:
        return
    partial = target.with_suffix(".part")
    with urllib.request.urlopen(url, timeout=120) as response, partial.open("wb") as out:
        shutil.copyfileobj(response, out)
    got = _sha256(partial)
    if got != digest:
        partial.unlink()
        raise AssertionError(f"{url} has sha256 {got}, uv.lock says {digest}")
    partial.replace(target)


def everything_server() -> Path:
    """The directory to run `python -m mcp_everything_server --port N` in (downloaded and extracted if need be)."""
    version, url, digest = locked_sdist()
    directory = TOOLS / f"everything-server-{version}"
    if (directory / "mcp_everything_server" / "server.py").exists():
        return directory
    archive = TOOLS / "pypi" / url.rsplit("/", 1)[1]
    _download(url, digest, archive)
    staging = directory.with_name(directory.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    prefix = f"mcp-{version}/{EXAMPLE}"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix) and (m.isfile() or m.isdir())]
        for member in members:
            member.name = member.name[len(prefix) :]
        tar.extractall(staging, members=[m for m in members if m.name], filter="data")
    staging.replace(directory)
    return directory
