#!/usr/bin/env bash
# promtool for `make test` (tests/unit/test_prometheus_rules.py checks and unit-tests alerts.yml).
# One on PATH is used as it is. Otherwise promtool alone is taken out of Debian's `prometheus`
# package into .exchange/tools/bin: installing the package would also install and start a
# Prometheus server (its init script), which must not run beside the test stacks.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=.exchange/tools/bin/promtool
if command -v promtool >/dev/null 2>&1 || [ -x "$target" ]; then
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "promtool: not on PATH and no apt-get to fetch it" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/promtool.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt's download user must be able to write there
if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
    # No package lists yet (a fresh container): fetch them, which needs root.
    [ "$(id -u)" = 0 ] || { echo "promtool: run 'apt-get update' as root, or put promtool on PATH" >&2; exit 1; }
    apt-get update -qq
    (cd "$work" && apt-get download prometheus >/dev/null)
fi
mkdir -p "$(dirname "$target")"
dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -O ./usr/bin/promtool > "$target.tmp"
chmod 755 "$target.tmp"
mv "$target.tmp" "$target"
"$target" --version | head -1
