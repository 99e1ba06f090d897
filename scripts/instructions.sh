#!/usr/bin/env bash
# Instructions per command, ours against raw redis-rs configured alike, under callgrind: a count
# that repeats whatever else the machine does (it counts instructions, not time). For each
# client and each number of commands in flight, `bench count` runs N = 2000 and N = 6000 SETs on
# a single-threaded runtime against a redis-server of its own; the difference over 4000 is the
# cost of one command, setup excluded; each figure is the median of three such differences (with
# 256 in flight, how many replies one read brings varies from run to run, and with it the count).
# Installs valgrind when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/ensure-redis.sh
if ! command -v valgrind >/dev/null 2>&1; then
    echo "==> installing valgrind" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
fi
cargo build --release -q -p azure-redis-connect-bench
bench=./target/release/bench
out=$(mktemp)
trap 'rm -f "$out"' EXIT

count() { # client n depth
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bench" count "$1" "$2" "$3" 2>&1 \
        | awk '/Collected/ { print $4 }'
}

echo "| in flight | raw redis-rs, instructions / command | ours | ours / raw |"
echo "|---|---|---|---|"
for depth in 1 16 256; do
    declare -A per
    for client in raw ours; do
        runs=()
        for _ in 1 2 3; do
            small=$(count "$client" 2000 "$depth")
            large=$(count "$client" 6000 "$depth")
            runs+=($(( (large - small) / 4000 )))
        done
        per[$client]=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)
    done
    ratio=$(awk -v o="${per[ours]}" -v r="${per[raw]}" 'BEGIN { printf "%.3f", o / r }')
    echo "| $depth | ${per[raw]} | ${per[ours]} | $ratio |"
done
