#!/usr/bin/env bash
# The main job on one machine, with no Azure account: the emulator stands in for Azure (a
# managed identity endpoint minting 5-second Entra ID tokens, and a TLS gate in front of a real
# redis-server that closes connections whose token expired); the axum example service reads
# the variables Service Connector would inject for a system-assigned managed identity, and curl
# drives its API for 20 seconds while tokens are refreshed and the live connection re-AUTHs.
#
# Installs redis-server (and curl) from Debian's packages when missing. Exits 0 only if every
# request succeeded, tokens were refreshed at least twice, the counter in Redis matches the
# increments, and everything stopped cleanly.
#
# Settings: DEMO_SECONDS (default 20), TOKEN_LIFETIME (seconds, default 5),
# CARGO_TARGET_DIR (where to build, default ./target).
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO_SECONDS="${DEMO_SECONDS:-20}"
TOKEN_LIFETIME="${TOKEN_LIFETIME:-5}"
STARTED_AT=$SECONDS

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> ${missing[*]} missing: installing Debian's packages"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "==> building the emulator and the axum example (the first build takes a few minutes)"
cargo build -q -p azure-redis-emulator -p azure-redis-connect-examples \
    --bin azure-redis-emulator --bin axum_service
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
EMULATOR="$TARGET_DIR/debug/azure-redis-emulator"
SERVICE="$TARGET_DIR/debug/axum_service"
echo "    built in $((SECONDS - STARTED_AT)) s"

LOGS="$TARGET_DIR/demo-logs"
mkdir -p "$LOGS"
rm -f "$LOGS"/*
EMU_PID=""
SVC_PID=""

stop() { # stop PID SIGNAL NAME: signal a child and wait for it (at most 15 s)
    local pid="$1" signal="$2" name="$3"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "    $name did not stop in 15 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop "$SVC_PID" TERM "the service"
    stop "$EMU_PID" INT "the emulator"
}
trap cleanup EXIT
trap 'echo; echo "==> interrupted"; exit 130' INT TERM

wait_for_line() { # wait_for_line FILE PATTERN SECONDS PID
    local file="$1" pattern="$2" seconds="$3" pid="$4"
    for _ in $(seq $((seconds * 10))); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

echo "==> starting the emulator: system-assigned managed identity, tokens live ${TOKEN_LIFETIME} s"
RUST_LOG=warn "$EMULATOR" --auth system-identity --token-lifetime "$TOKEN_LIFETIME" \
    >"$LOGS/emulator.env" 2>"$LOGS/emulator.log" &
EMU_PID=$!
if ! wait_for_line "$LOGS/emulator.env" "stop with Ctrl-C" 30 "$EMU_PID"; then
    echo "the emulator did not start:"; cat "$LOGS/emulator.log"; exit 1
fi
eval "$(grep '^export ' "$LOGS/emulator.env")"
echo "    exported what Service Connector and App Service would set (secret values not shown):"
grep '^export ' "$LOGS/emulator.env" | sed -e 's/^export //' \
    -e 's/^\(IDENTITY_HEADER\)=.*/\1=(secret)/' -e 's/^/      /'

echo "==> starting the axum example (log: $LOGS/service.log)"
LISTEN_ADDR=127.0.0.1:0 RATE_LIMIT=1000000 SOURCE_DELAY_MS=100 NO_COLOR=1 \
    "$SERVICE" >"$LOGS/service.log" 2>&1 &
SVC_PID=$!
if ! wait_for_line "$LOGS/service.log" "listening on http://" 60 "$SVC_PID"; then
    echo "the service did not start:"; cat "$LOGS/service.log"; exit 1
fi
URL="$(grep -o 'listening on http://[0-9.:]*' "$LOGS/service.log" | head -n1 | sed 's/listening on //')"

shown=0
show_service_log() { # prints the service's new lines about configuration, tokens and re-AUTHs
    local total
    total=$(wc -l <"$LOGS/service.log")
    if [ "$total" -gt "$shown" ]; then
        sed -n "$((shown + 1)),${total}p" "$LOGS/service.log" |
            grep -E 'configuration|cache |connected|listening|token|re-auth|reconnect|shutdown|stopped|WARN|ERROR' |
            sed -E 's/^[0-9-]+T([0-9:]+\.[0-9]{3})[0-9]*Z/\1/; s/^/    service | /' || true
        shown=$total
    fi
}
show_service_log

ok=0
failed=0
increments=0
body="$LOGS/body"
call() { # call METHOD PATH: one request; counts it
    local code
    code=$(curl -s --max-time 10 -X "$1" -H 'x-client-id: demo' -o "$body" -w '%{http_code}' \
        "$URL$2" 2>/dev/null) || true
    if [ "$code" = 200 ]; then
        ok=$((ok + 1))
        if [ "$1" = POST ]; then increments=$((increments + 1)); fi
    else
        failed=$((failed + 1))
        echo "    driver  | FAILED $1 $2: HTTP $code $(head -c 200 "$body" 2>/dev/null)"
    fi
}
json_field() { # json_field NAME < JSON: the first value of "NAME": in a flat scan
    grep -o "\"$1\":[^,}]*" | head -n1 | cut -d: -f2- | tr -d '"'
}
show_health() {
    local code json
    code=$(curl -s --max-time 10 -o "$body" -w '%{http_code}' "$URL/health" 2>/dev/null) || true
    json=$(cat "$body" 2>/dev/null || true)
    echo "    health  | HTTP $code status=$(json_field status <<<"$json")" \
        "token expires in $(json_field expires_in_secs <<<"$json") s," \
        "token requests $(json_field requests <<<"$json"), re-AUTHs $(json_field reauths <<<"$json")," \
        "refresh failures $(json_field consecutive_failures <<<"$json")"
}

echo "==> sending requests to $URL for ${DEMO_SECONDS} s (POST /counter/demo, GET /items/{id}, GET /counter/demo)"
show_health
demo_start=$SECONDS
last_report=$SECONDS
i=0
while [ $((SECONDS - demo_start)) -lt "$DEMO_SECONDS" ]; do
    i=$((i + 1))
    call POST /counter/demo
    call GET "/items/$((i % 10 + 1))"
    call GET /counter/demo
    if [ "$SECONDS" -ne "$last_report" ]; then
        last_report=$SECONDS
        show_service_log
        elapsed=$((SECONDS - demo_start))
        echo "    driver  | ${elapsed} s: $ok requests ok, $failed failed"
        if [ $((elapsed % 5)) -eq 0 ] && [ "$elapsed" -lt "$DEMO_SECONDS" ]; then show_health; fi
    fi
done
show_service_log
show_health

echo "==> results"
code=$(curl -s --max-time 10 -o "$body" -w '%{http_code}' "$URL/counter/demo" 2>/dev/null) || true
counter=$(json_field value <"$body" 2>/dev/null || true)
refreshes=$(grep -c 'token refreshed; re-authenticating' "$LOGS/service.log" || true)
reauths=$(grep -c 're-authenticated' "$LOGS/service.log" || true)
expired_closes=$(grep -c 'connection closed by the server' "$LOGS/service.log" || true)
echo "    requests:         $ok ok, $failed failed"
echo "    counter in Redis: ${counter:-?} (increments answered: $increments)"
echo "    token refreshes:  $refreshes   re-AUTHs on the live connection: $reauths"
echo "    connections closed by the server: $expired_closes"

echo "==> stopping the service (SIGTERM) and the emulator (SIGINT)"
stop "$SVC_PID" TERM "the service"
stopped_cleanly=0
grep -q 'INFO axum_service: stopped' "$LOGS/service.log" && stopped_cleanly=1
SVC_PID=""
show_service_log
stop "$EMU_PID" INT "the emulator"
EMU_PID=""

status=0
[ "$failed" -eq 0 ] || { echo "FAIL: $failed requests failed"; status=1; }
[ "$ok" -gt 0 ] || { echo "FAIL: no request succeeded"; status=1; }
[ "$code" = 200 ] && [ "${counter:-x}" = "$increments" ] ||
    { echo "FAIL: the counter (${counter:-?}) does not match the increments ($increments)"; status=1; }
[ "$refreshes" -ge 2 ] || { echo "FAIL: only $refreshes token refreshes"; status=1; }
[ "$reauths" -ge 2 ] || { echo "FAIL: only $reauths re-AUTHs"; status=1; }
[ "$stopped_cleanly" -eq 1 ] || { echo "FAIL: the service did not stop cleanly"; status=1; }
if [ "$status" -eq 0 ]; then
    echo "==> OK: every request succeeded through $refreshes token refreshes ($((SECONDS - STARTED_AT)) s in all)"
fi
exit "$status"
