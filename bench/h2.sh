#!/usr/bin/env bash
# HTTP/2 side by side (issue #12): wsgate, nginx and HAProxy all serving h2
# on TLS, in front of the same HTTP/1.1 backends.
#
#   bench/h2.sh            5 rounds (~6 minutes)
#   bench/h2.sh --rounds N
#
# Scenarios, each round in rotated target order:
#   h2get   h2load GETs (-c 8 -m 16) through each proxy to a small nginx
#           origin; requests/s and the proxy's CPU per request.
#   h1get   the same over HTTP/1.1 on TLS (h2load --h1, -c 8), to tell the
#           cost of HTTP/2 from the cost of a proxied request.
#   h2ws64, h2ws4k
#           WebSocket over HTTP/2 (RFC 8441) echo through wsgate and HAProxy
#           (nginx has no RFC 8441): 50 WebSockets, 10 per HTTP/2
#           connection, 8 messages in flight each; echoes/s and the proxy's
#           CPU per relayed message.
#   tls4k   the same echo load over HTTP/1.1 WebSockets on TLS, for scale.
# Every proxy runs one worker thread and opens one backend connection per
# request (nginx's default; HAProxy: http-reuse never, http-server-close);
# nginx's per-connection request cap is lifted (h2load does not reconnect).
# Prints one markdown table (also bench/target/last-h2.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
BIN="$BENCH/target/release"
COMMAND="bench/h2.sh $*"
ROUNDS=5
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
H2GET_REQS=20000
WARMUP=1
WINDOW=5
PROXIES=(wsgate nginx haproxy)
log() { printf '[h2 bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

for tool in nginx haproxy h2load openssl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (apt install nginx haproxy nghttp2-client openssl)" >&2; exit 1; }
done
log "building wsgate and the bench tools (release)"
(cd "$ROOT" && cargo build --release --quiet)
(cd "$BENCH" && cargo build --release --quiet)

TMP=$(mktemp -d /tmp/wsgate-h2-bench.XXXXXX)
chmod 755 "$TMP"
declare -A PID=() WATCH=() PORT=()
cleanup() {
    local name
    for name in "${!PID[@]}"; do stop "$name"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port; ECHO_PORT=$FREE
free_port; ORIGIN_PORT=$FREE
for target in "${PROXIES[@]}"; do free_port; PORT[$target]=$FREE; done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 30 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 2>/dev/null
chmod 644 "$TMP/key.pem"
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/haproxy.pem"
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')

nginx_conf() { # nginx_conf DIR SERVER-BLOCK
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/body; proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi; uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
    ssl_protocols TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    $2
}
EOF
}
nginx_conf "$TMP/origin" "server { listen 127.0.0.1:$ORIGIN_PORT; keepalive_requests 100000; location / { return 200 \"$BODY\"; } }"
nginx_conf "$TMP/nginx" "server { listen 127.0.0.1:${PORT[nginx]} ssl http2; keepalive_requests 1000000; ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem; location / { proxy_pass http://127.0.0.1:$ORIGIN_PORT; proxy_http_version 1.1; } }"
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
    tune.ssl.cachesize 0
    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
frontend h2
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $TMP/haproxy.pem alpn h2,http/1.1
    use_backend echo if { path_beg /ws }
    default_backend origin
backend origin
    http-reuse never
    option http-server-close
    server origin 127.0.0.1:$ORIGIN_PORT
backend echo
    server echo 127.0.0.1:$ECHO_PORT
EOF
cat >"$TMP/wsgate.toml" <<EOF
[server]
shutdown_grace = "1s"
[limits]
max_connections_per_ip = 0

[[listeners]]
bind = "127.0.0.1:${PORT[wsgate]}"
[listeners.tls]
certs = [{ cert = "cert.pem", key = "key.pem" }]

[[routes]]
path = "/ws"
backends = ["ws://127.0.0.1:$ECHO_PORT"]
origins = ["*"]
idle_timeout = "1h"
ping_interval = "1h"

[[routes]]
path = "/"
backends = ["http://127.0.0.1:$ORIGIN_PORT"]
EOF

pids_of() { # the process and its children (nginx: master + worker)
    echo "$1 $(cat "/proc/$1/task/$1/children" 2>/dev/null)"
}
start_all() {
    "$BIN/echo" --listen "127.0.0.1:$ECHO_PORT" --threads 1 & PID[echo]=$!
    nginx -p "$TMP/origin" -c "$TMP/origin/nginx.conf" -e "$TMP/origin/error.log" & PID[origin]=$!
    WSGATE_WORKER_THREADS=1 RUST_LOG=warn "$ROOT/target/release/wsgate" --config "$TMP/wsgate.toml" 2>>"$TMP/wsgate.log" & PID[wsgate]=$!
    nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" & PID[nginx]=$!
    haproxy -f "$TMP/haproxy.cfg" -db 2>>"$TMP/haproxy.log" & PID[haproxy]=$!
    local target i
    for target in "${PROXIES[@]}"; do
        for ((i = 0; i < 100; i++)); do
            h2load -n 1 -c 1 "https://127.0.0.1:${PORT[$target]}/" 2>/dev/null | grep -q '1 succeeded' && break
            sleep 0.1
        done
        WATCH[$target]=$(pids_of "${PID[$target]}")
    done
}

RESULTS="$TMP/results.tsv"
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }
cpu_ticks() { # utime + stime of the given pids
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

get_load() { # get_load SCENARIO TARGET ROUND H2LOAD-ARGS...
    local scenario=$1 target=$2 round=$3 before after out rps
    shift 3
    # shellcheck disable=SC2086
    before=$(cpu_ticks ${WATCH[$target]})
    out=$(h2load -n "$H2GET_REQS" "$@" "https://127.0.0.1:${PORT[$target]}/" 2>&1) || true
    # shellcheck disable=SC2086
    after=$(cpu_ticks ${WATCH[$target]})
    if ! grep -q "status codes: $H2GET_REQS 2xx" <<<"$out"; then
        log "$scenario on $target (round $round) failed: $(grep -E 'requests:|status codes' <<<"$out" | tr '\n' ' ')"
        record "$scenario.reqs_per_s" "$target" "$round" failed
        record "$scenario.cpu_us_per_req" "$target" "$round" failed
        return
    fi
    rps=$(sed -nE 's/^finished in [0-9.]+m?s, ([0-9.]+) req\/s.*/\1/p' <<<"$out")
    record "$scenario.reqs_per_s" "$target" "$round" "$rps"
    record "$scenario.cpu_us_per_req" "$target" "$round" "$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$H2GET_REQS" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')"
}

echo_load() { # echo_load SCENARIO TARGET ROUND URL SIZE
    local out key value watch=""
    for pid in ${WATCH[$2]}; do watch+=" --watch $pid"; done
    # shellcheck disable=SC2086
    if out=$(timeout 120 "$BIN/loadgen" --url "$4" $watch --clk-tck "$(getconf CLK_TCK)" --h2-streams 10 \
        throughput --warmup "$WARMUP" --duration "$WINDOW" --conns 50 --inflight 8 --size "$5" 2>>"$TMP/loadgen.err"); then
        while read -r key value; do record "$1.$key" "$2" "$3" "$value"; done <<<"$out"
    else
        log "$1 on $2 (round $3) failed: $(tail -n 1 "$TMP/loadgen.err")"
        record "$1.msgs_per_s" "$2" "$3" failed
        record "$1.cpu_us_per_msg" "$2" "$3" failed
    fi
}

rotated() { local r=$1; shift; local items=("$@") n=$# i; for ((i = 0; i < n; i++)); do echo "${items[$(((i + r) % n))]}"; done; }

start_all
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
for ((round = 0; round < ROUNDS; round++)); do
    mapfile -t order < <(rotated "$round" "${PROXIES[@]}")
    log "round $((round + 1)) of $ROUNDS: ${order[*]}"
    for target in "${order[@]}"; do get_load h2get "$target" "$round" -c 8 -m 16; done
    for target in "${order[@]}"; do get_load h1get "$target" "$round" --h1 -c 8; done
    for size in 64 4096; do
        scenario=$([[ $size == 64 ]] && echo h2ws64 || echo h2ws4k)
        for target in "${order[@]}"; do
            if [[ $target == nginx ]]; then
                record "$scenario.msgs_per_s" nginx "$round" "n/a (no RFC 8441)"
                record "$scenario.cpu_us_per_msg" nginx "$round" "n/a (no RFC 8441)"
                continue
            fi
            echo_load "$scenario" "$target" "$round" "h2wss://127.0.0.1:${PORT[$target]}/ws" "$size"
        done
    done
    for target in "${order[@]}"; do
        [[ $target == nginx ]] && continue # its TLS port here serves no WebSocket route
        echo_load tls4k "$target" "$round" "wss://127.0.0.1:${PORT[$target]}/ws" 4096
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$BENCH/target"
REPORT="$BENCH/target/last-h2.md"
{
    echo "Run of \`$COMMAND\`, started $STARTED, $ROUNDS rounds."
    echo
    echo "- wsgate $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (modified)'), $(rustc --version)"
    echo "- $(nginx -v 2>&1), $(haproxy -v | head -n 1 | cut -d' ' -f1-3), $(h2load --version | head -n 1)"
    echo "- $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
    echo "- load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
    echo
    "$BIN/report" "$RESULTS"
} | tee "$REPORT"
cp "$RESULTS" "$BENCH/target/last-h2.tsv"
