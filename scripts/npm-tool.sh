# Shared by scripts/install-*.sh: install one pinned npm package and Node.js from the npm registry into a
# directory of its own, idempotently. Sourced, not run.
#
# The caller sets NODE_MAJOR and defines `works` (exit 0 when the installed tool runs), then calls
#   install_npm_tool <label> <dir> <package> <version>
# Node comes from the registry too (the `node` package ships the binary as <dir>/node_modules/.bin/node), so
# the machine's own node only has to run npm. Only `npm install` from the registry is used.

installed_npm_tool() {
    local dir="$1" package="$2" version="$3" bin="$1/node_modules/.bin"
    [[ -x "$bin/node" && -f "$dir/node_modules/$package/package.json" ]] || return 1
    [[ "$("$bin/node" --version 2>/dev/null)" == "v$NODE_MAJOR."* ]] || return 1
    [[ "$("$bin/node" -p "require('$dir/node_modules/$package/package.json').version" 2>/dev/null)" == "$version" ]] \
        || return 1
    works
}

install_npm_tool() {
    local label="$1" dir="$2" package="$3" version="$4"
    if installed_npm_tool "$dir" "$package" "$version"; then
        echo "$label $version with node $("$dir/node_modules/.bin/node" --version) already in $dir"
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "$label: npm is not on PATH (install Node.js and npm, e.g. apt-get install nodejs npm)" >&2
        return 1
    fi
    mkdir -p "$dir"
    cat >"$dir/package.json" <<JSON
{
  "name": "mcp-supervisor-$label-tools",
  "private": true,
  "description": "$package and the Node.js it runs on, for mcp-supervisor's tests",
  "dependencies": {
    "$package": "$version",
    "node": "^$NODE_MAJOR"
  }
}
JSON
    echo "installing $package@$version and node@$NODE_MAJOR into $dir"
    # --foreground-scripts: the `node` package fetches its platform binary package in a preinstall script.
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error --foreground-scripts)
    if ! installed_npm_tool "$dir" "$package" "$version"; then
        echo "$label: the install finished but node v$NODE_MAJOR or $package $version in $dir does not work" >&2
        return 1
    fi
    echo "installed $label $version with node $("$dir/node_modules/.bin/node" --version) in $dir"
}
