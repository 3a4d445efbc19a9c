#!/usr/bin/env bash
# Sessions on Redis (feature `redis`, plus `axum`/`tower-sessions` for the web glue): makes sure
# a server answers at $UNLOCKED_REDIS_URL (default redis://127.0.0.1:6379), installing and
# starting Debian's redis-server if it does not, then runs the Redis tests with CI=true, so a
# missing server fails instead of skipping:
#   tests/session_scenarios.rs  the scenario suite of every tier (LockFree, Blocking, Redis)
#   tests/session_redis.rs      hand-edited records, TTLs, four stores on one hot session,
#                               connections killed mid-run, a server restarted
#   tests/http_redis.rs         SessionLayer::redis and TowerStore::redis over HTTP
#   tests/template_broadcast.rs template invalidation over a Redis channel
# Cost: ~40 s of tests after ci/http.sh has built the all-features tree; installing Redis,
# where needed, about 30 s. Runs locally as in CI:  bash ci/redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
source ci/servers.sh
ensure_redis
# The restart test starts a server of its own: it needs the binary too.
command -v redis-server >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
}

# All features: the same build as ci/http.sh, so after it only the test binaries link.
CI=true cargo test --all-features --test session_scenarios --test session_redis --test http_redis \
  --test template_broadcast
echo "redis: session tests passed in $((SECONDS - start)) s"
