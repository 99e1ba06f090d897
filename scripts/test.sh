#!/usr/bin/env bash
# Runs the whole test suite: unit, integration, trybuild UI and doc tests.
# Installs redis-server (Debian's package) when it is missing; the tests start their own
# redis-server processes on free loopback ports and stop them when they finish.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/ensure-redis.sh
echo "==> $(redis-server --version)"
echo "==> $(cargo --version)"

cargo test --workspace --all-features --no-fail-fast "$@"
