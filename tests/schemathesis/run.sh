#!/usr/bin/env bash
# Schemathesis against a live server: starts `objectos serve presets/crm` on SQLite in a temp dir,
# signs a user up, and runs `schemathesis run` on the server's own OpenAPI document with that
# user's bearer token, so every documented operation is called signed in.
#
# Usage: tests/schemathesis/run.sh [path/to/objectos]
#   The binary is taken from $1, else $OBJECTOS_BIN, else $CARGO_TARGET_DIR/debug/objectos
#   (CARGO_TARGET_DIR defaults to ~/.cache/objectos-target). This script builds nothing.
# Env:
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 10: about a minute)
#   SCHEMATHESIS_SEED          the run's seed (default 1), so a failure can be replayed
#   READY_TIMEOUT              seconds to wait for GET /ready (default 60)
# Schemathesis is installed from PyPI at the pinned version into a venv under ~/.cache.
# Exits non-zero when any check fails; prints `N passed, M failed` last.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/objectos-target}"
bin="${1:-${OBJECTOS_BIN:-$target_dir/debug/objectos}}"
ready_timeout="${READY_TIMEOUT:-60}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-10}"
seed="${SCHEMATHESIS_SEED:-1}"

version="4.32.5"
venv="$HOME/.cache/objectos-schemathesis-$version"

# What every answer must satisfy: no 5xx, a status the document declares for the operation, the
# declared content type and headers, and a body matching the declared schema. (The stricter
# positive/negative data checks are not run: a filter string that is not JSON is schema-valid
# yet rightly refused, and a stale If-Match answers 412 before the body is looked at.)
checks="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"

# Operations that would end the test user's session or rights half-way through the run (sign-out,
# a password change, two-factor enrolment, banning or demoting a user, leaving the organization):
# the rest of the run would then only see 401s. They are covered by the auth plugin's own tests.
exclude='/auth/(sign-out|change-password|two-factor/|admin/ban-user|organization/remove-member|organization/update-member-role)'

if [[ ! -x "$bin" ]]; then
  echo "run.sh: objectos binary not found or not executable at '$bin'." >&2
  echo "run.sh: build it with 'cargo build -p objectos-server', or pass its path as \$1 / OBJECTOS_BIN." >&2
  exit 2
fi

if [[ ! -x "$venv/bin/schemathesis" ]] || ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  echo "run.sh: installing schemathesis $version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

tmp="$(mktemp -d -t objectos-schemathesis.XXXXXX)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$port"
log="$tmp/server.log"
echo "== $bin serve presets/crm --listen 127.0.0.1:$port (SQLite in $tmp)"
(cd "$root" && exec "$bin" serve presets/crm --listen "127.0.0.1:$port" --database-url "sqlite://$tmp/crm.db?mode=rwc") >"$log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + ready_timeout))
until [[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/ready" || true)" == "200" ]]; do
  if ! kill -0 "$server_pid" 2>/dev/null || ((SECONDS >= deadline)); then
    echo "FAIL: the server did not answer 200 on /ready within ${ready_timeout}s. Server output:"
    tail -n 40 "$log" | sed 's/^/     | /'
    echo "0 passed, 1 failed"
    exit 1
  fi
  sleep 0.1
done

# The first user to sign up becomes the administrator of the first organization, so the run
# reaches the admin routes too. The token comes back in the `set-auth-token` header.
token="$(curl -s -D - -o "$tmp/sign-up.json" -H 'content-type: application/json' \
  -d '{"email":"schemathesis@example.com","password":"Fuzz-Only-Password-42","name":"Schemathesis"}' \
  "$base/api/v1/auth/sign-up/email" | tr -d '\r' | awk -F': ' 'tolower($1) == "set-auth-token" { print $2 }')"
if [[ -z "$token" ]]; then
  echo "FAIL: sign-up returned no token:"
  cat "$tmp/sign-up.json"
  echo
  echo "0 passed, 1 failed"
  exit 1
fi

status=0
# Run from the temp dir: nothing schemathesis writes may land in the work tree.
(cd "$tmp" && exec "$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks "$checks" \
  --exclude-path-regex "$exclude" \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --generation-database none \
  --no-color \
  --report junit --report-dir "$tmp/report") \
  || status=$?

# The JUnit report counts operations; its totals make the summary line other runners expect.
summary="$(python3 - "$tmp/report" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
tests = failures = 0
for path in glob.glob(sys.argv[1] + "/*.xml"):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        tests += int(suite.get("tests", 0))
        failures += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
print(f"{tests - failures} passed, {failures} failed")
PY
)"
if ((status != 0)); then
  echo "server output (last 20 lines):"
  tail -n 20 "$log" | sed 's/^/     | /'
  # A crash of schemathesis itself must not read as a clean run.
  if [[ "$summary" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
    summary="${summary%, 0 failed}, 1 failed"
  fi
fi
echo "$summary"
exit "$status"
