#!/usr/bin/env bash
# The main job on a fresh machine: installs redis-server when it is missing, then runs the demo
# (the emulator, and one connection staying authenticated through token refreshes).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "==> redis-server is missing: installing Debian's package"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
echo "==> building (the first build takes a few minutes)"
cargo build -q -p azure-redis-connect-examples --bin demo
exec cargo run -q -p azure-redis-connect-examples --bin demo
