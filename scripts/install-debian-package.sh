#!/usr/bin/env bash
# Install one Debian package the tests need, when the binary it provides is missing (idempotent):
#   scripts/install-debian-package.sh chromium /usr/bin/chromium      # the admin UI's browser tests (Playwright)
#   scripts/install-debian-package.sh bubblewrap /usr/bin/bwrap       # the backend sandbox
# It runs `apt-get update && apt-get install -y --no-install-recommends PACKAGE`, with sudo only when not root,
# and fails loudly (non-zero exit, a message saying why) when that is impossible.
set -euo pipefail

package="${1:?usage: install-debian-package.sh PACKAGE BINARY}"
binary="${2:?usage: install-debian-package.sh PACKAGE BINARY}"

fail() {
    echo "install-debian-package: $*" >&2
    echo "install-debian-package: the tests need $binary (Debian/Ubuntu package '$package')." >&2
    exit 1
}

if [ -x "$binary" ]; then
    echo "install-debian-package: $binary is already installed; nothing to do."
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available on this machine; install $package by hand."

if [ "$(id -u)" -eq 0 ]; then
    run_root() { env DEBIAN_FRONTEND=noninteractive "$@"; }
elif command -v sudo >/dev/null 2>&1; then
    # -n: never wait for a password prompt (CI has none to give); the env survives sudo's env_reset this way
    run_root() { sudo -n env DEBIAN_FRONTEND=noninteractive "$@"; }
else
    fail "not root and sudo is not installed; run this script as root."
fi

echo "install-debian-package: installing Debian's $package with apt-get…"
run_root apt-get update || fail "apt-get update failed (as root, or through 'sudo -n': does sudo need a password?)."
run_root apt-get install -y --no-install-recommends "$package" || fail "apt-get install $package failed."

[ -x "$binary" ] || fail "apt-get installed $package but $binary is missing."
echo "install-debian-package: installed $package ($binary)."
