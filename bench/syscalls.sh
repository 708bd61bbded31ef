#!/usr/bin/env bash
# Syscalls per relayed message and per handshake, counted with strace -c -f
# (issue #18). strace slows the traced process down, so the counts are what
# to read here, not rates or CPU.
#
#   bench/syscalls.sh [WORKERS]   wsgate with server.workers = WORKERS (1)
#   WSGATE_BIN=/other/wsgate bench/syscalls.sh   another build (one worker)
#
# Starts the bench echo backend and a wsgate release build on free loopback
# ports, runs the load generator's throughput scenario (50 connections x 8
# in flight; 64 B, 4 KiB, 64 KiB) and its handshake scenario with strace
# attached to wsgate, and prints each strace summary with the messages (or
# handshakes) it covered. Run bench/run.sh once first (it builds the tools).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
BIN="$BENCH/target/release"
WORKERS=${1:-1}
SECS=4

TMP=$(mktemp -d /tmp/wsgate-syscalls.XXXXXX)
declare -A PID=()
cleanup() {
    local name
    for name in "${!PID[@]}"; do stop "$name"; done
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port
ECHO_PORT=$FREE
free_port
PORT=$FREE
WORKERS_KEY=""
# One worker through the environment, so that builds from before
# server.workers run too.
[[ $WORKERS == 1 ]] || WORKERS_KEY="workers = $WORKERS"
cat >"$TMP/wsgate.toml" <<CONF
[server]
$WORKERS_KEY
[limits]
max_connections_per_ip = 0
[[listeners]]
bind = "127.0.0.1:$PORT"
[[routes]]
backends = ["ws://127.0.0.1:$ECHO_PORT"]
origins = ["*"]
max_message_size = "1MiB"
idle_timeout = "1h"
ping_interval = "1h"
CONF
"$BIN/echo" --listen "127.0.0.1:$ECHO_PORT" --threads 1 &
PID[echo]=$!
WSGATE_WORKER_THREADS=$([[ $WORKERS == 1 ]] && echo 1 || echo "") RUST_LOG=warn \
    "${WSGATE_BIN:-$ROOT/target/release/wsgate}" --config "$TMP/wsgate.toml" 2>"$TMP/wsgate.log" &
PID[wsgate]=$!
for ((i = 0; i < 100; i++)); do
    "$BIN/loadgen" --url "ws://127.0.0.1:$PORT/" probe 2>/dev/null && break
    sleep 0.1
done

# traced NAME LOADGEN-ARGS...: strace -c -f on wsgate while loadgen runs.
traced() {
    local name=$1
    shift
    strace -c -f -p "${PID[wsgate]}" -o "$TMP/$name.strace" &
    local tracer=$!
    sleep 0.5
    "$BIN/loadgen" --url "ws://127.0.0.1:$PORT/" "$@" >"$TMP/$name.out"
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    echo "== $name: $(tr '\n' ' ' <"$TMP/$name.out")"
    sed -n '1,40p' "$TMP/$name.strace"
}

for size in 64 4096 65536; do
    traced "throughput-$size" throughput --conns 50 --inflight 8 --size "$size" \
        --warmup 0 --duration "$SECS"
done
traced handshake handshake --concurrency 8 --duration "$SECS"
