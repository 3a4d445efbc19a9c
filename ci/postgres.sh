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
export UNLOCKED_DATABASE_URL="${UNLOCKED_DATABASE_URL:-postgres://root@127.0.0.1:5432/test}"

reachable() {
  command -v psql >/dev/null && psql "$UNLOCKED_DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1
}

as_postgres() {
  if command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else su postgres -c "$(printf '%q ' "$@")"; fi
}

if ! reachable; then
  echo "postgres: $UNLOCKED_DATABASE_URL unreachable; installing/starting PostgreSQL"
  if ! command -v pg_ctlcluster >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
  # The newest installed cluster (Debian creates one on install); create it if missing.
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  if ! pg_lsclusters -h | awk '{print $1}' | grep -qx "$version"; then
    pg_createcluster "$version" main >/dev/null
  fi
  cluster_conf="/etc/postgresql/$version/main"
  # Trust on the loopback interface only (initdb refuses root: the cluster runs as postgres).
  if ! grep -q '^# unlocked ci' "$cluster_conf/pg_hba.conf"; then
    { echo '# unlocked ci'
      echo 'host all all 127.0.0.1/32 trust'
      echo 'host all all ::1/128 trust'
      cat "$cluster_conf/pg_hba.conf"; } > "$cluster_conf/pg_hba.conf.new"
    mv "$cluster_conf/pg_hba.conf.new" "$cluster_conf/pg_hba.conf"
    chown postgres:postgres "$cluster_conf/pg_hba.conf"
  fi
  pg_ctlcluster "$version" main start 2>/dev/null || pg_ctlcluster "$version" main reload
  for _ in $(seq 1 30); do
    as_postgres psql -p 5432 -Atqc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 1
  done
  as_postgres psql -p 5432 -Atqc "SELECT 1 FROM pg_roles WHERE rolname = 'root'" | grep -q 1 \
    || as_postgres psql -p 5432 -qc 'CREATE ROLE root SUPERUSER LOGIN'
  as_postgres psql -p 5432 -Atqc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
    || as_postgres psql -p 5432 -qc 'CREATE DATABASE test OWNER root'
  if ! reachable; then
    echo "postgres: still cannot reach $UNLOCKED_DATABASE_URL after starting PostgreSQL $version" >&2
    exit 1
  fi
fi
echo "postgres: $(psql "$UNLOCKED_DATABASE_URL" -Atqc 'SHOW server_version') at $UNLOCKED_DATABASE_URL"

# All features: the same build as ci/http.sh, so after it only the test binary links.
CI=true cargo test --all-features --test model_postgres
echo "postgres: model tests passed in $((SECONDS - start)) s"
