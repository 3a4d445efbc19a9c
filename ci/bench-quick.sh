#!/usr/bin/env bash
# Benches as a check: a broken bench (panic, failed expect, wrong count) fails CI.
#   1. every criterion bench runs each benchmark once (`-- --test`),
#   2. benches/track.rs runs in criterion's quick mode, so the log shows each component's hot
#      operation in both strategies,
#   3. the workload example runs briefly and verifies its counts (lost updates exit non-zero).
# All three reuse the bench profile's build (`cargo bench --no-run` in .ci/run builds it).
# Runs locally the same way: bash ci/bench-quick.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

start=$SECONDS
echo "--- every bench once (cargo bench --benches -- --test)"
cargo bench --benches -- --test
echo "--- track bench, quick mode"
cargo bench --bench track -- --quick --noplot
echo "--- workload example, 0.5 s per configuration"
cargo run --profile bench --example workload -- --seconds 0.5 --lock-millis 100
# The example's allocator switch (examples/workload/alloc.rs): the platform's malloc for the
# whole process, and the header must say so.
echo "--- workload example on the system allocator, 0.2 s, two configurations"
out=$(UNLOCKED_WORKLOAD_ALLOCATOR=system cargo run -q --profile bench --example workload -- \
  --seconds 0.2 --lock-millis 0 --config lock-free,blocking)
echo "$out"
grep -q '^allocator: system' <<<"$out" \
  || { echo "error: UNLOCKED_WORKLOAD_ALLOCATOR=system did not select the system allocator" >&2; exit 1; }
# The line-transfer gauge ci/versus-rounds.py reads between measurements: it finishes and
# prints one figure; a bad argument is refused.
echo "--- line_transfer gauge, 20 000 round trips"
out=$(cargo run -q --profile bench --example line_transfer -- 20000)
echo "$out"
grep -qE '^one-way line transfer: [0-9]+\.[0-9] ns$' <<<"$out" \
  || { echo "error: line_transfer printed no figure" >&2; exit 1; }
if cargo run -q --profile bench --example line_transfer -- 0 2>/dev/null; then
  echo "error: line_transfer accepted 0 round trips" >&2; exit 1
fi
# The committed round logs still re-tabulate (docs/benchmarks.md's tables are their replays):
# one all-rounds row per logged cell.
echo "--- ci/versus-rounds.py --replay of docs/rounds/*.log"
for log in docs/rounds/*.log; do
  rows=$(python3 ci/versus-rounds.py --replay "$log" --phases | grep -c '| all: ' || true)
  cells=$(grep -oP '^round \d+: \K\S+' "$log" | sort -u | wc -l)
  [ "$rows" -eq "$cells" ] \
    || { echo "error: $log: $rows table rows for $cells cells" >&2; exit 1; }
done
echo "--- bench-quick.sh took $((SECONDS - start)) s"
