#!/usr/bin/env bash
# Runs tests/clients/wss_echo.py against the real binary: writes a dev
# certificate with `wsgate cert`, starts wsgate on a TLS listener bound to
# 127.0.0.1:0 (port read from its log), runs the Python client trusting that
# certificate, then stops wsgate with SIGTERM. Exit status is the client's.
set -euo pipefail
cd "$(dirname "$0")/../.."

tests/clients/python --setup
cargo build --locked --quiet
bin=target/debug/wsgate
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

"$bin" cert --out "$tmp" >/dev/null
cat >"$tmp/wsgate.toml" <<TOML
[server]
shutdown_grace = "2s"

[[listeners]]
bind = "127.0.0.1:0"
[listeners.tls]
certs = [{ cert = "dev.pem", key = "dev.key" }]

[[routes]]
backends = ["builtin:echo"]
TOML

"$bin" check --config "$tmp/wsgate.toml" >/dev/null
: >"$tmp/log"   # exists before the first read below, however slow the start
RUST_LOG=info "$bin" --config "$tmp/wsgate.toml" 2>"$tmp/log" &
pid=$!
port=
for _ in $(seq 100); do   # bounded wait for the "listening" line
    port=$(sed -n 's/.*listening.*addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/log" | head -1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { echo "wsgate did not start listening" >&2; cat "$tmp/log" >&2; exit 1; }

tests/clients/python tests/clients/wss_echo.py "wss://localhost:$port/echo" "$tmp/dev.pem"
