#!/usr/bin/env bash
# io_uring and splice(2) measured on a relay prototype (issue #18, points 3
# and 4). Not wsgate's relay: bench/src/bin/relaysplice.rs (tokio, epoll;
# copy or splice) and bench/src/bin/relayuring.rs (monoio; io_uring or its
# epoll driver) are minimal frame-aware pass-throughs of the same logic.
#
#   bench/relay_engines.sh              5 rounds (~8 minutes)
#   bench/relay_engines.sh --rounds N   any number of rounds
#   bench/relay_engines.sh --quick      2 rounds, short windows
#   bench/relay_engines.sh --no-uring   without the monoio build (feature uring)
#   bench/relay_engines.sh --strace     then syscalls per relayed message
#                                       (strace -c -f; counts only, not CPU)
#
# The bench echo backend and the load generator's throughput scenario (50
# connections x 8 in flight, as bench/run.sh) drive each relay; the figure is
# the relay's CPU (utime + stime, /proc/PID/stat at the window's edges) per
# relayed message, each echo being two. Sizes 64 B and 4 KiB compare the
# engines (tokio epoll, monoio epoll, monoio io_uring; all copy); 64 KiB,
# 256 KiB and 1 MiB compare splice with copy (both on tokio). The variants'
# order rotates from round to round; the table shows median (min-max).
# Prints a markdown table (also saved to bench/target/relay-engines.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
BIN="$BENCH/target/release"
COMMAND="bench/relay_engines.sh $*"

ROUNDS=5
WARMUP=1
WINDOW=4
URING=1
STRACE=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift ;;
        --quick) ROUNDS=2; WARMUP=0.5; WINDOW=2 ;;
        --no-uring) URING=0 ;;
        --strace) STRACE=1 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
CONNS=50
INFLIGHT=8
LOADGEN_TIMEOUT=120

log() { printf '[relay-engines %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

TMP=$(mktemp -d /tmp/wsgate-relay-engines.XXXXXX)
declare -A PID=() URL=()
cleanup() {
    local name
    for name in "${!PID[@]}"; do stop "$name"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the bench tools (release$([[ $URING == 1 ]] && echo ', feature uring'))"
if [[ $URING == 1 ]]; then
    (cd "$BENCH" && cargo build --release --quiet --features uring)
else
    (cd "$BENCH" && cargo build --release --quiet)
fi

# wait_ready URL: until one echo works, at most 10 s.
wait_ready() {
    local i
    for ((i = 0; i < 100; i++)); do
        "$BIN/loadgen" --url "$1" probe 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# start_relay NAME COMMAND...: the relay prints its port on its first line.
start_relay() {
    local name=$1 i port=""
    shift
    "$@" >"$TMP/$name.port" 2>"$TMP/$name.log" &
    PID[$name]=$!
    for ((i = 0; i < 100; i++)); do
        port=$(head -n 1 "$TMP/$name.port")
        [[ -n $port ]] && break
        kill -0 "${PID[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $port ]]; then
        log "$name did not start: $(tail -n 3 "$TMP/$name.log")"
        unset "PID[$name]"
        return 1
    fi
    URL[$name]="ws://127.0.0.1:$port/"
    wait_ready "${URL[$name]}" || { log "$name does not relay"; return 1; }
}

free_port
ECHO_PORT=$FREE
"$BIN/echo" --listen "127.0.0.1:$ECHO_PORT" --threads 1 &
PID[echo]=$!
wait_ready "ws://127.0.0.1:$ECHO_PORT/" || { log "echo did not come up"; exit 1; }

BACKEND=(--backend "127.0.0.1:$ECHO_PORT")
start_relay tokio-copy "$BIN/relaysplice" "${BACKEND[@]}" --mode copy
start_relay tokio-splice "$BIN/relaysplice" "${BACKEND[@]}" --mode splice
ENGINES=(tokio-copy)
URING_NOTE=""
if [[ $URING == 1 ]]; then
    start_relay monoio-epoll "$BIN/relayuring" "${BACKEND[@]}" --driver legacy &&
        ENGINES+=(monoio-epoll)
    if start_relay monoio-uring "$BIN/relayuring" "${BACKEND[@]}" --driver uring; then
        ENGINES+=(monoio-uring)
    else
        URING_NOTE="monoio-uring did not start: $(tail -n 1 "$TMP/monoio-uring.log")"
    fi
fi
SPLICES=(tokio-copy tokio-splice)

RESULTS="$TMP/results.tsv"
: >"$RESULTS"

# rotated ROUND ITEMS...: the items rotated left by ROUND.
rotated() {
    local r=$1
    shift
    local items=("$@") n=$# i
    for ((i = 0; i < n; i++)); do
        printf '%s\n' "${items[$(((i + r) % n))]}"
    done
}

ulimit -n "$(ulimit -Hn)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
for ((round = 0; round < ROUNDS; round++)); do
    log "round $((round + 1)) of $ROUNDS"
    for size in 64 4096; do
        mapfile -t order < <(rotated "$round" "${ENGINES[@]}")
        for variant in "${order[@]}"; do measure_relay "$variant" "$size" "$round"; done
    done
    for size in 65536 262144 1048576; do
        mapfile -t order < <(rotated "$round" "${SPLICES[@]}")
        for variant in "${order[@]}"; do measure_relay "$variant" "$size" "$round"; done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# traced VARIANT SIZE: syscalls per relayed message under strace -c -f (the
# calls cover the whole loadgen run, set-up included; the messages only its
# window, as bench/syscalls.sh).
traced() {
    local variant=$1 size=$2 tracer echoes
    strace -c -f -p "${PID[$variant]}" -o "$TMP/strace" &
    tracer=$!
    sleep 0.5
    echoes=$("$BIN/loadgen" --url "${URL[$variant]}" throughput --conns "$CONNS" \
        --inflight "$INFLIGHT" --size "$size" --warmup 0 --duration 3 |
        awk '$1 == "echoes" { print $2 }')
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    python3 - "$TMP/strace" "$echoes" "$variant" "$size" <<'PY'
import sys
path, echoes, variant, size = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
msgs = 2 * echoes
calls = {}
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total" and f[3].isdigit():
        calls[f[-1]] = int(f[3])
total = sum(calls.values())
top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
parts = ", ".join(f"{name} {n / msgs:.2f}" for name, n in top)
print(f"| {size} | {variant} | {total / msgs:.2f} | {parts} |")
PY
}

if [[ $STRACE == 1 ]]; then
    STRACE_TABLE="$TMP/strace.md"
    {
        echo "| size (B) | relay | syscalls per relayed message | largest |"
        echo "|---|---|---:|---|"
        for variant in "${ENGINES[@]}"; do traced "$variant" 64; done
        for size in 65536 1048576; do
            for variant in "${SPLICES[@]}"; do traced "$variant" "$size"; done
        done
    } >"$STRACE_TABLE"
fi

REPORT="$BENCH/target/relay-engines.md"
{
    echo "Run of \`$COMMAND\`, started $STARTED, $ROUNDS rounds, $CONNS connections x $INFLIGHT in flight, ${WINDOW} s windows."
    echo
    echo "- $(rustc --version); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
    echo "- load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
    [[ -n $URING_NOTE ]] && echo "- $URING_NOTE"
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

def label(size):
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"

def cell(values, fmt):
    return f"{fmt.format(median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"

print("| size | relay | CPU µs per relayed message | echoes/s | runs |")
print("|---|---|---:|---:|---:|")
for (size, variant) in sorted(cpu, key=lambda k: (k[0], k[1])):
    print(f"| {label(size)} | {variant} | {cell(cpu[size, variant], '{:.2f}')} "
          f"| {cell(rate[size, variant], '{:.0f}')} | {len(cpu[size, variant])} |")
print()
print("| size | ratio of medians (CPU per message) | |")
print("|---|---|---:|")
pairs = [("monoio-uring", "tokio-copy"), ("monoio-uring", "monoio-epoll"),
         ("monoio-epoll", "tokio-copy"), ("tokio-splice", "tokio-copy")]
for size in sorted({s for s, _ in cpu}):
    for a, b in pairs:
        if (size, a) in cpu and (size, b) in cpu:
            ratio = median(cpu[size, a]) / median(cpu[size, b])
            print(f"| {label(size)} | {a} ÷ {b} | {ratio:.2f}× |")
PY
    if [[ $STRACE == 1 ]]; then
        echo
        echo "Syscalls (strace -c -f, 3 s windows, one run each):"
        echo
        cat "$STRACE_TABLE"
    fi
} | tee "$REPORT"
cp "$RESULTS" "$BENCH/target/relay-engines.tsv"
log "table saved to bench/target/relay-engines.md, raw results to bench/target/relay-engines.tsv"
