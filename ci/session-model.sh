#!/usr/bin/env bash
# Long random-operation run of the session store (both strategies) against a plain HashMap
# model: PROPTEST_CASES sequences (default 50 000) of up to 200 requests each, release mode,
# stopped after SESSION_MODEL_LIMIT seconds (default 600; a timeout is a failure).
#   bash ci/session-model.sh           PROPTEST_CASES=1000000 SESSION_MODEL_LIMIT=3600 bash ci/session-model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-50000}"
limit="${SESSION_MODEL_LIMIT:-600}"
cargo test --release --test session_model --no-run
start=$SECONDS
if ! timeout "$limit" cargo test --release --test session_model -- --ignored; then
  echo "session-model: FAILED or ran past ${limit} s"
  exit 1
fi
echo "session-model: $PROPTEST_CASES sequences passed in $((SECONDS - start)) s"
