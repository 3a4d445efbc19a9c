#!/usr/bin/env bash
# Undefined-behaviour check: the tests miri can run, under `cargo +nightly miri test`:
# the lock API, strategies, the three components' scenario tests and the hostile-input corpus,
# with iteration counts and input sizes scaled down under cfg(miri) inside the tests. (The
# differential, model-run and memory tests are compiled out under miri: thousands of proptest
# cases or an RSS measurement mean nothing there; the stress tests run under tsan.sh.)
#   bash ci/miri.sh            (skips with a notice where nightly or miri cannot be installed;
#                               under CI=true it fails instead)
#   MIRI_TESTS="--test session" bash ci/miri.sh     (a subset)
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/nightly.sh
[ "$NIGHTLY_OK" = 1 ] || exit 0  # local skip; under CI=true nightly.sh has already failed
# -Zmiri-disable-isolation: the tests use temporary directories (template files), the clock
#   (session expiry) and the OS random source (session keys).
# -Zmiri-ignore-leaks: keyed locks are leaked to `'static` by design (they stand for statics).
# -Zmiri-permissive-provenance: arc-swap casts integers to pointers (its debt slots); this
#   silences the warning, it does not hide a bug of ours (our code has no such cast).
# -Zmiri-tree-borrows: crossbeam-epoch (the model cells' reclamation) is not compatible with
#   Stacked Borrows but is with Tree Borrows, which crossbeam's own CI uses
#   (crossbeam-rs/crossbeam#996). Tree Borrows found a real bug of ours on its first run: a
#   borrowed record turned into an `Arc` through a `&T` (provenance too narrow for the count).
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation -Zmiri-ignore-leaks -Zmiri-permissive-provenance -Zmiri-tree-borrows}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri"
start=$SECONDS
cargo +nightly miri setup
tests=${MIRI_TESTS:---lib --test lock --test strategy --test session --test model --test template --test hostile}
# shellcheck disable=SC2086
cargo +nightly miri test $tests
echo "miri: passed in $((SECONDS - start)) s"
