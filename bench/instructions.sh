#!/usr/bin/env bash
# User-space instructions per plain handshake, counted by callgrind: load
# on the machine does not change an instruction count, so this compares
# builds on a busy machine where CPU time would be noise (issue #18).
#
#   bench/instructions.sh [WSGATE_BIN] [HEADERS]
#
# Runs wsgate (default target/release/wsgate, one worker) under
# `valgrind --tool=callgrind` in front of the bench echo backend twice: once
# with no traffic (start-up and shutdown), once with the load generator's
# handshake scenario (connect, upgrade, close; 4 workers, 20 s). Prints the
# instructions of each run and (difference) / handshakes. HEADERS=browser
# sends ~500 bytes of browser headers with every upgrade. KEEP=1 keeps the
# loaded run's profile as bench/target/instructions.cg (callgrind_annotate).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
BIN="$BENCH/target/release"
WSGATE=${1:-$ROOT/target/release/wsgate}
EXTRA=()
[[ ${2:-} == browser ]] && EXTRA=(--browser-headers)

TMP=$(mktemp -d /tmp/wsgate-instructions.XXXXXX)
declare -A PID=()
cleanup() {
    local name
    for name in "${!PID[@]}"; do stop "$name"; done
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port
ECHO_PORT=$FREE
"$BIN/echo" --listen "127.0.0.1:$ECHO_PORT" --threads 1 &
PID[echo]=$!

# run NAME SECONDS: one callgrind run; prints "instructions handshakes".
run() {
    local name=$1 secs=$2 port handshakes=0
    free_port
    port=$FREE
    cat >"$TMP/$name.toml" <<CONF
[limits]
max_connections_per_ip = 0
[[listeners]]
bind = "127.0.0.1:$port"
[[routes]]
backends = ["ws://127.0.0.1:$ECHO_PORT"]
origins = ["*"]
CONF
    # One worker, set so that builds from before server.workers run too.
    WSGATE_WORKER_THREADS=1 RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$TMP/$name.cg" \
        "$WSGATE" --config "$TMP/$name.toml" 2>"$TMP/$name.log" &
    PID[$name]=$!
    local i
    for ((i = 0; i < 300; i++)); do
        "$BIN/loadgen" --url "ws://127.0.0.1:$port/" probe 2>/dev/null && break
        sleep 0.2
    done
    "$BIN/loadgen" --url "ws://127.0.0.1:$port/" probe >/dev/null || {
        echo "wsgate did not come up: $(tail -n 3 "$TMP/$name.log")" >&2
        exit 1
    }
    if ((secs > 0)); then
        handshakes=$("$BIN/loadgen" --url "ws://127.0.0.1:$port/" "${EXTRA[@]}" handshake \
            --concurrency 4 --duration "$secs" | awk '$1 == "handshakes" { print $2 }')
    fi
    stop "$name"
    local ir
    ir=$(awk '/^summary:/ { print $2 }' "$TMP/$name.cg")
    echo "$ir ${handshakes%.*}"
}

read -r idle_ir _ < <(run idle 0)
read -r busy_ir handshakes < <(run busy 20)
[[ ${KEEP:-0} == 1 ]] && cp "$TMP/busy.cg" "$BENCH/target/instructions.cg"
echo "wsgate: $WSGATE"
echo "instructions, start-up + probe + shutdown: $idle_ir"
echo "instructions, with $handshakes handshakes: $busy_ir"
echo "instructions per handshake: $(( (busy_ir - idle_ir) / handshakes ))"
