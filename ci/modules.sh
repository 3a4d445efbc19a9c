#!/usr/bin/env bash
# The library's module import graph has no cycles (beyond ci/modules-allow.txt, each entry
# marked with whose work removes it). Offline and fast (python3 only, well under a second):
# an equivalent of `cargo modules dependencies --lib --acyclic` that needs no cargo-modules build
# (which compiles rust-analyzer and tracks the toolchain version). See ci/modules.py.
#   bash ci/modules.sh            # fails on a cycle not allowed
#   bash ci/modules.sh --dot g.dot  # also writes the graph (Graphviz)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "error: python3 is required for ci/modules.sh" >&2; exit 1; }
python3 ci/modules.py "$@"
