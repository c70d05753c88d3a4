#!/usr/bin/env bash
# Install the headless browser the admin UI's browser tests drive (tests/e2e/test_admin_browser.py): Debian's
# `chromium` package at /usr/bin/chromium. Playwright's Python API launches it through `executable_path`, so no
# browser is ever downloaded by Playwright itself.
#
# Idempotent: when /usr/bin/chromium exists it does nothing. Otherwise it runs
# `apt-get update && apt-get install -y --no-install-recommends chromium`, with sudo only when not root.
# It fails loudly (non-zero exit, a message saying why) when that is impossible.
#
#   scripts/install-chromium.sh            # install or verify
set -euo pipefail

CHROMIUM="/usr/bin/chromium"

fail() {
    echo "install-chromium: $*" >&2
    echo "install-chromium: the admin UI's browser tests need $CHROMIUM (Debian/Ubuntu package 'chromium')." >&2
    exit 1
}

if [ -x "$CHROMIUM" ]; then
    echo "install-chromium: $CHROMIUM is already installed; nothing to do."
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available on this machine; install chromium by hand."

if [ "$(id -u)" -eq 0 ]; then
    run_root() { env DEBIAN_FRONTEND=noninteractive "$@"; }
elif command -v sudo >/dev/null 2>&1; then
    # -n: never wait for a password prompt (CI has none to give); the env survives sudo's env_reset this way
    run_root() { sudo -n env DEBIAN_FRONTEND=noninteractive "$@"; }
else
    fail "not root and sudo is not installed; run this script as root."
fi

echo "install-chromium: installing Debian's chromium with apt-get…"
run_root apt-get update || fail "apt-get update failed (as root, or through 'sudo -n': does sudo need a password?)."
run_root apt-get install -y --no-install-recommends chromium || fail "apt-get install chromium failed."

[ -x "$CHROMIUM" ] || fail "apt-get installed chromium but $CHROMIUM is missing."
echo "install-chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")."
