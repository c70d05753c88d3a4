"""Where the locked npm tools live: scripts/install-npm-tools.sh (`make npm-tools`) runs `npm ci` from
tests/npm/package-lock.json into .tools/npm, or into $NPM_TOOLS_DIR. Tests that need one fail (never skip) when
it is missing, and say how to install it."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NPM_TOOLS_DIR = Path(os.environ.get("NPM_TOOLS_DIR") or ROOT / ".tools" / "npm")
NODE_MODULES = NPM_TOOLS_DIR / "node_modules"
NPM_BIN = NODE_MODULES / ".bin"
NODE = NPM_BIN / "node"
INSTALL_HINT = "Run scripts/install-npm-tools.sh (or `make npm-tools`) first."


def locked_version(package: str) -> str:
    """The exact version tests/npm/package.json pins, so a test and the lock never disagree."""
    manifest = json.loads((ROOT / "tests" / "npm" / "package.json").read_text())
    version: str = manifest["dependencies"][package]
    return version


def installed_version(package: str) -> str | None:
    try:
        version: str = json.loads((NODE_MODULES / package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return version
