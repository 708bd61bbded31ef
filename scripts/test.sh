#!/usr/bin/env bash
# Runs every test. Installs what the tests need first (idempotent):
# the independent WebSocket clients (Python `websockets`, Node `ws`), and
# headless Chromium with playwright-core for the fallback's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import websockets' 2>/dev/null || python3 -m pip install --quiet 'websockets>=13,<18'
(cd tests/clients && [ -d node_modules/ws ] && [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --silent)
if [ ! -x /usr/bin/chromium ]; then
  apt-get update && apt-get install -y chromium
fi

cargo test --locked "$@"

# A wss echo round trip through the real binary with an independent TLS
# client (Python websockets + ssl), trusting a `wsgate cert` certificate.
tests/clients/run_wss_echo.sh
