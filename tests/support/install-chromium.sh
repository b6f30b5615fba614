#!/usr/bin/env bash
# Chromium for `make test`: the console's browser tests (tests/e2e/test_console_browser.py) drive
# Debian's chromium package through Playwright (never `playwright install`, which downloads a
# browser build of its own). One on PATH is used as it is; otherwise it is installed with apt,
# which needs root (a fresh CI machine is root; elsewhere, install it yourself).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "chromium: not on PATH and no apt-get to install it" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "chromium: not on PATH; run 'apt-get install chromium' as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq chromium >/dev/null 2>&1; then
    apt-get update -qq  # no package lists yet (a fresh container)
    apt-get install -y -qq chromium >/dev/null
fi
chromium --version
