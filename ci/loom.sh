#!/usr/bin/env bash
# Loom models of every protocol the crate owns (lazy lock creation, reentrant owner/count, and
# each component's publish/compare-and-swap). Runs locally as in CI:  bash ci/loom.sh
# Models are bounded (preemption bound 2-3 in each model) so the set finishes in minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg unlocked_loom ${RUSTFLAGS:-}"
# A separate target dir: the cfg changes every crate's fingerprint.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
start=$SECONDS
cargo test --release --lib --test loom -- --test-threads=2
echo "loom: all models passed in $((SECONDS - start)) s"
