#!/usr/bin/env bash
# The browser end-to-end test (a step of scripts/test.sh):
#
#   ./scripts/e2e.sh      MOTO_PORT / API_PORT / WEB_PORT as for dev.sh (default 8000/3000/3001);
#                         E2E_READY_TIMEOUT: seconds to wait for dev.sh (default 1800: a cold build)
#
# 1. installs what is missing: Chromium (apt-get), playwright-core (npm ci in e2e/), Swagger UI
#    (npm ci in web/docs) — scripts/install-tools.sh e2e
# 2. starts scripts/dev.sh in the background, in its own process group, and always stops it on
#    exit (success, failure or Ctrl-C); its output goes to .local/e2e-dev.log
# 3. waits until dev.sh has written .local/dev.ready and the API and the demo page answer
# 4. runs scripts/contract.sh if it exists (the OpenAPI contract test; it reads .local/demo.env)
# 5. runs e2e/demo.test.mjs: the demo page in Chromium with virtual authenticators; screenshots
#    of every step go to target/e2e-screenshots/<run>/ (printed)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[e2e] %s\n' "$*"; }
die() { printf '[e2e] error: %s\n' "$*" >&2; exit 1; }
started_at=$SECONDS

scripts/install-tools.sh e2e

state=.local
log="$state/e2e-dev.log"
mkdir -p "$state"
chmod 700 "$state"

# --- dev.sh in the background, stopped whatever happens ----------------------------------------
# set -m: the background job gets its own process group. dev.sh stops what it started when it
# gets SIGTERM (within a minute: a warm-up request may be in flight); what is left after 90 s is killed.
set -m
dev_pid=""
stop_dev() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then
    say "stopping scripts/dev.sh"
    kill -TERM "$dev_pid" 2>/dev/null || true
    for _ in $(seq 450); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$dev_pid" 2>/dev/null || true
    wait "$dev_pid" 2>/dev/null || true
  fi
  say "finished in $(( SECONDS - started_at )) s"
  exit "$status"
}
trap stop_dev EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting scripts/dev.sh (log: $log)"
scripts/dev.sh </dev/null >"$log" 2>&1 &
dev_pid=$!

# --- wait until ready -----------------------------------------------------------------------
timeout="${E2E_READY_TIMEOUT:-1800}"
waited=0
until [ -f "$state/dev.ready" ] && grep -qx "PID=$dev_pid" "$state/dev.ready"; do
  if ! kill -0 "$dev_pid" 2>/dev/null; then
    tail -n 40 "$log" >&2
    die "scripts/dev.sh exited before it was ready (log: $log)"
  fi
  [ "$waited" -lt "$timeout" ] || { tail -n 40 "$log" >&2; die "scripts/dev.sh not ready after $timeout s"; }
  [ $(( waited % 60 )) -ne 0 ] || [ "$waited" = 0 ] || say "waiting for scripts/dev.sh ($waited s; building?)"
  sleep 1
  waited=$(( waited + 1 ))
done
# shellcheck source=/dev/null
source "$state/demo.env"
for url in "$API/.well-known/jwks.json" "$WEB/" "$WEB/config.js"; do
  status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 120 "$url")" || true
  [ "$status" = 200 ] || die "$url answered $status"
done
say "dev.sh ready after $(( SECONDS - started_at )) s: API $API, page $WEB/"

# --- contract test, then the browser ------------------------------------------------------------
if [ -f scripts/contract.sh ]; then
  say "scripts/contract.sh"
  bash scripts/contract.sh
fi

say "Chromium: e2e/demo.test.mjs"
node e2e/demo.test.mjs
