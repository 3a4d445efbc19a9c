#!/usr/bin/env bash
# Long random-operation run of the session store (both strategies) against a plain HashMap
# model: PROPTEST_CASES sequences (default 50 000) of up to 200 requests each, optimized,
# stopped after SESSION_MODEL_LIMIT seconds (default 600; a timeout is a failure).
#   bash ci/session-model.sh           PROPTEST_CASES=1000000 SESSION_MODEL_LIMIT=3600 bash ci/session-model.sh
set -euo pipefail
# Optimized: the bench profile (release plus line tables), so CI reuses the dependencies
# `cargo bench --no-run` built just before.
profile="${CARGO_PROFILE:-bench}"
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-50000}"
limit="${SESSION_MODEL_LIMIT:-600}"
cargo test --profile "$profile" --test session_model --no-run
start=$SECONDS
if ! timeout "$limit" cargo test --profile "$profile" --test session_model -- --ignored; then
  echo "session-model: FAILED or ran past ${limit} s"
  exit 1
fi
echo "session-model: $PROPTEST_CASES sequences passed in $((SECONDS - start)) s"
