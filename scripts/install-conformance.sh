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

installed() {
    [[ -x "$bin/node" && -e "$bin/conformance" ]] || return 1
    local node_version package_version
    node_version="$("$bin/node" --version 2>/dev/null)" || return 1
    [[ "$node_version" == "v$NODE_MAJOR."* ]] || return 1
    package_version="$("$bin/node" -p \
        "require('$dir/node_modules/@modelcontextprotocol/conformance/package.json').version" 2>/dev/null)" || return 1
    [[ "$package_version" == "$CONFORMANCE_VERSION" ]] || return 1
    # The CLI must start under this node.
    PATH="$bin:$PATH" "$bin/conformance" --version >/dev/null 2>&1 || PATH="$bin:$PATH" "$bin/conformance" --help >/dev/null 2>&1
}

if installed; then
    echo "conformance $CONFORMANCE_VERSION with node $("$bin/node" --version) already in $dir"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "install-conformance: npm is not on PATH (install Node.js and npm, e.g. apt-get install nodejs npm)" >&2
    exit 1
fi

mkdir -p "$dir"
cat >"$dir/package.json" <<EOF
{
  "name": "mcp-supervisor-conformance-tools",
  "private": true,
  "description": "The MCP conformance suite and the Node.js it runs on; installed by scripts/install-conformance.sh",
  "dependencies": {
    "@modelcontextprotocol/conformance": "$CONFORMANCE_VERSION",
    "node": "^$NODE_MAJOR"
  }
}
EOF

echo "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION and node@$NODE_MAJOR into $dir"
# --foreground-scripts: the `node` package fetches its platform binary package in a preinstall script.
(cd "$dir" && npm install --no-audit --no-fund --loglevel=error --foreground-scripts)

if ! installed; then
    echo "install-conformance: the install finished but $bin/node (v$NODE_MAJOR) or $bin/conformance" \
        "($CONFORMANCE_VERSION) does not work" >&2
    exit 1
fi
echo "installed conformance $CONFORMANCE_VERSION with node $("$bin/node" --version) in $dir"
