#!/usr/bin/env bash
# Runs the whole test suite: unit, integration, trybuild UI and doc tests.
# Installs redis-server (Debian's package) when it is missing; the tests start their own
# redis-server processes on free loopback ports and stop them when they finish.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "==> redis-server is missing: installing Debian's package"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
echo "==> $(redis-server --version)"
echo "==> $(cargo --version)"

cargo test --workspace --all-features --no-fail-fast "$@"
