#!/usr/bin/env bash
# Runs every test. Installs what the tests need first (idempotent):
# the independent WebSocket clients (Python `websockets` in a venv at
# tests/clients/.venv, see tests/clients/python; Node `ws`), and
# headless Chromium with playwright-core for the fallback's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/clients/python --setup   # a venv with websockets (PEP 668-safe)
(cd tests/clients && [ -d node_modules/ws ] && [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --silent)
if [ ! -x /usr/bin/chromium ]; then
  apt-get update && apt-get install -y chromium
fi

cargo test --locked "$@"

# A wss echo round trip through the real binary with an independent TLS
# client (Python websockets + ssl), trusting a `wsgate cert` certificate.
tests/clients/run_wss_echo.sh
