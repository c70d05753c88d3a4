#!/usr/bin/env bash
# Install the official MCP conformance suite and the Node.js it needs into .tools/conformance (idempotent).
#
# @modelcontextprotocol/conformance needs Node >= 22; the machine's node may be older, so Node 22 comes from
# the npm registry too (the `node` package ships the binary as node_modules/.bin/node). Only `npm install`
# from the registry is used: nothing else is downloaded. Run it again at any time: when the pinned versions
# are already there it does nothing.
#
#   scripts/install-conformance.sh            # install or verify
#   CONFORMANCE_DIR=/elsewhere scripts/...    # another install directory
#
# tests/conformance/test_conformance.py runs <dir>/node_modules/.bin/conformance with <dir>/node_modules/.bin
# first on PATH.
set -euo pipefail

CONFORMANCE_VERSION="0.1.16"
NODE_MAJOR="22"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${CONFORMANCE_DIR:-$root/.tools/conformance}"
bin="$dir/node_modules/.bin"
# shellcheck source=scripts/npm-tool.sh
source "$root/scripts/npm-tool.sh"

works() {  # the CLI must start under this node
    PATH="$bin:$PATH" "$bin/conformance" --version >/dev/null 2>&1 || PATH="$bin:$PATH" "$bin/conformance" --help >/dev/null 2>&1
}

install_npm_tool conformance "$dir" "@modelcontextprotocol/conformance" "$CONFORMANCE_VERSION"
