#!/usr/bin/env bash
# Soak and chaos test of wsgate (issue 7, point 5); docs/reliability.md says
# what it checks and holds the figures of the last full run.
#
#   scripts/soak.sh              full run, ~7 min: 1 min warm-up round + 5 min soak,
#                                3,000 WebSockets, 100 fallback sessions
#   scripts/soak.sh --quick      ~2 min: 20 s warm-up + 1 min soak, 1,000 WebSockets, 40 sessions
#   scripts/soak.sh --minutes N --conns N --fallback N --kill-every S --down S
#   scripts/soak.sh --quick --max-size 1048576   large binary messages: the relay
#                                splices payloads from 64 KiB on (pipes under chaos)
#
# Starts two echo backends (bench's `echo`) and wsgate in front of both with
# the fallback on, all on 127.0.0.1 with free ports. The driver (bench's
# `soak`) runs a short warm-up round and then the soak, each holding the
# connections with steady traffic while this script kills one backend
# (SIGKILL) every --kill-every seconds and restarts it --down seconds later,
# alternating, so the route always has one backend up. Clients vanish
# mid-frame and some fallback sessions are abandoned. After each round the
# driver waits for wsgate's fds and active gauges to come back, and compares
# its RSS after the soak with its RSS after the warm-up. Then wsgate gets
# SIGTERM and must exit 0, and its log must not mention a panic. Exit 0
# only if every check holds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
BIN="$BENCH/target/release"
COMMAND="scripts/soak.sh${*:+ $*}"

MINUTES=5
CONNS=3000
FALLBACK=100
KILL_EVERY=20
DOWN=3
WARMUP=60
QUICK=0
MAX_SIZE=1024
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --minutes) MINUTES="$2"; shift ;;
        --conns) CONNS="$2"; shift ;;
        --fallback) FALLBACK="$2"; shift ;;
        --kill-every) KILL_EVERY="$2"; shift ;;
        --down) DOWN="$2"; shift ;;
        --max-size) MAX_SIZE="$2"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $QUICK == 1 ]]; then
    MINUTES=1; CONNS=1000; FALLBACK=40; KILL_EVERY=12; WARMUP=20
fi
for n in "$MINUTES" "$CONNS" "$FALLBACK" "$KILL_EVERY" "$DOWN"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "not a whole number: $n" >&2; exit 2; }
done
SOAK_SECS=$((MINUTES * 60))
# The driver's own phases are bounded; this is the outer bound on all of it.
DEADLINE=$((WARMUP + SOAK_SECS + 600))

log() { printf '[soak.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- processes -----------------------------------------------------------------

TMP=$(mktemp -d /tmp/wsgate-soak.XXXXXX)
declare -A PID=()

cleanup() {
    local name
    for name in "${!PID[@]}"; do
        stop "$name"
    done
    if [[ -f $TMP/wsgate.log ]]; then
        mkdir -p "$BENCH/target"
        cp "$TMP/wsgate.log" "$BENCH/target/soak-wsgate.log" || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# wait_listening PORT: until something listens there, at most 10 s.
wait_listening() {
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -n $(ss -Htln "sport = :$1") ]] && return 0
        sleep 0.1
    done
    return 1
}

# start_echo a|b: a fresh echo backend on its port.
start_echo() {
    local port=${ECHO_PORT[$1]}
    "$BIN/echo" --listen "127.0.0.1:$port" --threads 1 2>>"$TMP/echo-$1.log" &
    PID[echo_$1]=$!
    wait_listening "$port" || { log "echo $1 did not come up on $port"; return 1; }
}

# kill_echo a|b: SIGKILL, the way a crashed or OOM-killed backend goes.
kill_echo() {
    local pid=${PID[echo_$1]}
    unset "PID[echo_$1]"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

write_config() {
    cat <<EOF
[server]
shutdown_grace = "5s"

[limits]
# Every client is 127.0.0.1: no per-address cap.
max_connections_per_ip = 0

[[listeners]]
bind = "127.0.0.1:$GATEWAY_PORT"

[admin]
bind = "127.0.0.1:$ADMIN_PORT"

[[routes]]
path = "/"
backends = ["ws://127.0.0.1:${ECHO_PORT[a]}", "ws://127.0.0.1:${ECHO_PORT[b]}"]
origins = ["*"]
fallback = true
fallback_poll_hold = "5s"
fallback_session_timeout = "10s"
fallback_sessions_per_client = 100000
ping_interval = "15s"
connect_timeout = "2s"
EOF
}

# --- main ------------------------------------------------------------------------

log "building wsgate and the bench tools (release)"
(cd "$ROOT" && cargo build --release --quiet)
(cd "$BENCH" && cargo build --release --quiet --bin soak --bin echo)

ulimit -n "$(ulimit -Hn)"
NEED=$((2 * CONNS + 4 * FALLBACK + 500))
if (($(ulimit -n) < NEED)); then
    log "fd limit $(ulimit -n) is too low for $CONNS connections (need $NEED)"
    exit 1
fi

declare -A ECHO_PORT=()
free_port; ECHO_PORT[a]=$FREE
free_port; ECHO_PORT[b]=$FREE
free_port; GATEWAY_PORT=$FREE
free_port; ADMIN_PORT=$FREE
write_config >"$TMP/wsgate.toml"
"$ROOT/target/release/wsgate" check --config "$TMP/wsgate.toml" >/dev/null

start_echo a
start_echo b
RUST_LOG=info "$ROOT/target/release/wsgate" --config "$TMP/wsgate.toml" 2>>"$TMP/wsgate.log" &
PID[wsgate]=$!
for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null || { log "wsgate did not come up"; exit 1; }
GATEWAY_PID=${PID[wsgate]}
log "wsgate pid $GATEWAY_PID on 127.0.0.1:$GATEWAY_PORT, backends on ${ECHO_PORT[a]} and ${ECHO_PORT[b]}"

STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
# Messages of 64 KiB and more are spliced through pipes the relay keeps
# for reuse: up to 16 idle pipes (32 fds) per worker stay open afterwards,
# by design; wsgate runs one worker per CPU here.
FD_SLACK=0
((MAX_SIZE >= 65536)) && FD_SLACK=$((32 * $(nproc)))
"$BIN/soak" --url "ws://127.0.0.1:$GATEWAY_PORT/soak" --gateway-pid "$GATEWAY_PID" \
    --admin "127.0.0.1:$ADMIN_PORT" --conns "$CONNS" --fallback "$FALLBACK" \
    --seconds "$SOAK_SECS" --warmup-seconds "$WARMUP" --poll-hold-secs 5 --max-size "$MAX_SIZE" \
    --fd-slack "$FD_SLACK" \
    >"$TMP/soak.out" &
PID[driver]=$!
DRIVER=${PID[driver]}

# Chaos: while the driver is in its warm-up or soak round, kill a backend
# every KILL_EVERY s and restart it DOWN s later, alternating; none while
# the gateway settles between the rounds or after the last one.
declare -A KILLS=([warmup]=0 [soak]=0)
RESTARTS=0
UNACKED=0
VICTIM=a
ANNOUNCED=0
ACTIVE=""
current_phase() { { grep '^phase ' "$TMP/soak.out" 2>/dev/null || true; } | tail -n 1 | cut -d' ' -f2; }
alive() { kill -0 "$DRIVER" 2>/dev/null; }
while alive && ((SECONDS < DEADLINE)); do
    PHASE=$(current_phase)
    if [[ $PHASE != warmup && $PHASE != soak ]]; then
        ACTIVE=$PHASE
        [[ $PHASE == leave ]] && break
        sleep 0.5
        continue
    fi
    if [[ $ACTIVE != "$PHASE" ]]; then
        ACTIVE=$PHASE
        NEXT_KILL=$((SECONDS + KILL_EVERY))
    fi
    if ((SECONDS >= NEXT_KILL)); then
        # Announce, and kill only once the driver has it on record.
        kill -USR1 "$DRIVER" 2>/dev/null || break
        ANNOUNCED=$((ANNOUNCED + 1))
        for ((i = 0; i < 100; i++)); do
            grep -q "^announced $ANNOUNCED\$" "$TMP/soak.out" && break
            sleep 0.05
        done
        grep -q "^announced $ANNOUNCED\$" "$TMP/soak.out" || UNACKED=$((UNACKED + 1))
        kill_echo "$VICTIM"
        KILLS[$PHASE]=$((KILLS[$PHASE] + 1))
        log "$PHASE: killed backend $VICTIM (kill $ANNOUNCED); restarting it in ${DOWN}s"
        sleep "$DOWN"
        start_echo "$VICTIM"
        RESTARTS=$((RESTARTS + 1))
        [[ $VICTIM == a ]] && VICTIM=b || VICTIM=a
        NEXT_KILL=$((SECONDS + KILL_EVERY))
    fi
    sleep 0.5
done
while alive && ((SECONDS < DEADLINE)); do sleep 0.5; done
if alive; then
    log "the driver is still running after ${DEADLINE}s: stopping it"
    stop driver
    DRIVER_RC=124
else
    DRIVER_RC=0
    wait "$DRIVER" || DRIVER_RC=$?
    unset "PID[driver]"
fi

# wsgate must still be running, then drain and exit 0 on SIGTERM.
GATEWAY_ALIVE=yes
kill -0 "$GATEWAY_PID" 2>/dev/null || GATEWAY_ALIVE=no
GATEWAY_RC=gone
if [[ $GATEWAY_ALIVE == yes ]]; then
    kill -TERM "$GATEWAY_PID"
    for ((i = 0; i < 150; i++)); do
        kill -0 "$GATEWAY_PID" 2>/dev/null || break
        sleep 0.1
    done
    GATEWAY_RC=0
    if kill -0 "$GATEWAY_PID" 2>/dev/null; then
        GATEWAY_RC="still running 15 s after SIGTERM"
        stop wsgate
    else
        wait "$GATEWAY_PID" || GATEWAY_RC=$?
        unset "PID[wsgate]"
    fi
fi
# The balancer's "panic mode" (every backend out of rotation, as when kills
# come faster than restarts) is a log line, not a panic.
panics() { grep -i 'panic' "$TMP/wsgate.log" | grep -v 'panic mode' || true; }
PANICS=$(panics | wc -l)
LOG_LINES=$(wc -l <"$TMP/wsgate.log")
LOG_ERRORS=$(grep -c ' ERROR ' "$TMP/wsgate.log" || true)
LOG_WARNS=$(grep -c ' WARN ' "$TMP/wsgate.log" || true)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    COMMIT="$COMMIT + uncommitted changes in src/"
fi

{
    echo "command   $COMMAND"
    echo "started   $STARTED"
    echo "commit    $COMMIT"
    echo "machine   $(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg)"
    grep -v -e '^phase ' -e '^announced ' "$TMP/soak.out" || true
    echo "script"
    echo "  backend_kills               warm-up ${KILLS[warmup]}, soak ${KILLS[soak]} (SIGKILL, alternating, every ${KILL_EVERY}s, each restarted after ${DOWN}s)"
    echo "  backend_restarts            $RESTARTS"
    echo "  driver_exit                 $DRIVER_RC"
    echo "  wsgate_alive_at_end         $GATEWAY_ALIVE"
    echo "  wsgate_exit_after_sigterm   $GATEWAY_RC"
    echo "  wsgate_log                  $LOG_LINES lines, $LOG_WARNS WARN, $LOG_ERRORS ERROR, $PANICS mentioning panic"
} | tee "$TMP/summary.txt"
mkdir -p "$BENCH/target"
cp "$TMP/summary.txt" "$BENCH/target/soak-last.txt"

FAILED=()
[[ $DRIVER_RC == 0 ]] || FAILED+=("driver exit $DRIVER_RC (its checks are listed above)")
[[ $GATEWAY_ALIVE == yes ]] || FAILED+=("wsgate died during the soak")
[[ $GATEWAY_RC == 0 ]] || FAILED+=("wsgate exit after SIGTERM: $GATEWAY_RC")
[[ $PANICS == 0 ]] || FAILED+=("wsgate log mentions panic $PANICS times")
((KILLS[soak] > 0)) || FAILED+=("no backend was killed in the soak: too short for --kill-every")
((UNACKED == 0)) || FAILED+=("$UNACKED kills were not acknowledged by the driver within 5 s")
if ((${#FAILED[@]} > 0)); then
    panics | head -n 5 >&2
    for f in "${FAILED[@]}"; do log "FAILED: $f"; done
    log "summary in bench/target/soak-last.txt, wsgate log in bench/target/soak-wsgate.log"
    exit 1
fi
log "PASS (summary in bench/target/soak-last.txt)"
