#!/usr/bin/env bash
# Install the MCP reference server @modelcontextprotocol/server-everything and the Node.js it runs on into
# .tools/everything (idempotent).
#
# tests/e2e/test_server_everything.py runs it over stdio behind the gateway
# (<dir>/node_modules/.bin/node <dir>/node_modules/@modelcontextprotocol/server-everything/dist/index.js stdio).
# It is never run over HTTP: in that mode it binds all interfaces.
#
# Node 22 comes from the npm registry (the `node` package ships the binary as node_modules/.bin/node), so the
# machine's node only has to be able to run npm. Only `npm install` from the registry is used: nothing else is
# downloaded. Run it again at any time: when the pinned versions are already there it does nothing.
#
#   scripts/install-everything.sh             # install or verify
#   EVERYTHING_DIR=/elsewhere scripts/...     # another install directory
set -euo pipefail

EVERYTHING_VERSION="2026.8.31"
NODE_MAJOR="22"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${EVERYTHING_DIR:-$root/.tools/everything}"
bin="$dir/node_modules/.bin"
package="$dir/node_modules/@modelcontextprotocol/server-everything"

installed() {
    [[ -x "$bin/node" && -f "$package/dist/index.js" ]] || return 1
    local node_version package_version
    node_version="$("$bin/node" --version 2>/dev/null)" || return 1
    [[ "$node_version" == "v$NODE_MAJOR."* ]] || return 1
    package_version="$("$bin/node" -p "require('$package/package.json').version" 2>/dev/null)" || return 1
    [[ "$package_version" == "$EVERYTHING_VERSION" ]] || return 1
    # The server must load under this node: an empty stdin makes its stdio mode exit right away.
    timeout 30 "$bin/node" "$package/dist/index.js" stdio </dev/null >/dev/null 2>&1
}

if installed; then
    echo "server-everything $EVERYTHING_VERSION with node $("$bin/node" --version) already in $dir"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "install-everything: npm is not on PATH (install Node.js and npm, e.g. apt-get install nodejs npm)" >&2
    exit 1
fi

mkdir -p "$dir"
cat >"$dir/package.json" <<EOF
{
  "name": "mcp-supervisor-everything-tools",
  "private": true,
  "description": "The MCP reference server server-everything and the Node.js it runs on; installed by scripts/install-everything.sh",
  "dependencies": {
    "@modelcontextprotocol/server-everything": "$EVERYTHING_VERSION",
    "node": "^$NODE_MAJOR"
  }
}
EOF

echo "installing @modelcontextprotocol/server-everything@$EVERYTHING_VERSION and node@$NODE_MAJOR into $dir"
# --foreground-scripts: the `node` package fetches its platform binary package in a preinstall script.
(cd "$dir" && npm install --no-audit --no-fund --loglevel=error --foreground-scripts)

if ! installed; then
    echo "install-everything: the install finished but $bin/node (v$NODE_MAJOR) or server-everything" \
        "($EVERYTHING_VERSION) in $package does not work" >&2
    exit 1
fi
echo "installed server-everything $EVERYTHING_VERSION with node $("$bin/node" --version) in $dir"
