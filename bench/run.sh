#!/usr/bin/env bash
# Side-by-side benchmark of wsgate, nginx and HAProxy as plain WebSocket
# reverse proxies, plus a direct (no proxy) baseline. Issue #6.
#
#   bench/run.sh            full run (5 rounds, ~15-20 minutes)
#   bench/run.sh --quick    a few minutes: 2 rounds, short windows, 2,000 idle conns
#   bench/run.sh --rounds N override the number of rounds
#   bench/run.sh --variants also wsgate with its default workers (one per
#                           CPU) and with the work-stealing runtime (2 threads)
#
# Everything runs on 127.0.0.1 with ports picked free at run time. Each proxy
# gets one worker (nginx worker_processes 1, HAProxy nbthread 1, wsgate
# workers = 1) and no access log. Scenarios alternate the order
# of the targets from round to round; the table shows median (min–max).
# Prints one markdown table (also saved to bench/target/last-run.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
BIN="$BENCH/target/release"
COMMAND="bench/run.sh $*"

QUICK=0
VARIANTS=0
ROUNDS=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --variants) VARIANTS=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

if [[ $QUICK == 1 ]]; then
    ROUNDS=${ROUNDS:-2}; WARMUP=0.5; WINDOW=2; HS_SECS=2; IDLE_CONNS=2000; IDLE_ROUNDS=1
else
    ROUNDS=${ROUNDS:-5}; WARMUP=1; WINDOW=5; HS_SECS=4; IDLE_CONNS=9000; IDLE_ROUNDS=3
fi
THROUGHPUT_CONNS=50
INFLIGHT=8
LATENCY_CONNS=20
LATENCY_RATE=2000   # messages/s in total: moderate, well below saturation
LATENCY_SIZE=4096
HANDSHAKE_WORKERS=8
LOADGEN_TIMEOUT=300 # seconds; no single measurement may take longer
TARGETS=(direct wsgate nginx haproxy)
PROXIES=(wsgate nginx haproxy)
# The independent bench's shapes (issue #18): a tokio-tungstenite backend
# that echoes whole messages, under /t/ on every proxy, driven by tungload.
TUNG_CONNS=50
TUNG_RATE=5000
TUNG_LATENCY_CONNS=20
TUNG_HANDSHAKE_LOOPS=20

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- prerequisites ----------------------------------------------------------

install_deps() {
    local missing=()
    command -v nginx >/dev/null || missing+=(nginx)
    command -v haproxy >/dev/null || missing+=(haproxy)
    command -v openssl >/dev/null || missing+=(openssl)
    [[ ${#missing[@]} -eq 0 ]] && return
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    log "installing ${missing[*]} via apt"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

add_variants() {
    # wsgate-w0: server.workers = 0 (one per CPU, the default);
    # wsgate-mt: WSGATE_WORKER_THREADS=2, the work-stealing runtime.
    TARGETS=(direct wsgate wsgate-w0 wsgate-mt nginx haproxy)
    PROXIES=(wsgate wsgate-w0 wsgate-mt nginx haproxy)
}

build() {
    log "building wsgate and the bench tools (release)"
    (cd "$ROOT" && cargo build --release --quiet)
    (cd "$BENCH" && cargo build --release --quiet)
}

# --- processes ---------------------------------------------------------------

TMP=$(mktemp -d /tmp/wsgate-bench.XXXXXX)
chmod 755 "$TMP"
declare -A PID=()

cleanup() {
    local name
    for name in "${!PID[@]}"; do
        stop "$name"
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# wait_ready URL: until one echo works, at most 10 s.
wait_ready() {
    local i
    for ((i = 0; i < 100; i++)); do
        "$BIN/loadgen" --url "$1" probe 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

write_configs() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 30 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 2>/dev/null
    chmod 644 "$TMP/key.pem"
    cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/haproxy.pem"

    local variant
    for variant in "${PROXIES[@]}"; do
        [[ $variant == wsgate* ]] || continue
        wsgate_config "$variant" >"$TMP/$variant.toml"
    done

    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events {
    worker_connections 19500;
}
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    ssl_protocols TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen 127.0.0.1:${PORT[nginx]};
        listen 127.0.0.1:${TLS_PORT[nginx]} ssl;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        location /t/ {
            proxy_pass http://127.0.0.1:$TUNG_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
        location / {
            proxy_pass http://127.0.0.1:$ECHO_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
    }
}
EOF

    cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 9800
    tune.ssl.cachesize 0
    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
defaults
    mode http
    maxconn 9800
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
frontend ws
    bind 127.0.0.1:${PORT[haproxy]}
    bind 127.0.0.1:${TLS_PORT[haproxy]} ssl crt $TMP/haproxy.pem alpn http/1.1
    use_backend tung if { path_beg /t/ }
    default_backend echo
backend echo
    server echo 127.0.0.1:$ECHO_PORT maxconn 9800
backend tung
    server tung 127.0.0.1:$TUNG_PORT maxconn 9800
EOF
}

# wsgate_config TARGET: the config of one wsgate variant.
wsgate_config() {
    local target=$1 workers=1
    [[ $target == wsgate-w0 ]] && workers=0
    cat <<EOF
[server]
shutdown_grace = "1s"
workers = $workers

# Every client is 127.0.0.1: the per-address cap (1000 by default) would
# refuse the idle test's 9,000 connections. nginx and HAProxy get no such
# cap either.
[limits]
max_connections_per_ip = 0

[[listeners]]
bind = "127.0.0.1:${PORT[$target]}"

[[listeners]]
bind = "127.0.0.1:${TLS_PORT[$target]}"
[listeners.tls]
certs = [{ cert = "cert.pem", key = "key.pem" }]

[[routes]]
path = "/t"
backends = ["ws://127.0.0.1:$TUNG_PORT"]
origins = ["*"]
max_message_size = "1MiB"
idle_timeout = "1h"
ping_interval = "1h"

[[routes]]
path = "/"
backends = ["ws://127.0.0.1:$ECHO_PORT"]
origins = ["*"]
max_message_size = "1MiB"
idle_timeout = "1h"
ping_interval = "1h"
EOF
}

# start NAME: a fresh process; fills PID[NAME] and WATCH[NAME].
declare -A WATCH=()
start() {
    case "$1" in
        echo)
            "$BIN/echo" --listen "127.0.0.1:$ECHO_PORT" --threads 1 &
            PID[echo]=$!
            WATCH[direct]=""
            ;;
        tung)
            "$BIN/echo_tungstenite" --listen "127.0.0.1:$TUNG_PORT" --threads 1 &
            PID[tung]=$!
            ;;
        wsgate*)
            if [[ $1 == wsgate-mt ]]; then
                WSGATE_WORKER_THREADS=2 RUST_LOG=warn "$ROOT/target/release/wsgate" \
                    --config "$TMP/$1.toml" 2>>"$TMP/$1.log" &
            else
                RUST_LOG=warn "$ROOT/target/release/wsgate" \
                    --config "$TMP/$1.toml" 2>>"$TMP/$1.log" &
            fi
            PID[$1]=$!
            WATCH[$1]="--watch ${PID[$1]}"
            ;;
        nginx)
            nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" &
            PID[nginx]=$!
            ;;
        haproxy)
            haproxy -f "$TMP/haproxy.cfg" -db 2>>"$TMP/haproxy.log" &
            PID[haproxy]=$!
            WATCH[haproxy]="--watch ${PID[haproxy]}"
            ;;
    esac
    local url=${URL[$1]:-ws://127.0.0.1:$ECHO_PORT/}
    wait_ready "$url" || { echo "$1 did not come up" >&2; return 1; }
    if [[ $1 == nginx ]]; then
        # Master and worker: the worker relays, the master is counted too.
        local children
        children=$(cat "/proc/${PID[nginx]}/task/${PID[nginx]}/children")
        WATCH[nginx]="--watch ${PID[nginx]}$(printf ' --watch %s' $children)"
    fi
}

# --- measuring ---------------------------------------------------------------

RESULTS="$TMP/results.tsv"
: >"$RESULTS"
# The metrics a failed or skipped measurement is recorded under.
NOTE_KEYS="msgs_per_s cpu_us_per_msg rtt_p50_us rtt_p99_us added_p50_us added_p99_us handshakes_per_s cpu_us_per_handshake rss_kib_per_conn"

note() { # note SCENARIO TARGET ROUND TEXT
    local key
    for key in $NOTE_KEYS; do
        printf '%s.%s\t%s\t%s\t%s\n' "$1" "$key" "$2" "$3" "$4" >>"$RESULTS"
    done
}

# measure SCENARIO TARGET ROUND URL LOADGEN-ARGS...: one loadgen run, recorded.
measure() {
    local scenario=$1 target=$2 round=$3 url=$4
    shift 4
    local out key value
    # shellcheck disable=SC2086  # WATCH holds several words on purpose
    if out=$(timeout "$LOADGEN_TIMEOUT" "$BIN/loadgen" --url "$url" ${WATCH[$target]:-} \
        --clk-tck "$(getconf CLK_TCK)" "$@" 2>>"$TMP/loadgen.err"); then
        while read -r key value; do
            printf '%s.%s\t%s\t%s\t%s\n' "$scenario" "$key" "$target" "$round" "$value" >>"$RESULTS"
        done <<<"$out"
    else
        log "$scenario on $target (round $round) failed: $(tail -n 1 "$TMP/loadgen.err")"
        note "$scenario" "$target" "$round" failed
    fi
}

# tmeasure SCENARIO TARGET ROUND URL TUNGLOAD-ARGS...: one tungload run.
tmeasure() {
    local scenario=$1 target=$2 round=$3 url=$4
    shift 4
    local out key value
    # shellcheck disable=SC2086  # WATCH holds several words on purpose
    if out=$(timeout "$LOADGEN_TIMEOUT" "$BIN/tungload" --url "$url" ${WATCH[$target]:-} \
        --clk-tck "$(getconf CLK_TCK)" "$@" 2>>"$TMP/loadgen.err"); then
        while read -r key value; do
            printf '%s.%s\t%s\t%s\t%s\n' "$scenario" "$key" "$target" "$round" "$value" >>"$RESULTS"
        done <<<"$out"
    else
        log "$scenario on $target (round $round) failed: $(tail -n 1 "$TMP/loadgen.err")"
        note "$scenario" "$target" "$round" failed
    fi
}

# tung_url TARGET: where the tungstenite shapes connect through TARGET.
tung_url() {
    case "$1" in
        direct) echo "ws://127.0.0.1:$TUNG_PORT/t/" ;;
        *) echo "${URL[$1]}t/" ;;
    esac
}

# The independent bench's shapes, on the /t/ route (tungstenite backend).
run_tung_round() {
    local round=$1 target size name
    local order
    mapfile -t order < <(rotated "$round" "${TARGETS[@]}")
    local window=(--warmup "$WARMUP" --duration "$WINDOW")
    for size in 64 4096 65536; do
        case $size in 64) name=tt64 ;; 4096) name=tt4k ;; *) name=tt64k ;; esac
        for target in "${order[@]}"; do
            tmeasure "$name" "$target" "$round" "$(tung_url "$target")" "${window[@]}" throughput \
                --conns "$TUNG_CONNS" --inflight "$INFLIGHT" --size "$size"
        done
    done
    for target in "${order[@]}"; do
        tmeasure tlat "$target" "$round" "$(tung_url "$target")" "${window[@]}" rate \
            --conns "$TUNG_LATENCY_CONNS" --rate "$TUNG_RATE" --size "$LATENCY_SIZE"
    done
    for target in "${order[@]}"; do
        tmeasure ths "$target" "$round" "$(tung_url "$target")" --duration "$HS_SECS" handshake \
            --concurrency "$TUNG_HANDSHAKE_LOOPS"
    done
}

# rotated ROUND ITEMS...: the items rotated left by ROUND.
rotated() {
    local r=$1
    shift
    local items=("$@") n=$# i
    for ((i = 0; i < n; i++)); do
        printf '%s\n' "${items[$(((i + r) % n))]}"
    done
}

run_round() {
    local round=$1 target tls_url
    local order
    mapfile -t order < <(rotated "$round" "${TARGETS[@]}")
    log "round $round of $ROUNDS: ${order[*]}"
    local load=(--warmup "$WARMUP" --duration "$WINDOW" --conns "$THROUGHPUT_CONNS")
    for target in "${order[@]}"; do
        measure tp64 "$target" "$round" "${URL[$target]}" throughput "${load[@]}" --inflight "$INFLIGHT" --size 64
    done
    for target in "${order[@]}"; do
        measure tp4k "$target" "$round" "${URL[$target]}" throughput "${load[@]}" --inflight "$INFLIGHT" --size 4096
    done
    for target in "${order[@]}"; do
        measure tp64k "$target" "$round" "${URL[$target]}" throughput "${load[@]}" --inflight "$INFLIGHT" --size 65536
    done
    # Latency: each proxy runs paired with direct (the same load on both at
    # once), so the added latency is measured under the same conditions.
    local latency=(rate --warmup "$WARMUP" --duration "$WINDOW" --conns "$LATENCY_CONNS"
        --rate "$LATENCY_RATE" --size "$LATENCY_SIZE")
    for target in "${order[@]}"; do
        if [[ $target == direct ]]; then
            measure lat "$target" "$round" "${URL[direct]}" "${latency[@]}"
        else
            measure lat "$target" "$round" "${URL[$target]}" "${latency[@]}" --baseline-url "${URL[direct]}"
        fi
    done
    for target in "${order[@]}"; do
        measure hs "$target" "$round" "${URL[$target]}" handshake --concurrency "$HANDSHAKE_WORKERS" --duration "$HS_SECS"
    done
    for target in "${order[@]}"; do
        [[ $target == direct ]] && continue
        tls_url=${TLS_URL[$target]:-}
        if [[ -z $tls_url ]]; then
            note tls4k "$target" "$round" "n/a (TLS not merged)"
            note hstls "$target" "$round" "n/a (TLS not merged)"
            continue
        fi
        measure tls4k "$target" "$round" "$tls_url" throughput "${load[@]}" --inflight "$INFLIGHT" --size 4096
        measure hstls "$target" "$round" "$tls_url" handshake --concurrency "$HANDSHAKE_WORKERS" --duration "$HS_SECS"
    done
}

# Memory per idle WebSocket: a fresh proxy process each time.
run_idle() {
    local round=$1 target order
    mapfile -t order < <(rotated "$round" "${PROXIES[@]}")
    for target in "${order[@]}"; do
        log "idle connections: $IDLE_CONNS through a fresh $target (round $round)"
        stop "$target"
        start "$target"
        sleep 1
        measure idle "$target" "$round" "${URL[$target]}" hold --conns "$IDLE_CONNS" --concurrency 64 --settle 2
        # The independent bench's shape: browser-sized upgrade headers, no
        # message ever sent; then the same with TLS on the client leg.
        stop "$target"
        start "$target"
        sleep 1
        measure idleb "$target" "$round" "${URL[$target]}" --browser-headers hold \
            --conns "$IDLE_CONNS" --concurrency 64 --settle 2 --silent
        stop "$target"
        start "$target"
        sleep 1
        measure idlebtls "$target" "$round" "${TLS_URL[$target]}" --browser-headers hold \
            --conns "$IDLE_CONNS" --concurrency 64 --settle 2 --silent
    done
}

# --- main ----------------------------------------------------------------------

install_deps
[[ $VARIANTS == 1 ]] && add_variants
build
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < 2 * IDLE_CONNS + 100)); then
    log "fd limit $(ulimit -n) is too low for $IDLE_CONNS idle connections"
    exit 1
fi

free_port
ECHO_PORT=$FREE
declare -A PORT=() TLS_PORT=() URL=() TLS_URL=()
for target in "${PROXIES[@]}"; do
    free_port
    PORT[$target]=$FREE
    free_port
    TLS_PORT[$target]=$FREE
    URL[$target]="ws://127.0.0.1:${PORT[$target]}/"
    TLS_URL[$target]="wss://127.0.0.1:${TLS_PORT[$target]}/"
done
URL[direct]="ws://127.0.0.1:$ECHO_PORT/"
free_port
TUNG_PORT=$FREE
URL[tung]="ws://127.0.0.1:$TUNG_PORT/"
write_configs

start echo
start tung
for target in "${PROXIES[@]}"; do
    start "$target"
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
for ((round = 0; round < ROUNDS; round++)); do
    run_round "$round"
    run_tung_round "$round"
done
for ((round = 0; round < IDLE_ROUNDS; round++)); do
    run_idle "$round"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

REPORT="$BENCH/target/last-run.md"
{
    echo "Run of \`$COMMAND\`, started $STARTED, $ROUNDS rounds (idle: $IDLE_ROUNDS × $IDLE_CONNS connections)."
    echo
    echo "- wsgate $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (modified)'), $(rustc --version)"
    echo "- $(nginx -v 2>&1), $(haproxy -v | head -n 1 | cut -d' ' -f1-3)"
    echo "- $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
    echo "- load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
    echo
    "$BIN/report" "$RESULTS"
} | tee "$REPORT"
cp "$RESULTS" "$BENCH/target/last-run.tsv"
log "table saved to bench/target/last-run.md, raw results to bench/target/last-run.tsv"
