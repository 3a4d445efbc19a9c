#!/usr/bin/env bash
# Undefined-behaviour check: the tests miri can run, under `cargo +nightly miri test`.
# Iteration counts are scaled down under cfg(miri) inside the tests. Runs locally as in CI:
#   bash ci/miri.sh            (skips with a notice where nightly or miri cannot be installed)
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/nightly.sh
[ "$NIGHTLY_OK" = 1 ] || exit 0
# Keyed locks are leaked to `'static` by design (they stand for statics), hence ignore-leaks.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation -Zmiri-ignore-leaks}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri"
start=$SECONDS
cargo +nightly miri setup
cargo +nightly miri test --lib --test lock --test strategy ${MIRI_TESTS:-}
echo "miri: passed in $((SECONDS - start)) s"
