#!/usr/bin/env bash
# Instructions per render, counted by callgrind (repeatable on a noisy machine): runs each
# render path 10k and 20k times and prints the difference / 10k.
#   bash ci/template-instructions.sh [PATH ...]     (PROFILE=bench reuses the bench build)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "notice: valgrind not installed; skipping"; exit 0; }
profile="${PROFILE:-release}"
cargo build --profile "$profile" --example template_probe -q
dir=$profile; [ "$profile" = bench ] && dir=release
bin=target/$dir/examples/template_probe
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(reader cache_render temporary_reader minijinja reader_page minijinja_page)
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 | grep -oP 'Collected : \K[0-9]+'; }
printf '%-18s %s\n' path instructions/render
for p in "${paths[@]}"; do
  a=$(count "$p" 10000); b=$(count "$p" 20000)
  printf '%-18s %s\n' "$p" $(( (b - a) / 10000 ))
done
