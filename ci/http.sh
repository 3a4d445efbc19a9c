#!/usr/bin/env bash
# The web integrations (features `axum`, `tower-sessions`): the HTTP test (starts the example
# app on 127.0.0.1 and stops it), the feature-gated unit tests, and every doc test with all
# features on. Runs locally as in CI:  bash ci/http.sh
# Cost: 36 s on the shared 2-core VM (load ≈ 11) after `cargo test` has built the dev-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
cargo test --all-features --lib --test http
cargo test --all-features --doc
echo "http: integration and doc tests passed in $((SECONDS - start)) s"
