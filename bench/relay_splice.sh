#!/usr/bin/env bash
# splice(2) in wsgate's relay, on against off (issue #18, point 4).
#
#   bench/relay_splice.sh              5 rounds (~4 minutes)
#   bench/relay_splice.sh --rounds N   any number of rounds
#   bench/relay_splice.sh --quick      2 rounds, short windows
#
# Two wsgate processes (one worker each, plain listener, route to the bench
# echo backend over ws://): "copy" runs with WSGATE_NO_SPLICE=1, "splice"
# without. The load generator's throughput scenario (50 connections x 8 in
# flight, as bench/run.sh) drives each at 64 KiB, 256 KiB and 1 MiB; the
# figure is wsgate's CPU (utime + stime, /proc/PID/stat at the window's
# edges) per relayed message, each echo being two. The variants' order
# rotates from round to round; the table shows median (min-max).
# Prints a markdown table (also saved to bench/target/relay-splice.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
BIN="$BENCH/target/release"
COMMAND="bench/relay_splice.sh $*"

ROUNDS=5
WARMUP=1
WINDOW=4
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift ;;
        --quick) ROUNDS=2; WARMUP=0.5; WINDOW=2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
CONNS=50
INFLIGHT=8
LOADGEN_TIMEOUT=120
SIZES=(65536 262144 1048576)
VARIANTS=(copy splice)

log() { printf '[relay-splice %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

TMP=$(mktemp -d /tmp/wsgate-relay-splice.XXXXXX)
declare -A PID=() URL=()
cleanup() {
    local name
    for name in "${!PID[@]}"; do stop "$name"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building wsgate and the bench tools (release)"
(cd "$ROOT" && cargo build --release --quiet)
(cd "$BENCH" && cargo build --release --quiet)

# wait_ready URL: until one echo works, at most 10 s.
wait_ready() {
    local i
    for ((i = 0; i < 100; i++)); do
        "$BIN/loadgen" --url "$1" probe 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

free_port
ECHO_PORT=$FREE
"$BIN/echo" --listen "127.0.0.1:$ECHO_PORT" --threads 1 &
PID[echo]=$!
wait_ready "ws://127.0.0.1:$ECHO_PORT/" || { log "echo did not come up"; exit 1; }

# start_wsgate NAME [ENV=VALUE...]: one worker, plain listener, echo route.
start_wsgate() {
    local name=$1
    shift
    free_port
    cat >"$TMP/$name.toml" <<EOF
[server]
shutdown_grace = "1s"
workers = 1

[limits]
max_connections_per_ip = 0

[[listeners]]
bind = "127.0.0.1:$FREE"

[[routes]]
path = "/"
backends = ["ws://127.0.0.1:$ECHO_PORT"]
origins = ["*"]
max_message_size = "1MiB"
idle_timeout = "1h"
ping_interval = "1h"
EOF
    env "$@" RUST_LOG=warn "$ROOT/target/release/wsgate" --config "$TMP/$name.toml" \
        2>>"$TMP/$name.log" &
    PID[$name]=$!
    URL[$name]="ws://127.0.0.1:$FREE/"
    wait_ready "${URL[$name]}" || { log "$name does not relay: $(tail -n 3 "$TMP/$name.log")"; exit 1; }
}

start_wsgate copy WSGATE_NO_SPLICE=1
start_wsgate splice

RESULTS="$TMP/results.tsv"
: >"$RESULTS"

ulimit -n "$(ulimit -Hn)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
for ((round = 0; round < ROUNDS; round++)); do
    log "round $((round + 1)) of $ROUNDS"
    for size in "${SIZES[@]}"; do
        order=("${VARIANTS[@]}")
        ((round % 2 == 1)) && order=("${VARIANTS[1]}" "${VARIANTS[0]}")
        for variant in "${order[@]}"; do measure_relay "$variant" "$size" "$round"; done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

REPORT="$BENCH/target/relay-splice.md"
{
    echo "Command: \`$COMMAND\`, $STARTED to $(date -u '+%H:%M UTC'); wsgate" \
        "$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (modified)'),"
    echo "$(rustc --version), $(nproc) cores, kernel $(uname -r); load average $LOAD_BEFORE before, $LOAD_AFTER after."
    echo
    python3 - "$RESULTS" <<'PY'
import sys
from collections import defaultdict
from statistics import median

cpu, rate = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    size, variant, _, c, r = line.rstrip("\n").split("\t")
    cpu[int(size), variant].append(float(c))
    rate[int(size), variant].append(float(r))

def cell(values, fmt):
    return f"{fmt.format(median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"

print("| size | wsgate | CPU µs per relayed message | echoes/s | runs |")
print("|---|---|---:|---:|---:|")
for (size, variant) in sorted(cpu):
    print(f"| {size // 1024} KiB | {variant} | {cell(cpu[size, variant], '{:.1f}')} "
          f"| {cell(rate[size, variant], '{:.0f}')} | {len(cpu[size, variant])} |")
print()
print("| size | splice ÷ copy, CPU per message | splice ÷ copy, echoes/s |")
print("|---|---:|---:|")
for size in sorted({s for s, _ in cpu}):
    if (size, "copy") in cpu and (size, "splice") in cpu:
        c = median(cpu[size, "splice"]) / median(cpu[size, "copy"])
        r = median(rate[size, "splice"]) / median(rate[size, "copy"])
        print(f"| {size // 1024} KiB | {c:.2f}× | {r:.2f}× |")
PY
} | tee "$REPORT"
cp "$RESULTS" "$BENCH/target/relay-splice.tsv"
log "table saved to bench/target/relay-splice.md, raw results to bench/target/relay-splice.tsv"
