#!/usr/bin/env bash
# Differential property tests, full run: random operation sequences on the LockFree and the
# Blocking form of each component (session store, model store, template cache) must give the
# same result at every step. `cargo test` runs 64 cases per component; this runs
# PROPTEST_CASES (default 10 000) per component, optimized.
#   bash ci/differential.sh            PROPTEST_CASES=100000 bash ci/differential.sh
set -euo pipefail
# Optimized: the bench profile (release plus line tables), so CI reuses the dependencies
# `cargo bench --no-run` built just before.
profile="${CARGO_PROFILE:-bench}"
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-10000}"
start=$SECONDS
cargo test --profile "$profile" --test differential -- --test-threads=2
echo "differential: $PROPTEST_CASES cases per component passed in $((SECONDS - start)) s"
