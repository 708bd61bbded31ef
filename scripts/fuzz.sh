#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS (default 120) each, starting
# from the committed seeds in fuzz/corpus/<target>/. New inputs go to
# target/fuzz-corpus/<target>/ so the committed seeds stay small; crashes
# land in fuzz/artifacts/<target>/ and fail the run.
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets stable accept them.
#   scripts/fuzz.sh [target...]
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-120}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(frame_header relay handshake config fallback_batch proxy_header)

export RUSTC_BOOTSTRAP=1
for target in "${TARGETS[@]}"; do
    scratch=$PWD/target/fuzz-corpus/$target
    mkdir -p "$scratch"
    echo "== fuzz $target for ${SECONDS_EACH}s"
    (cd fuzz && cargo fuzz run "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|#[0-9]+ +DONE|==[0-9]+==|SUMMARY|Done)" ) ||
        { echo "fuzz target $target failed (see fuzz/artifacts/$target)"; exit 1; }
done
