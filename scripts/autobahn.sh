#!/usr/bin/env bash
# Autobahn|Testsuite through wsgate, every verdict compared with the same
# peer direct. Loopback only; every run bounded by a timeout.
#
#   scripts/autobahn.sh        all cases (but the largest compression
#                             ones, see excluded()), both directions:
#     wstest fuzzingclient -> {tungstenite echo, Python websockets echo},
#                             direct and via wsgate;
#     {Python websockets, Node ws} clients -> wstest fuzzingserver,
#                             direct and via wsgate.
#   scripts/autobahn.sh --ci   fuzzingclient only, without 9.* (performance:
#                             minutes of 16 MiB messages on a small machine)
#                             and 12.*/13.* (permessage-deflate).
#
# Exits non-zero if an expected agent did not run both ways over the same
# cases, or if a case's verdict through wsgate differs from direct and is
# not listed in tests/autobahn/known-differences.json (compare.py prints
# every case). Reports: target/autobahn/<mode>/.
# wstest needs Python 2.7: a virtualenv is made once at $AUTOBAHN_VENV from
# tests/autobahn/requirements-py27.txt (pinned, known to install).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=full
[ "${1:-}" = --ci ] && MODE=ci
PY2=${PYTHON2:-/root/.pyenv/versions/2.7.18/bin/python}
VENV=${AUTOBAHN_VENV:-$PWD/target/autobahn-venv}
RUN_TIMEOUT=${AUTOBAHN_RUN_TIMEOUT:-1800}
OUT=$PWD/target/autobahn/$MODE
PROFILE=${AUTOBAHN_PROFILE:-$([ "$MODE" = ci ] && echo dev || echo release)}
BIN=$PWD/target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")

install_wstest() {
    [ -x "$VENV/bin/wstest" ] && return
    echo "installing wstest into $VENV"
    "$PY2" -m virtualenv --version >/dev/null 2>&1 ||
        "$PY2" -m pip install --quiet --disable-pip-version-check 'virtualenv==20.15.1'
    "$PY2" -m virtualenv --quiet "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        -r tests/autobahn/requirements-py27.txt
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Polls until something listens on the port (a script, not a test: a
# bounded poll is the simplest readiness check across four programs).
wait_port() {
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

start() { # name port command...
    local name=$1 port=$2
    shift 2
    "$@" >"$OUT/$name.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port"
}

gateway_config() { # gateway-port tungstenite-port websockets-port fuzzingserver-port
    local route='origins = ["*"]
max_message_size = "64MiB"
ping_interval = "1h"'
    cat <<TOML
[server]
shutdown_grace = "1s"

[limits]
max_connections_per_ip = 0

[[listeners]]
bind = "127.0.0.1:$1"

[[routes]]
name = "tungstenite"
path = "/tungstenite"
backends = ["ws://127.0.0.1:$2"]
$route

[[routes]]
name = "websockets"
path = "/websockets"
backends = ["ws://127.0.0.1:$3"]
$route

[[routes]]
name = "fuzzingserver"
path = "/"
backends = ["ws://127.0.0.1:$4"]
$route
TOML
}

# Full mode keeps every category but drops the compression cases with the
# largest messages (12.x.10-18, 13.x.10-18: 64 KiB+ deflated 1000 times),
# which take minutes each with the Python peers and add no new code path.
excluded() {
    if [ "$MODE" = ci ]; then
        echo '["9.*", "12.*", "13.*"]'
    else
        python3 -c 'import json; print(json.dumps(["%d.%d.%d" % (a, b, c) for a in (12, 13) for b in range(1, 8) for c in range(10, 19)]))'
    fi
}

fuzzingclient() { # gateway-port tungstenite-port websockets-port
    cat >"$OUT/fuzzingclient.json" <<JSON
{
  "outdir": "$OUT/clients",
  "servers": [
    {"agent": "tungstenite", "url": "ws://127.0.0.1:$2"},
    {"agent": "tungstenite-via-wsgate", "url": "ws://127.0.0.1:$1/tungstenite"},
    {"agent": "websockets", "url": "ws://127.0.0.1:$3"},
    {"agent": "websockets-via-wsgate", "url": "ws://127.0.0.1:$1/websockets"}
  ],
  "cases": ["*"],
  "exclude-cases": $(excluded),
  "exclude-agent-cases": {}
}
JSON
    (cd "$OUT" && timeout "$RUN_TIMEOUT" "$VENV/bin/wstest" -m fuzzingclient \
        -s fuzzingclient.json >"$OUT/fuzzingclient.log" 2>&1)
}

fuzzingserver() { # gateway-port fuzzingserver-port
    cat >"$OUT/fuzzingserver.json" <<JSON
{
  "url": "ws://127.0.0.1:$2",
  "outdir": "$OUT/servers",
  "cases": ["*"],
  "exclude-cases": $(excluded),
  "exclude-agent-cases": {}
}
JSON
    # The launcher drops wstest's Host-port check: wsgate forwards the
    # client's Host, which names the gateway's port (see the file).
    start fuzzingserver "$2" "$VENV/bin/python" tests/autobahn/fuzzingserver.py \
        "$OUT/fuzzingserver.json"
    local direct="ws://127.0.0.1:$2" via="ws://127.0.0.1:$1"
    # Named apart from the fuzzingclient's backends: "websockets" there is
    # the Python server, here the Python client (compare.py refuses clashes).
    for run in "websockets-client $direct" "websockets-client-via-wsgate $via" \
        "ws-client $direct" "ws-client-via-wsgate $via"; do
        set -- $run
        case $1 in
        websockets-client*) timeout "$RUN_TIMEOUT" python3 tests/autobahn/client.py "$2" "$1" ;;
        ws-client*) timeout "$RUN_TIMEOUT" node tests/clients/autobahn_client.mjs "$2" "$1" ;;
        esac
    done
}

main() {
    install_wstest
    python3 -c 'import websockets' 2>/dev/null || python3 -m pip install --quiet 'websockets>=13,<18'
    (cd tests/clients && [ -d node_modules/ws ] || npm ci --no-audit --no-fund --silent)
    cargo build --locked --profile "$PROFILE" --bin wsgate --example autobahn-echo
    rm -rf "$OUT" && mkdir -p "$OUT"
    local gw rust py fs
    gw=$(free_port) rust=$(free_port) py=$(free_port) fs=$(free_port)
    gateway_config "$gw" "$rust" "$py" "$fs" >"$OUT/wsgate.toml"
    start tungstenite "$rust" "$BIN/examples/autobahn-echo" "127.0.0.1:$rust"
    start websockets "$py" python3 tests/autobahn/echo.py 127.0.0.1 "$py"
    RUST_LOG=${RUST_LOG:-warn} start wsgate "$gw" "$BIN/wsgate" --config "$OUT/wsgate.toml"
    fuzzingclient "$gw" "$rust" "$py"
    local reports=("$OUT/clients/index.json") expect=tungstenite,websockets
    if [ "$MODE" = full ]; then
        fuzzingserver "$gw" "$fs"
        reports+=("$OUT/servers/index.json")
        expect+=,websockets-client,ws-client
    fi
    # Every expected agent must have run both ways over the same cases; a
    # difference passes only if tests/autobahn/known-differences.json lists it.
    python3 tests/autobahn/compare.py --expect "$expect" "${reports[@]}"
}

main
