#!/usr/bin/env bash
# The workload across several OS processes: 4 workers share sessions in Redis and model records
# in PostgreSQL; the parent checks every session's hits and every record's views against the
# increments all workers acknowledged (exit non-zero on a loss). Then two runs that must fail:
# one with an injected loss, one with Django's last-writer-wins policy (real lost updates). Makes sure both servers answer first (ci/servers.sh: installs
# and starts Debian's redis-server / postgresql where they do not). Cost after the build
# (release, features redis,postgres; a few minutes cold on 2 cores): about 10 s. Runs locally
# as in CI:
#   bash ci/workload-remote.sh            WORKLOAD_SECONDS=10 bash ci/workload-remote.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
source ci/servers.sh
ensure_redis
ensure_postgres

seconds="${WORKLOAD_SECONDS:-5}"
# The dev build with all features (what ci/http.sh, ci/postgres.sh and ci/redis.sh already
# built: only the library and the example compile here); WORKLOAD_RELEASE=1 for an optimised
# build (the figures in docs/scale-out.md; ~12 min cold on 2 cores).
build=(--all-features)
if [ "${WORKLOAD_RELEASE:-}" = 1 ]; then build=(--release --features redis,postgres); fi
run() {
  cargo run "${build[@]}" --example workload -- \
    --processes 4 --sessions-backend redis --models-backend postgres "$@"
}
cargo build "${build[@]}" --example workload
start=$SECONDS

echo "--- 4 processes, ${seconds} s: every count exact"
run --threads 2 --seconds "$seconds"

echo "--- the check catches a loss: worker 0 claims one session hit and one view never written"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
run --threads 2 --seconds 0.5 --inject-loss >"$log" 2>&1
status=$?
set -e
cat "$log"
if [ "$status" -eq 0 ]; then
  echo "workload-remote: an injected loss passed the check (exit 0)" >&2
  exit 1
fi
for what in "session hits" "model views"; do
  if ! grep -Eq "FAILED +$what .* 1 lost" "$log"; then
    echo "workload-remote: the injected loss was not reported as 1 lost $what" >&2
    exit 1
  fi
done
echo "--- injected loss caught (exit $status)"

echo "--- a real loss: Django's last-writer-wins across processes must lose session hits"
set +e
run --threads 2 --seconds 1 --sessions 4 --conflict-policy last-writer-wins >"$log" 2>&1
status=$?
set -e
cat "$log"
if [ "$status" -eq 0 ] || ! grep -Eq "FAILED +session hits .* [1-9][0-9]* lost" "$log"; then
  echo "workload-remote: last-writer-wins lost no session hit, or the check missed it" >&2
  exit 1
fi
echo "--- lost updates under last-writer-wins caught (exit $status)"
echo "workload-remote: passed in $((SECONDS - start)) s after the build"
