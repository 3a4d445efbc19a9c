#!/usr/bin/env bash
# Models on PostgreSQL (feature `postgres`, plus `axum` for the 409/404 test): makes sure a
# server answers at $UNLOCKED_DATABASE_URL (default postgres://root@127.0.0.1:5432/test),
# installing and starting Debian's PostgreSQL if it does not, then runs tests/model_postgres.rs
# with CI=true, so a missing server fails instead of skipping. Cost: about 5 s of tests after
# ci/http.sh has built the all-features tree (about 2 min more on a cold 2-core VM); installing
# PostgreSQL, where needed, about a minute. Runs locally as in CI:
#   bash ci/postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
source ci/servers.sh
ensure_postgres

# All features: the same build as ci/http.sh, so after it only the test binary links.
CI=true cargo test --all-features --test model_postgres --test model_scenarios
echo "postgres: model tests passed in $((SECONDS - start)) s"
