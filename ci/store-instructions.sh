#!/usr/bin/env bash
# Instructions per store operation, counted by callgrind (repeatable on a noisy machine): runs
# each operation 100k and 200k times in one thread and prints the difference / 100k.
#   bash ci/store-instructions.sh [STRATEGY/OP ...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "notice: valgrind not installed; skipping"; exit 0; }
cargo build --release --example store_probe -q
bin=target/release/examples/store_probe
ops=("$@")
[ ${#ops[@]} -gt 0 ] || ops=(lock-free/update blocking/update mutex/update lock-free/get
  blocking/get mutex/get lock-free/load blocking/load mutex/load lock-free/save blocking/save
  mutex/save)
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 | grep -oP 'Collected : \K[0-9]+'; }
printf '%-20s %s\n' operation instructions/op
for op in "${ops[@]}"; do
  a=$(count "$op" 100000); b=$(count "$op" 200000)
  printf '%-20s %s\n' "$op" $(( (b - a) / 100000 ))
done
