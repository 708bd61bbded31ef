#!/usr/bin/env bash
# Runs every test. Installs what the tests need first (idempotent):
# the independent WebSocket clients (Python `websockets`, Node `ws`).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import websockets' 2>/dev/null || python3 -m pip install --quiet 'websockets>=13,<18'
(cd tests/clients && [ -d node_modules/ws ] || npm ci --no-audit --no-fund --silent)

cargo test --locked "$@"

# A wss echo round trip through the real binary with an independent TLS
# client (Python websockets + ssl), trusting a `wsgate cert` certificate.
tests/clients/run_wss_echo.sh
