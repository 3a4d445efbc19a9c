#!/usr/bin/env bash
# Fuzzing (cargo-fuzz, libFuzzer, AddressSanitizer, debug assertions on): each target in fuzz/
# runs for FUZZ_SECONDS (default 60) from its checked-in seed corpus (fuzz/corpus/TARGET);
# a crash, panic, leak-free abort or timeout fails the script (the input is left in
# fuzz/artifacts/TARGET/ — reproduce with `cargo +nightly fuzz run TARGET FILE --fuzz-dir fuzz`).
# New inputs go to a scratch corpus, never into the checked-in one.
#   bash ci/fuzz.sh                              (all targets, 60 s each)
#   FUZZ_SECONDS=600 FUZZ_TARGETS="session_ops" bash ci/fuzz.sh
# Installs nightly (ci/nightly.sh: skips with a notice locally, fails under CI=true where it
# cannot) and cargo-fuzz (`cargo install --locked cargo-fuzz`) if missing.
# Cost on a 2-core machine: ~7 min cold build (nightly, ASan, every dependency), then
# FUZZ_SECONDS per target (4 targets).
set -euo pipefail
cd "$(dirname "$0")/.."
NIGHTLY_COMPONENTS=${NIGHTLY_COMPONENTS-}  # cargo-fuzz needs nightly's -Z flags, no component
source ci/nightly.sh
[ "$NIGHTLY_OK" = 1 ] || exit 0  # local skip; under CI=true nightly.sh has already failed
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  if ! cargo install --locked cargo-fuzz; then
    if [ "${CI:-}" = true ]; then echo "error: could not install cargo-fuzz" >&2; exit 1; fi
    echo "notice: could not install cargo-fuzz; fuzzing skipped (fails instead under CI=true)"
    exit 0
  fi
fi
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list --fuzz-dir fuzz)}
start=$SECONDS
cargo +nightly fuzz build --debug-assertions --fuzz-dir fuzz
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in $targets; do
  [ -d "fuzz/corpus/$t" ] || { echo "error: no seed corpus fuzz/corpus/$t" >&2; exit 1; }
  mkdir -p "$scratch/$t"
  echo "== fuzz $t for ${seconds} s"
  # First corpus directory: where libFuzzer writes new inputs (scratch); the second is read.
  if ! cargo +nightly fuzz run --debug-assertions --fuzz-dir fuzz "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -max_len=4096 \
      -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
    grep -E -A4 'panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer' "$scratch/$t.log" | head -n 40 || true
    tail -n 40 "$scratch/$t.log"
    echo "fuzz: $t FAILED (the input is under fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )|INITED|cov:' "$scratch/$t.log" | tail -n 4
done
echo "fuzz: all targets ran ${seconds} s each without a crash in $((SECONDS - start)) s"
