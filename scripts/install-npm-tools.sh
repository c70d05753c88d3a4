#!/usr/bin/env bash
# Install the npm tools the tests use, exactly as tests/npm/package-lock.json pins them, into .tools/npm with
# `npm ci` (idempotent): Node 22 (the `node` package ships the binary as node_modules/.bin/node, so the machine's
# own node only has to run npm), the official conformance suite twice (0.1.16 as node_modules/.bin/conformance, and
# the 2026-07-28 pre-release under the npm alias `conformance-next`, run as node_modules/conformance-next/dist/index.js:
# both packages name their binary `conformance`, and the .bin link stays 0.1.16's), server-everything,
# server-filesystem and server-memory, oidc-provider (a real authorization server for the OAuth tests), and the MCP
# Inspector (its CLI, `mcp-inspector --cli`, is a second real client in both eras). Nothing
# is installed by floating name; `make lock` refreshes the lock.
#
#   scripts/install-npm-tools.sh              # install or verify
#   NPM_TOOLS_DIR=/elsewhere scripts/...      # another install directory
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/tests/npm"
dir="${NPM_TOOLS_DIR:-$root/.tools/npm}"
bin="$dir/node_modules/.bin"
stamp="$dir/.installed-$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-16)"

locked() {  # the exact version package.json pins for the conformance suite ("conformance") or its alias
    "$bin/node" -e '
        const spec = require(process.argv[1]).dependencies[process.argv[2] === "conformance"
            ? "@modelcontextprotocol/conformance" : process.argv[2]];
        console.log(spec.replace(/^npm:@modelcontextprotocol\/conformance@/, ""));' "$src/package.json" "$1"
}

works() {  # Node 22 runs, and every tool loads under it
    [[ "$("$bin/node" --version 2>/dev/null)" == v22.* ]] || return 1
    PATH="$bin:$PATH" "$bin/conformance" --help >/dev/null 2>&1 || return 1
    # the .bin link is 0.1.16's, not the pre-release's (both packages name their binary `conformance`)
    [[ "$(PATH="$bin:$PATH" "$bin/conformance" --version 2>/dev/null)" == "$(locked conformance)" ]] || return 1
    [[ "$("$bin/node" "$dir/node_modules/conformance-next/dist/index.js" --version 2>/dev/null)" \
        == "$(locked conformance-next)" ]] || return 1
    local server
    for server in everything filesystem memory; do
        [[ -f "$dir/node_modules/@modelcontextprotocol/server-$server/package.json" ]] || return 1
    done
    [[ -f "$dir/node_modules/oidc-provider/package.json" ]] || return 1
    [[ -f "$dir/node_modules/@modelcontextprotocol/inspector/package.json" ]] || return 1
}

if [[ -f "$stamp" ]] && works; then
    echo "npm tools already installed in $dir (node $("$bin/node" --version))"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install-npm-tools: npm is not on PATH (install Node.js and npm, e.g. apt-get install nodejs npm)" >&2
    exit 1
fi
mkdir -p "$dir"
rm -f "$dir"/.installed-*
cp "$src/package.json" "$src/package-lock.json" "$dir/"
echo "installing the locked npm tools into $dir"
# --foreground-scripts: the `node` package fetches its platform binary package (pinned by its own version) in a
# preinstall script.
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error --foreground-scripts)
if ! works; then
    echo "install-npm-tools: npm ci finished but node 22 or a tool in $dir does not work" >&2
    exit 1
fi
touch "$stamp"
echo "installed the npm tools in $dir (node $("$bin/node" --version))"
