#!/usr/bin/env bash
# Sourced by the ci/ scripts that need a server: `source ci/servers.sh`, then
#   ensure_postgres   a PostgreSQL answers at $UNLOCKED_DATABASE_URL
#                     (default postgres://root@127.0.0.1:5432/test)
#   ensure_redis      a Redis answers at $UNLOCKED_REDIS_URL (default redis://127.0.0.1:6379)
# Each one does nothing when the server answers; otherwise it installs Debian's package
# (apt-get) if needed, starts the server, and returns non-zero (a message on stderr) if it is
# still unreachable. Both export their URL.

export UNLOCKED_DATABASE_URL="${UNLOCKED_DATABASE_URL:-postgres://root@127.0.0.1:5432/test}"
export UNLOCKED_REDIS_URL="${UNLOCKED_REDIS_URL:-redis://127.0.0.1:6379}"

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}

postgres_reachable() {
  command -v psql >/dev/null && psql "$UNLOCKED_DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1
}

as_postgres() {
  if command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else su postgres -c "$(printf '%q ' "$@")"; fi
}

ensure_postgres() {
  if ! postgres_reachable; then
    echo "postgres: $UNLOCKED_DATABASE_URL unreachable; installing/starting PostgreSQL"
    if ! command -v pg_ctlcluster >/dev/null; then
      apt_install postgresql
    fi
    # The newest installed cluster (Debian creates one on install); create it if missing.
    local version cluster_conf
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
    if ! postgres_reachable; then
      echo "postgres: still cannot reach $UNLOCKED_DATABASE_URL after starting PostgreSQL $version" >&2
      return 1
    fi
  fi
  echo "postgres: $(psql "$UNLOCKED_DATABASE_URL" -Atqc 'SHOW server_version') at $UNLOCKED_DATABASE_URL"
}

redis_reachable() {
  command -v redis-cli >/dev/null && [ "$(redis-cli -u "$UNLOCKED_REDIS_URL" ping 2>/dev/null)" = PONG ]
}

ensure_redis() {
  if ! redis_reachable; then
    echo "redis: $UNLOCKED_REDIS_URL unreachable; installing/starting Redis"
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
      apt_install redis-server
    fi
    # Host and port from the URL (redis://[user:pass@]host[:port][/db]).
    local hostport host port
    hostport="${UNLOCKED_REDIS_URL#*://}"
    hostport="${hostport##*@}"
    hostport="${hostport%%/*}"
    host="${hostport%%:*}"
    port=6379
    if [ "$hostport" != "$host" ]; then port="${hostport##*:}"; fi
    # A throw-away cache for tests: no snapshots, no append-only file.
    redis-server --daemonize yes --save '' --appendonly no --bind "$host" --port "$port" >/dev/null
    for _ in $(seq 1 30); do
      redis_reachable && break
      sleep 0.2
    done
    if ! redis_reachable; then
      echo "redis: still cannot reach $UNLOCKED_REDIS_URL after starting redis-server" >&2
      return 1
    fi
  fi
  echo "redis: $(redis-cli -u "$UNLOCKED_REDIS_URL" info server | tr -d '\r' | sed -n 's/^redis_version://p') at $UNLOCKED_REDIS_URL"
}
