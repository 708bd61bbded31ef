#!/usr/bin/env bash
# Runs every test. Installs what the tests need first (idempotent):
# the independent clients (Python packages of tests/clients/requirements.txt
# in a venv at tests/clients/.venv, see tests/clients/python; the Node
# packages of tests/clients/package.json), and the Debian packages below.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/clients/python --setup   # a venv (PEP 668-safe)
# npm ci again whenever package-lock.json changed since the last install.
(cd tests/clients && { cmp -s package-lock.json node_modules/.installed-lock ||
  { npm ci --no-audit --no-fund --silent && cp package-lock.json node_modules/.installed-lock; }; })
# Debian packages the tests start as real peers: the browser, the balancer
# of the cluster tests, HTTP/2 clients, the ACME test CA.
packages="chromium haproxy nghttp2-client pebble curl openssl"
missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

cargo test --locked "$@"

# A wss echo round trip through the real binary with an independent TLS
# client (Python websockets + ssl), trusting a `wsgate cert` certificate.
tests/clients/run_wss_echo.sh
