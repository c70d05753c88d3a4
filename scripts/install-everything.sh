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
server_dir="$dir/node_modules/@modelcontextprotocol/server-everything"
# shellcheck source=scripts/npm-tool.sh
source "$root/scripts/npm-tool.sh"

works() {  # the server must load under this node: an empty stdin makes its stdio mode exit right away
    timeout 30 "$dir/node_modules/.bin/node" "$server_dir/dist/index.js" stdio </dev/null >/dev/null 2>&1
}

install_npm_tool everything "$dir" "@modelcontextprotocol/server-everything" "$EVERYTHING_VERSION"
