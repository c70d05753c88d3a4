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
# The conformance suite is locked twice: 0.1.16 as @modelcontextprotocol/conformance (NPM_BIN / "conformance"), and
# the 2026-07-28 pre-release under the npm alias `conformance-next`. Both packages name their binary `conformance`
# and the .bin link is 0.1.16's, so the pre-release runs as `node <its entry point>` (CONFORMANCE_NEXT_COMMAND).
CONFORMANCE_NEXT = "conformance-next"
CONFORMANCE_NEXT_ENTRY = NODE_MODULES / CONFORMANCE_NEXT / "dist" / "index.js"
CONFORMANCE_NEXT_COMMAND = [str(NODE), str(CONFORMANCE_NEXT_ENTRY)]
INSTALL_HINT = "Run scripts/install-npm-tools.sh (or `make npm-tools`) first."


def locked_version(package: str) -> str:
    """The exact version tests/npm/package.json pins, so a test and the lock never disagree. For an npm alias
    (`"conformance-next": "npm:@modelcontextprotocol/conformance@0.2.0-alpha.12"`), the aliased version."""
    manifest = json.loads((ROOT / "tests" / "npm" / "package.json").read_text())
    spec: str = manifest["dependencies"][package]
    if spec.startswith("npm:"):
        spec = spec.rpartition("@")[2]
    return spec


def installed_version(package: str) -> str | None:
    try:
        version: str = json.loads((NODE_MODULES / package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return version
