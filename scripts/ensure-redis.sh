#!/usr/bin/env bash
# Installs redis-server (Debian's package) when it is not on PATH.
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
    echo "==> redis-server is missing: installing Debian's package"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
