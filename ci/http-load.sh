#!/usr/bin/env bash
# Load run of examples/app.rs: our store vs tower-sessions' MemoryStore, with a real load
# generator (oha from crates.io if installed, else wrk from Debian). Not part of CI.
#   bash ci/http-load.sh [SECONDS] [CONNECTIONS] [--blocking]
# Prints, per route: requests/s, and for the counters the final value against the requests
# answered (a lost update shows as a final value below the count of 200s).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-16}
strategy=${3:-}
port=${PORT:-18181}
base=http://127.0.0.1:$port
cargo build --release --example app --features axum,tower-sessions 2>&1 | tail -1
target/release/examples/app --addr 127.0.0.1:$port $strategy &
app=$!
trap 'kill $app' EXIT
sleep 1
uptime

gen() { # gen PATH [COOKIE]: POSTs for $secs seconds; prints "requests_ok rps"
  local path=$1 cookie=${2:-}
  if command -v oha >/dev/null; then
    local args=(-z "${secs}s" -c "$conns" -m POST --no-tui --output-format json)
    [ -n "$cookie" ] && args+=(-H "Cookie: $cookie")
    oha "${args[@]}" "$base$path" > /tmp/http-load.json
    python3 -c 'import json,sys; d=json.load(open("/tmp/http-load.json")); ok=d["statusCodeDistribution"].get("200",0); print(ok, round(d["summary"]["requestsPerSec"]), "p99_ms=%.2f" % (1000*d["latencyPercentiles"]["p99"]))'
  else
    printf 'wrk.method = "POST"\n' > /tmp/http-load.lua
    local args=(-t2 -c "$conns" -d "${secs}s" -s /tmp/http-load.lua --latency)
    [ -n "$cookie" ] && args+=(-H "Cookie: $cookie")
    wrk "${args[@]}" "$base$path" > /tmp/http-load.txt
    local n bad rps p99
    n=$(awk '/requests in/ {print $1}' /tmp/http-load.txt)
    bad=$(awk '/Non-2xx/ {print $NF}' /tmp/http-load.txt); bad=${bad:-0}
    rps=$(awk '/Requests\/sec/ {print int($2)}' /tmp/http-load.txt)
    p99=$(awk '$1=="99%" {print $2}' /tmp/http-load.txt)
    echo "$((n - bad)) $rps p99=$p99"
  fi
}

cookie_of() { # cookie_of PATH NAME: a fresh session's cookie
  curl -s -i -X POST "$base$1" | tr -d '\r' | awk -v n="$2" 'tolower($1)=="set-cookie:" && index($2, n"=")==1 {sub(/;.*/, "", $2); print $2}'
}

echo "== one session cookie, read-modify-write counter through tower-sessions' Session (POST /STORE/incr)"
for store in ours mem; do
  c=$(cookie_of /$store/incr $store)
  read -r ok rps lat < <(gen /$store/incr "$c")
  final=$(curl -s -X POST -b "$c" "$base/$store/incr")
  echo "$store: $rps req/s, $lat, $ok answered 200 (+1 setup), counter then at $((final - 1)): $((ok + 1 - final + 1)) increments lost"
done

echo "== no cookie: every request creates a session (POST /STORE/incr)"
for store in ours mem; do
  read -r ok rps lat < <(gen /$store/incr)
  echo "$store: $rps req/s, $lat, $ok answered 200"
done

echo "== one session cookie, native handle, update operation (POST /incr)"
c=$(cookie_of /incr sessionid)
read -r ok rps lat < <(gen /incr "$c")
final=$(curl -s -b "$c" "$base/count")
echo "native: $rps req/s, $lat, $ok answered 200 (+1 setup), counter at $final"
uptime
