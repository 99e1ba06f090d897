#!/usr/bin/env bash
# Throughput of the gate (plain listener) against direct redis-server, in the same run.
# Usage: emulator/scripts/bench.sh [requests] [clients]
# Needs redis-benchmark (package redis-tools / redis-server) on PATH.
set -euo pipefail
N=${1:-200000}
C=${2:-50}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release -p azure-redis-emulator --manifest-path "$ROOT/Cargo.toml" >&2
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
trap 'kill -INT "$EMU" 2>/dev/null || true; wait "$EMU" 2>/dev/null || true; rm -rf "$WORK"' EXIT
KEY=bench-$RANDOM$RANDOM
"$TARGET/release/azure-redis-emulator" --auth access-key --plain --print-redis-password \
  --access-key "$KEY" >"$WORK/out" 2>"$WORK/err" &
EMU=$!
for _ in $(seq 1 150); do grep -q Ctrl-C "$WORK/out" 2>/dev/null && break; sleep 0.2; done
GATE=$(sed -n 's/^# gate plain: .*://p' "$WORK/out")
DIRECT=$(sed -n 's/^# redis-server (behind the gate): .*://p' "$WORK/out")
PW=$(sed -n 's/^# redis-server password: //p' "$WORK/out")
rps() { redis-benchmark -p "$1" -a "$2" -t get,set -n "$N" -c "$C" -P "$3" -q 2>/dev/null \
  | tr '\r' '\n' | sed -n 's/^\([A-Z]*\): \([0-9.]*\) requests per second.*/\1 \2/p'; }
for P in 1 16; do
  direct=$(rps "$DIRECT" "$PW" "$P")
  gate=$(rps "$GATE" "$KEY" "$P")
  join <(sort <<<"$direct") <(sort <<<"$gate") | while read -r op d g; do
    awk -v op="$op" -v p="$P" -v d="$d" -v g="$g" \
      'BEGIN { printf "-P %-2s %-3s direct %10.0f  gate %10.0f  ratio %.2f\n", p, op, d, g, g / d }'
  done
done
