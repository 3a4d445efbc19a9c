#!/usr/bin/env bash
# Instructions per lock+unlock, counted by callgrind (repeatable on a noisy machine):
# runs each operation 100k and 200k times and prints the difference / 100k.
#   bash ci/lock-instructions.sh [OP ...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "notice: valgrind not installed; skipping"; exit 0; }
profile="${PROFILE:-release}"   # PROFILE=bench reuses the bench build (same codegen, + debug info)
cargo build --profile "$profile" --example lock_probe -q
dir=$profile; [ "$profile" = bench ] && dir=release
bin=target/$dir/examples/lock_probe
ops=("$@")
[ ${#ops[@]} -gt 0 ] || ops=(parking_lot parking_lot+nested std_mutex instance instance+nested
  instance+check global module_fn module_macro module_macro+nested module_macro+check class_fn
  class_macro function_fn function_macro)
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 | grep -oP 'Collected : \K[0-9]+'; }
printf '%-22s %s\n' operation instructions/op
for op in "${ops[@]}"; do
  a=$(count "$op" 100000); b=$(count "$op" 200000)
  printf '%-22s %s\n' "$op" $(( (b - a) / 100000 ))
done
