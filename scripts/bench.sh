#!/usr/bin/env bash
# Benchmarks (not tests): builds the redis-rs `entra-id` comparison program on its own (it needs
# OpenSSL's headers) and the workspace benchmark in release mode, then prints the tables that
# BENCHMARKS.md records. Extra arguments go to the benchmark (--runs N, --seconds S).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/ensure-redis.sh
if ! command -v redis-benchmark >/dev/null 2>&1 || ! pkg-config --exists openssl 2>/dev/null; then
    echo "==> installing redis-tools, pkg-config and libssl-dev" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-tools pkg-config libssl-dev >/dev/null
fi

anchor_target="${ANCHOR_TARGET_DIR:-$PWD/target/anchor}"
echo "==> building the redis-rs entra-id comparison program (anchors/redis-rs-entra)" >&2
(cd anchors/redis-rs-entra && CARGO_TARGET_DIR="$anchor_target" cargo build --release -q)
echo "==> building the benchmark" >&2
cargo build --release -q -p azure-redis-connect-bench
exec ./target/release/bench --anchor "$anchor_target/release/anchor" "$@"
